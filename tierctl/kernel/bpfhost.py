"""The host facilities the BPF samplers rely on, behind one adapter: tracefs (found, or mounted while
needed), kernel BPF run-time statistics (BPF_ENABLE_STATS, else the ``bpf_stats_enabled`` sysctl), a
loaded program's run time (``/proc/self/fdinfo``), the cgroup v2 hierarchy and this process's
effective capabilities.

What it changes goes through a :class:`KnobGuard`, so a crash does not leave it changed: the sysctl
is recorded before it is written and the tracefs mount before it is made, and both are restored when
the last sampler releases them — or, after a crash, by the next guard that reads the record. The
service may hand in its own guard (one record for every knob it changes); without one, the host
keeps its record in ``<run_dir>/bpf-knobs.<pid>.json`` (created only when something is changed), and
``restore_leftovers`` restores the records of processes that are gone. ``/run`` is the right place:
a reboot resets the sysctl and the mount too. Paths are parameters with the real ones as defaults, so
tests use fake trees, a fake mount table and a fake BPF_ENABLE_STATS.

One host per process: its use counts decide when the sysctl and the mount go back, so two hosts over
one guard would undo them under each other's samplers. The daemon's loop makes the host and hands it to
every BPF user (page samplers, the stall sampler); a one-shot command makes its own.
"""

from __future__ import annotations

import ctypes
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path

from tierctl.errors import InputError, TierctlError, UnavailableError
from tierctl.kernel.cgroupfs import CgroupTree
from tierctl.kernel.knobs import BPF_STATS_ENABLED, KnobGuard, Restored, restore_dead_records
from tierctl.kernel.mounts import LibcMounts, Mounts
from tierctl.kernel.procfs import ProcFS
from tierctl.kernel.roots import LIVE_PROC, LIVE_ROOT, RUN_DIR, below

TRACEFS_MOUNTS = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))
BPF_STATS_SYSCTL = Path(BPF_STATS_ENABLED)

RECORD_PREFIX = "bpf-knobs."

CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF = 21, 38, 39


# ------------------------------------------------------------------------------------ tracefs
class Tracefs:
    """Where tracefs is mounted (the candidates, below ``root``) and which tracepoints it lists;
    ``proc``: /proc/filesystems (default: the procfs below ``root``)."""

    def __init__(self, root: Path = LIVE_ROOT, proc: ProcFS | None = None) -> None:
        self.root = Path(root)
        self.proc = proc if proc is not None else ProcFS(below(self.root, LIVE_PROC))

    def candidates(self) -> list[Path]:
        return [below(self.root, p) for p in TRACEFS_MOUNTS]

    def dir(self) -> Path | None:
        """The mounted tracefs (its ``events`` folder exists), None when none is."""
        return next((p for p in self.candidates() if (p / "events").is_dir()), None)

    def tracepoint(self, category: str, event: str) -> tuple[bool, str]:
        """Whether ``category:event`` exists, and the reason (also when tracefs is not mounted yet)."""
        d = self.dir()
        if d is None:
            known = self.proc.filesystems()
            if known is not None and "tracefs" not in known:
                return False, "the kernel has no tracefs (CONFIG_TRACING off)"
            return True, f"tracefs not mounted: it will be mounted at {TRACEFS_MOUNTS[0]} while sampling"
        if (d / "events" / category / event / "format").exists():
            return True, f"tracepoint {category}:{event}"
        missing = d / "events" / category / event
        return False, f"the kernel has no tracepoint {category}:{event} ({missing} missing)"


class TracefsMount:
    """Mounts tracefs at /sys/kernel/tracing (through the guard) when nothing is mounted, for as long
    as someone needs it."""

    def __init__(self, knobs: Callable[[], KnobGuard], tracefs: Tracefs) -> None:
        self.knobs = knobs
        self.tracefs = tracefs
        self.target = str(TRACEFS_MOUNTS[0])
        self.users = 0
        self.mounted_by_us = False
        self._lock = threading.Lock()

    def acquire(self) -> str | None:
        with self._lock:
            self.users += 1
            if self.mounted_by_us:
                return None
            try:
                if self.tracefs.dir() is not None:
                    # mounted: by someone else, or by a run of ours that crashed (then it is ours to undo)
                    self.mounted_by_us = self._leftover()
                    return None
                self.knobs().mount(self.target, "tracefs")
            except TierctlError as e:
                self.users -= 1
                raise UnavailableError(
                    f"tracefs is not mounted and mounting it failed: {e.message}"
                ) from None
            self.mounted_by_us = True
            return f"mounted tracefs at {self.target} (unmounted at stop)"

    def release(self) -> None:
        with self._lock:
            self.users = max(0, self.users - 1)
            if self.users == 0 and self.mounted_by_us:
                done = self.knobs().restore(self.target)
                if done is None or done.outcome != "failed":
                    self.mounted_by_us = False

    def _leftover(self) -> bool:
        return self.knobs().recorded(self.target) is not None


