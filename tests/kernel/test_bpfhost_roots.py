"""One BpfHost per process, below its roots: its users share the BPF stats sysctl and the tracefs mount
(restored when the last one releases), and everything it reads or writes is below the tree it is given
(the procfs, the mount table, the run folder of crashed runs' records, the cgroup hierarchy)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.kernel.test_kernel_bpfhost import no_enable_stats
from tierctl.errors import InputError, UnavailableError
from tierctl.kernel import bpfhost
from tierctl.kernel.bpfhost import BpfHost, Tracefs
from tierctl.kernel.knobs import BPF_STATS_ENABLED, KnobGuard
from tierctl.kernel.mounts import LibcMounts
from tierctl.kernel.procfs import ProcFS

TRACING = "/sys/kernel/tracing"


class FakeMounts:
    """A mount table: mounting makes tracefs's ``events`` folder appear, unmounting removes it."""

    def __init__(self) -> None:
        self.mounted: set[Path] = set()

    def mount(self, source: str, target: Path, fstype: str) -> None:
        (target / "events").mkdir(parents=True)
        self.mounted.add(target)

    def umount(self, target: Path) -> None:
        if target not in self.mounted:
            raise UnavailableError("unmounting failed: Invalid argument", str(target))
        self.mounted.discard(target)
        (target / "events").rmdir()

    def is_mounted(self, target: Path) -> bool:
        return target in self.mounted


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    knob = r / BPF_STATS_ENABLED.lstrip("/")
    knob.parent.mkdir(parents=True)
    knob.write_text("0\n")
    (r / TRACING.lstrip("/")).mkdir(parents=True)
    (r / "proc" / "filesystems").write_text("nodev\ttracefs\n")
    return r


def sysctl(root: Path) -> str:
    return (root / BPF_STATS_ENABLED.lstrip("/")).read_text().strip()


def test_two_users_of_one_host_one_releases_then_both(tmp_path: Path, root: Path) -> None:
    """What two hosts over one guard got wrong: the first release restored the sysctl and unmounted
    tracefs under the other user. One host counts both."""
    mounts = FakeMounts()
    guard = KnobGuard(tmp_path / "knobs.json", root, mounts=mounts)
    host = BpfHost(guard, enable_stats=no_enable_stats)
    target = root / TRACING.lstrip("/")
    for _ in range(2):  # a page sampler, then the stall sampler
        host.stats.acquire()
        host.tracefs.acquire()
    assert sysctl(root) == "1" and mounts.is_mounted(target)
    host.stats.release()
    host.tracefs.release()
    assert sysctl(root) == "1" and mounts.is_mounted(target)  # the other still uses them
    assert {r.knob for r in guard.pending()} == {BPF_STATS_ENABLED, TRACING}
    host.stats.release()
    host.tracefs.release()
    assert sysctl(root) == "0" and not mounts.is_mounted(target)
    assert guard.pending() == []


def test_the_host_takes_the_guards_tree_and_mount_table(tmp_path: Path, root: Path) -> None:
    mounts = FakeMounts()
    guard = KnobGuard(tmp_path / "knobs.json", root, mounts=mounts)
    host = BpfHost(guard)
    assert host.root == root and host.mounts is mounts and host.guard is guard
    assert host.proc.root == root / "proc" and host.tracefs_fs.root == root
    with pytest.raises(InputError, match="the knob guard writes below"):
        BpfHost(guard, root=tmp_path / "elsewhere")


def test_without_a_guard_everything_is_below_the_hosts_root(root: Path) -> None:
    host = BpfHost(root=root, run_dir=root / "run" / "tierctl")
    assert host.guard is None
    assert host.proc.root == root / "proc"
    assert isinstance(host.mounts, LibcMounts) and host.mounts.proc_root == root / "proc"
    guard = host.knobs()  # made on first use, below the same root, through the same mount table
    assert host.guard is guard and guard.root == root and guard.mounts is host.mounts
    assert guard.state_file == root / "run" / "tierctl" / f"bpf-knobs.{os.getpid()}.json"
    assert Tracefs(root).proc.root == root / "proc"
    assert BpfHost().root == Path("/") and BpfHost().proc.root == Path("/proc")


def test_restore_leftovers_reads_the_hosts_run_folder_once(tmp_path: Path, root: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    record = {"version": 1, "knobs": [{"knob": BPF_STATS_ENABLED, "original": "0", "expected": "1"}]}
    (run / f"bpf-knobs.{int(dead.stdout)}.json").write_text(json.dumps(record))
    (root / BPF_STATS_ENABLED.lstrip("/")).write_text("1\n")  # as the crashed process left it
    host = BpfHost(root=root, run_dir=run, mounts=FakeMounts())
    out = host.restore_leftovers()
    assert [(r.knob, r.outcome) for r in out] == [(BPF_STATS_ENABLED, "restored")]
    assert sysctl(root) == "0" and host.restored_at_start == out
    assert list(run.iterdir()) == []
    (root / BPF_STATS_ENABLED.lstrip("/")).write_text("1\n")
    assert host.restore_leftovers() == out and sysctl(root) == "1"  # once per host


def test_the_cgroup_tree_is_the_one_below_the_given_cgroup_root(tmp_path: Path) -> None:
    cg = tmp_path / "cgroup"
    (cg / "unified").mkdir(parents=True)
    (cg / "unified" / "cgroup.controllers").write_text("cpu memory\n")
    host = BpfHost(root=tmp_path, cgroup_root=cg)
    tree = host.cgroups()
    assert tree is not None and tree.root == cg / "unified" and tree.proc is host.proc
    # no cgroup root: where the (fake) mountinfo says, not the live one
    proc = tmp_path / "proc" / "self"
    proc.mkdir(parents=True)
    (proc / "mountinfo").write_text("30 1 0:26 / /fake/cgroup rw - cgroup2 cgroup2 rw\n")
    other = BpfHost(root=tmp_path, proc=ProcFS(tmp_path / "proc")).cgroups()
    assert other is not None and other.root == Path("/fake/cgroup")


def test_tracefs_is_found_below_the_root(root: Path) -> None:
    assert bpfhost.Tracefs(root).dir() is None
    (root / TRACING.lstrip("/") / "events").mkdir()
    assert bpfhost.Tracefs(root).dir() == root / TRACING.lstrip("/")
