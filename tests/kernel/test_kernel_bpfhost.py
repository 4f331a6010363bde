"""BpfHost on fake trees: the BPF stats sysctl and the tracefs mount go through a KnobGuard, are
restored on release, and after a crash (no release) by the next guard that reads the record."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tierctl.errors import PermissionDeniedError, UnavailableError
from tierctl.kernel import bpfhost
from tierctl.kernel.bpfhost import BpfHost, BpfStats, Tracefs, restore_leftovers
from tierctl.kernel.knobs import BPF_STATS_ENABLED, MOUNT, KnobGuard, KnobRecord
from tierctl.kernel.procfs import ProcFS

TRACING = "/sys/kernel/tracing"


class FakeMounts:
    """A mount table: mounting tracefs makes its ``events`` folder appear, unmounting removes it."""

    def __init__(self, refuse: int = 0) -> None:
        self.mounted: set[Path] = set()
        self.calls: list[tuple[str, Path]] = []
        self.refuse = refuse

    def mount(self, source: str, target: Path, fstype: str) -> None:
        self.calls.append(("mount", target))
        if self.refuse:
            raise PermissionDeniedError(
                "permission denied: mounting tracefs needs CAP_SYS_ADMIN", str(target)
            )
        (target / "events" / "exceptions" / "page_fault_user").mkdir(parents=True)
        (target / "events" / "exceptions" / "page_fault_user" / "format").write_text(
            "name: page_fault_user\n"
        )
        self.mounted.add(target)

    def umount(self, target: Path) -> None:
        self.calls.append(("umount", target))
        if target not in self.mounted:
            raise UnavailableError("unmounting failed: Invalid argument", str(target))
        self.mounted.discard(target)
        for p in sorted(target.rglob("*"), reverse=True):
            p.rmdir() if p.is_dir() else p.unlink()

    def is_mounted(self, target: Path) -> bool:
        return target in self.mounted


def no_enable_stats() -> int:
    return -errno.EINVAL  # a kernel before 5.8: no BPF_ENABLE_STATS


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    knob = r / BPF_STATS_ENABLED.lstrip("/")
    knob.parent.mkdir(parents=True)
    knob.write_text("0\n")
    (r / TRACING.lstrip("/")).mkdir(parents=True)
    proc = r / "proc"
    (proc / "filesystems").write_text("nodev\tsysfs\nnodev\ttracefs\n\text4\n")
    (proc / "self").mkdir()
    (proc / "self" / "status").write_text("Name:\tx\nCapEff:\t000001ffffffffff\n")
    return r


def host(root: Path, state: Path, mounts: FakeMounts, **kw) -> BpfHost:
    guard = KnobGuard(state, root, mounts=mounts)
    return BpfHost(guard, root=root, proc=ProcFS(root / "proc"), enable_stats=no_enable_stats, **kw)


def sysctl(root: Path) -> str:
    return (root / BPF_STATS_ENABLED.lstrip("/")).read_text()


def test_stats_fall_back_to_the_sysctl_recorded_first_and_restored(tmp_path: Path, root: Path) -> None:
    state = tmp_path / "knobs.json"
    h = host(root, state, FakeMounts())
    how = h.stats.acquire()
    assert "bpf_stats_enabled (was 0, restored at stop)" in how
    assert sysctl(root) == "1\n"
    rec = json.loads(state.read_text())["knobs"]
    assert rec == [{"knob": BPF_STATS_ENABLED, "original": "0", "expected": "1"}]
    h.stats.acquire()  # a second sampler shares it
    h.stats.release()
    assert sysctl(root) == "1\n"  # still in use
    h.stats.release()
    assert sysctl(root) == "0\n" and not state.exists()
    (root / BPF_STATS_ENABLED.lstrip("/")).write_text("1\n")  # on already: left alone, nothing recorded
    assert "on already" in h.stats.acquire()
    assert not state.exists()
    h.stats.release()
    assert sysctl(root) == "1\n"


def test_stats_from_the_bpf_command_write_no_knob(tmp_path: Path, root: Path) -> None:
    r, w = os.pipe()
    os.close(w)
    stats = BpfStats(lambda: KnobGuard(tmp_path / "k.json", root), enable=lambda: r)
    assert stats.acquire() == "BPF run time from BPF_ENABLE_STATS"
    stats.release()
    assert sysctl(root) == "0\n" and not (tmp_path / "k.json").exists()
    with pytest.raises(OSError):
        os.fstat(r)  # the stats fd was closed


def test_tracefs_mount_is_recorded_and_unmounted_at_release(tmp_path: Path, root: Path) -> None:
    state = tmp_path / "knobs.json"
    mounts = FakeMounts()
    h = host(root, state, mounts)
    assert h.tracepoint("exceptions", "page_fault_user")[1].startswith("tracefs not mounted")
    assert h.tracefs.acquire() == f"mounted tracefs at {TRACING} (unmounted at stop)"
    target = root / TRACING.lstrip("/")
    assert mounts.is_mounted(target)
    assert json.loads(state.read_text())["knobs"] == [
        {"knob": TRACING, "original": "", "expected": "tracefs", "kind": "mount"}
    ]
    assert h.tracepoint("exceptions", "page_fault_user") == (True, "tracepoint exceptions:page_fault_user")
    assert h.tracepoint("migrate", "mm_migrate_pages")[0] is False
    assert h.tracefs.acquire() is None  # shared
    h.tracefs.release()
    assert mounts.is_mounted(target)
    h.tracefs.release()
    assert not mounts.is_mounted(target) and not state.exists()


def test_tracefs_mounted_by_someone_else_is_left_alone(tmp_path: Path, root: Path) -> None:
    mounts = FakeMounts()
    mounts.mount("tracefs", root / TRACING.lstrip("/"), "tracefs")
    h = host(root, tmp_path / "k.json", mounts)
    assert h.tracefs.acquire() is None
    h.tracefs.release()
    assert mounts.calls == [("mount", root / TRACING.lstrip("/"))]  # no unmount
    assert not (tmp_path / "k.json").exists()


def test_a_refused_mount_is_one_reason_and_leaves_no_record(tmp_path: Path, root: Path) -> None:
    h = host(root, tmp_path / "k.json", FakeMounts(refuse=errno.EPERM))
    with pytest.raises(UnavailableError, match=r"^tracefs is not mounted and mounting it failed: permission"):
        h.tracefs.acquire()
    assert h.tracefs.users == 0 and not (tmp_path / "k.json").exists()


def test_a_kernel_without_tracefs(tmp_path: Path, root: Path) -> None:
    (root / "proc" / "filesystems").write_text("nodev\tsysfs\n")
    ok, why = Tracefs(root, ProcFS(root / "proc")).tracepoint("exceptions", "page_fault_user")
    assert not ok and "CONFIG_TRACING" in why


def test_a_crash_then_a_new_guard_restores_the_sysctl_and_unmounts_tracefs(
    tmp_path: Path, root: Path
) -> None:
    state = tmp_path / "knobs.json"
    mounts = FakeMounts()
    h = host(root, state, mounts)
    h.stats.acquire()
    h.tracefs.acquire()
    target = root / TRACING.lstrip("/")
    assert sysctl(root) == "1\n" and mounts.is_mounted(target)
    del h  # the crash: no release
    after = KnobGuard(state, root, mounts=mounts)
    assert after.records == [
        KnobRecord(BPF_STATS_ENABLED, "0", "1"),
        KnobRecord(TRACING, "", "tracefs", MOUNT),
    ]
    out = after.restore_all()
    assert [(r.knob, r.outcome) for r in out] == [(TRACING, "restored"), (BPF_STATS_ENABLED, "restored")]
    assert sysctl(root) == "0\n" and not mounts.is_mounted(target)
    assert not state.exists()


def test_a_new_host_on_a_crashed_runs_record_adopts_and_restores_it(tmp_path: Path, root: Path) -> None:
    state = tmp_path / "knobs.json"
    mounts = FakeMounts()
    crashed = host(root, state, mounts)
    crashed.stats.acquire()
    crashed.tracefs.acquire()
    h = host(root, state, mounts)  # the next run, same record
    assert "was 0" in h.stats.acquire()  # the original from the record, not tierctl's own 1
    assert h.tracefs.acquire() is None  # mounted already, by us: unmounted at release
    h.stats.release()
    h.tracefs.release()
    assert sysctl(root) == "0\n" and not mounts.is_mounted(root / TRACING.lstrip("/"))
    assert not state.exists()


def test_the_hosts_own_record_and_restore_leftovers(tmp_path: Path, root: Path) -> None:
    run = tmp_path / "run"
    mounts = FakeMounts()
    h = BpfHost(
        root=root, proc=ProcFS(root / "proc"), run_dir=run, mounts=mounts, enable_stats=no_enable_stats
    )
    assert not run.exists()  # nothing written until something changes
    h.stats.acquire()
    mine = run / f"bpf-knobs.{os.getpid()}.json"
    assert mine.exists()
    assert restore_leftovers(run, root=root, mounts=mounts) == []  # a live process's record is left alone
    # a record of a process that is gone
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    gone = run / f"bpf-knobs.{int(dead.stdout)}.json"
    gone.write_text(mine.read_text())
    h.stats.release()
    (root / BPF_STATS_ENABLED.lstrip("/")).write_text("1\n")  # as the dead process left it
    out = restore_leftovers(run, root=root, mounts=mounts)
    assert [(r.knob, r.outcome) for r in out] == [(BPF_STATS_ENABLED, "restored")]
    assert sysctl(root) == "0\n" and not gone.exists()


def test_privileges_and_program_run_time_from_the_proc_tree(tmp_path: Path, root: Path) -> None:
    h = host(root, tmp_path / "k.json", FakeMounts())
    assert h.privilege_problem() is None
    (root / "proc" / "self" / "status").write_text("CapEff:\t0000000000000000\n")
    assert h.privilege_problem().startswith("not root: loading BPF programs needs CAP_SYS_ADMIN")
    (root / "proc" / "self" / "status").write_text(f"CapEff:\t{(1 << 38) | (1 << 39):016x}\n")
    assert h.privilege_problem() is None  # CAP_BPF + CAP_PERFMON
    (root / "proc" / "self" / "fdinfo").mkdir()
    (root / "proc" / "self" / "fdinfo" / "7").write_text("pos:\t0\nrun_time_ns:\t12345\nrun_cnt:\t3\n")
    assert h.prog_run_ns(7) == 12345 and h.prog_run_ns(8) is None


def test_module_level_helpers_keep_their_defaults() -> None:
    assert Path("/proc/sys/kernel/bpf_stats_enabled") == bpfhost.BPF_STATS_SYSCTL
    assert bpfhost.TRACEFS_MOUNTS[0] == Path(TRACING)