# ---------------------------------------------------------------------------------- BPF stats
BPF_SYSCALL_NR = 321  # x86-64
BPF_ENABLE_STATS = 32  # enum bpf_cmd, Linux 5.8
BPF_STATS_RUN_TIME = 0


def enable_stats_fd() -> int:
    """BPF_ENABLE_STATS(BPF_STATS_RUN_TIME): stats stay on while the returned fd is open; -errno on
    failure."""
    libc = ctypes.CDLL(None, use_errno=True)
    attr = (ctypes.c_uint32 * 2)(BPF_STATS_RUN_TIME, 0)
    fd = int(libc.syscall(BPF_SYSCALL_NR, BPF_ENABLE_STATS, ctypes.byref(attr), ctypes.sizeof(attr)))
    return fd if fd >= 0 else -ctypes.get_errno()


class BpfStats:
    """Kernel run-time accounting of BPF programs, on while any sampler holds it.

    Prefers the BPF_ENABLE_STATS command (5.8): stats stay on while its fd is open, no knob is
    written and nothing is left behind if tierctl dies. Else sets the ``bpf_stats_enabled`` sysctl to 1
    through the guard (original recorded first) and restores it on the last release.
    """

    def __init__(self, knobs: Callable[[], KnobGuard], enable: Callable[[], int] = enable_stats_fd) -> None:
        self.knobs = knobs
        self.enable = enable
        self.knob = BPF_STATS_ENABLED
        self.users = 0
        self.fd: int | None = None
        self.held = False  # the sysctl is set through the guard
        self.how = ""
        self._lock = threading.Lock()

    def acquire(self) -> str:
        with self._lock:
            self.users += 1
            if self.users > 1:
                return self.how
            fd = self.enable()
            if fd >= 0:
                self.fd = fd
                self.how = "BPF run time from BPF_ENABLE_STATS"
                return self.how
            try:
                guard = self.knobs()
                rec = guard.recorded(self.knob)  # a crashed run's record: its original is the one to keep
                old = rec.original if rec is not None else guard.get(self.knob)
                if old != "1" or rec is not None:
                    guard.set(self.knob, 1)
                    self.held = True
                    self.how = f"BPF run time from {self.knob} (was {old}, restored at stop)"
                else:
                    self.how = f"BPF run time from {self.knob} (on already)"
            except TierctlError as e:
                self.how = f"no BPF run time: BPF_ENABLE_STATS: {os.strerror(-fd)}; {self.knob}: {e}"
            return self.how

    def release(self) -> None:
        with self._lock:
            self.users = max(0, self.users - 1)
            if self.users:
                return
            if self.fd is not None:
                os.close(self.fd)
                self.fd = None
            if self.held:
                self.held = False
                self.knobs().restore(self.knob)


