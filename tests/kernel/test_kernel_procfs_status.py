"""ProcFS readers the samplers and the API use instead of reading /proc themselves, on fake trees."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tierctl.errors import KernelError, NoSuchProcessError
from tierctl.kernel.procfs import Mount, ProcFS


@pytest.fixture
def proc(tmp_path: Path) -> ProcFS:
    p = tmp_path / "proc"
    (p / "7").mkdir(parents=True)
    (p / "7" / "status").write_text("Name:\tx\nGroups:\t10 4242 \nCapEff:\t0000000000200000\n")
    (p / "7" / "stat").write_text("7 (a b) c) S 1 7 7 0 -1 4194560 0 0 0 0 25 17 0 0 20 0 1 0 5 0 0\n")
    (p / "7" / "cgroup").write_text("5:memory:/m\n0::/system.slice/x.service\n")
    (p / "7" / "clear_refs").write_text("")
    (p / "8").mkdir()
    (p / "8" / "stat").write_text("garbage\n")
    (p / "filesystems").write_text("nodev\tsysfs\nnodev\ttracefs\n\text4\n")
    (p / "self" / "fdinfo").mkdir(parents=True)
    (p / "self" / "fdinfo" / "3").write_text("pos:\t0\n")
    (p / "self" / "mountinfo").write_text(
        "22 1 0:21 / /sys rw - sysfs sysfs rw\n33 22 0:30 / /a\\040b rw - tracefs tracefs rw\n"
    )
    return ProcFS(p, page_size=4096)


def test_groups_status_and_cpu_ticks(proc: ProcFS) -> None:
    assert proc.groups(7) == {10, 4242}
    assert proc.status_field(7, "CapEff") == "0000000000200000" and proc.status_field(7, "Nope") is None
    assert proc.cpu_ticks(7) == 25 + 17  # the comm may hold ") "
    with pytest.raises(KernelError):
        proc.cpu_ticks(8)
    with pytest.raises(NoSuchProcessError):
        proc.groups(9)


def test_cgroup_lines_parsed_once_for_both_views(proc: ProcFS) -> None:
    assert proc.cgroup_path(7) == "m"  # the memory controller's (v1) cgroup
    assert proc.cgroup_v2_path(7) == "system.slice/x.service"  # the v2 one, for cgroup ids


def test_clear_refs_filesystems_mounts_fdinfo(proc: ProcFS) -> None:
    proc.clear_refs(7, 4)
    assert (proc.root / "7" / "clear_refs").read_text() == "4\n"
    with pytest.raises(NoSuchProcessError):
        proc.clear_refs(99, 4)
    assert proc.filesystems() == {"sysfs", "tracefs", "ext4"}
    assert proc.mounts() == [Mount(Path("/sys"), "sysfs"), Mount(Path("/a b"), "tracefs")]
    assert proc.fdinfo(3) == "pos:\t0\n" and proc.fdinfo(4) is None
    assert not proc.has_clear_refs()


def test_live_groups_match_the_process() -> None:
    assert ProcFS().groups(os.getpid()) == frozenset(os.getgroups())