# ------------------------------------------------------------------------------------ the host
class BpfHost:
    """What the BPF samplers of one process share: tracefs (mounted while any of them needs it), kernel
    BPF run-time stats (on while any of them runs), the cgroup v2 tree, privileges. The service makes
    one and hands it to each sampler; a sampler made without one gets its own.

    ``knobs``: the guard that records what the host changes (default: its own, in ``run_dir``, below
    ``root`` like a given guard's); ``root``: where the tracefs mount points and the sysctl are (a fake
    tree in tests; a given guard's root when not given); ``proc``: the procfs adapter for capabilities,
    fdinfo, mountinfo and /proc/filesystems (default: the one below ``root``); ``mounts``: the mount
    table of the host's own guard (default: a given guard's, else the real one read through ``proc``);
    ``cgroup_root``: where the cgroup hierarchy is (v2 there or at its ``unified`` folder; default: where
    ``proc``'s mountinfo says cgroup2 is mounted)."""

    def __init__(
        self,
        knobs: KnobGuard | None = None,
        *,
        root: Path | None = None,
        proc: ProcFS | None = None,
        run_dir: Path = RUN_DIR,
        mounts: Mounts | None = None,
        cgroup_root: Path | None = None,
        enable_stats: Callable[[], int] = enable_stats_fd,
    ) -> None:
        if root is None:
            root = knobs.root if knobs is not None else LIVE_ROOT
        self.root = Path(root)
        if knobs is not None and knobs.root != self.root:
            raise InputError(
                f"the knob guard writes below {knobs.root}, the host's tree is {self.root}", "BpfHost"
            )
        self.proc = proc if proc is not None else ProcFS(below(self.root, LIVE_PROC))
        self.run_dir = Path(run_dir)
        if mounts is None:
            mounts = knobs.mounts if knobs is not None else LibcMounts(self.proc.root)
        self.mounts: Mounts = mounts
        self.cgroup_root = None if cgroup_root is None else Path(cgroup_root)
        self._knobs = knobs
        self._cgroups: CgroupTree | None = None
        self._leftovers_done = False
        self.tracefs_fs = Tracefs(self.root, self.proc)
        self.tracefs = TracefsMount(self.knobs, self.tracefs_fs)
        self.stats = BpfStats(self.knobs, enable_stats)
        self.restored_at_start: list[Restored] = []  # what restore_leftovers() restored

    @property
    def guard(self) -> KnobGuard | None:
        """The guard given, or the host's own once made; None before."""
        return self._knobs

    def knobs(self) -> KnobGuard:
        """The guard (made on first use: nothing is written until something is changed)."""
        if self._knobs is None:
            state = self.run_dir / f"{RECORD_PREFIX}{os.getpid()}.json"
            self._knobs = KnobGuard(state, self.root, mounts=self.mounts)
        return self._knobs

    def restore_leftovers(self) -> list[Restored]:
        """Restore what the hosts of processes that are gone left changed (their records in this host's
        ``run_dir``, below its ``root``, through its mount table); once per host, kept in
        ``restored_at_start`` for the samplers' health notes."""
        if not self._leftovers_done:
            self._leftovers_done = True
            self.restored_at_start = restore_leftovers(self.run_dir, root=self.root, mounts=self.mounts)
        return self.restored_at_start

    def tracepoint(self, category: str, event: str) -> tuple[bool, str]:
        return self.tracefs_fs.tracepoint(category, event)

    def cgroups(self) -> CgroupTree | None:
        """The cgroup v2 hierarchy at (or, hybrid, below) ``cgroup_root``, else the mounted one; looked
        up once, None when there is none."""
        if self._cgroups is None:
            self._cgroups = CgroupTree.find(self.cgroup_root, self.proc)
        return self._cgroups

    def effective_caps(self) -> int | None:
        """This process's effective capability mask (``CapEff``), None when it cannot be read."""
        text = self.proc.status_field("self", "CapEff")
        try:
            return int(text, 16) if text else None
        except ValueError:
            return None

    def privilege_problem(self) -> str | None:
        """None when this process may load tracing BPF programs and open system-wide perf events."""
        caps = self.effective_caps()
        if caps is None:
            caps = -1 if os.geteuid() == 0 else 0
        if caps & (1 << CAP_SYS_ADMIN) or (caps & (1 << CAP_BPF) and caps & (1 << CAP_PERFMON)):
            return None
        return (
            f"not root: loading BPF programs needs CAP_SYS_ADMIN or CAP_BPF+CAP_PERFMON (uid {os.geteuid()})"
        )

    def prog_run_ns(self, fd: int) -> int | None:
        """run_time_ns of a loaded program (kernel BPF stats; 0 while they are off)."""
        text = self.proc.fdinfo(fd)
        m = re.search(r"^run_time_ns:\s*(\d+)", text or "", flags=re.M)
        return int(m.group(1)) if m else None


def restore_leftovers(
    run_dir: Path = RUN_DIR, *, root: Path = LIVE_ROOT, mounts: Mounts | None = None
) -> list[Restored]:
    """Restore what BPF hosts of processes that are gone (crashed, killed) left changed: the records
    ``<run_dir>/bpf-knobs.<pid>.json`` of dead pids, below ``root``, unmounting through ``mounts``
    (default: the real mount table read from the procfs below ``root``). A record that restores
    completely is removed."""
    if mounts is None:
        mounts = LibcMounts(below(Path(root), LIVE_PROC))
    return restore_dead_records(Path(run_dir), RECORD_PREFIX, root=Path(root), mounts=mounts)
