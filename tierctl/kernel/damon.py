"""DAMON through its sysfs interface (``/sys/kernel/mm/damon/admin``): set up, run, read, tear down.

Kernel doc: Documentation/admin-guide/mm/damon/usage.rst. The tree, as 6.12 has it::

    kdamonds/nr_kdamonds
    kdamonds/<K>/{state,pid}
    kdamonds/<K>/contexts/nr_contexts                  (0 or 1: one context per kdamond)
    kdamonds/<K>/contexts/0/{avail_operations,operations}
        monitoring_attrs/intervals/{sample_us,aggr_us,update_us}
        monitoring_attrs/nr_regions/{min,max}
        targets/nr_targets, targets/<T>/pid_target, targets/<T>/regions/nr_regions, .../<R>/{start,end}
        schemes/nr_schemes, schemes/<S>/action, schemes/<S>/access_pattern/{sz,nr_accesses,age}/{min,max}
        schemes/<S>/stats/{nr_tried,sz_tried,nr_applied,sz_applied,qt_exceeds}
        schemes/<S>/tried_regions/{total_bytes, <N>/{start,end,nr_accesses,age}}

``DamonSysfs(sys_root=...)`` (the ``admin`` directory below a sysfs root; ``root`` names that directory
directly) ``.create(specs)`` writes one kdamond per :class:`KdamondSpec` (one context, one target:
a pid for ``vaddr``, physical ranges for ``paddr``; monitoring attributes; a ``stat`` scheme matching
every region, or none) and returns a :class:`DamonSession`: ``start()`` (``state`` = on),
``regions(k)`` (``state`` = ``update_schemes_tried_regions``, then the ``tried_regions`` directory: the
way sysfs exposes the monitoring results), ``stats(k)``, ``stop()`` (off) and ``teardown()`` (off, then
``nr_kdamonds`` back to 0, waiting while the kernel answers EBUSY as the threads finish).

Crash safety: ``create(specs, guard=knob_guard)`` records the kdamonds in the guard (kind ``damon``,
persisted) *before* writing ``nr_kdamonds``; ``teardown()`` drops the record once it has undone them. A
process killed in between leaves the record, and the next guard that restores it (the daemon's next
start, ``tierctl knobs --restore``) calls :meth:`DamonSysfs.release`: every kdamond off and
``nr_kdamonds`` 0 — only while the tree still holds the recorded kdamonds (as many, each with the
recorded target pid, or none written yet), so another user's kdamonds set up since are left alone.

Facts this adapter is built on (measured on Debian's 6.12 in the two-tier guest, see
docs/samplers-nonbpf.md):

- A new scheme's access pattern is all zeros (``sz/max`` = 0 matches nothing): the scheme is written with
  ``[0, ULONG_MAX]`` sizes and ``[0, UINT_MAX]`` accesses and ages so every region is "tried".
- ``update_schemes_tried_regions`` blocks until the kdamond has walked its regions at the end of the next
  aggregation interval (0.1 s with ``aggr_us`` = 100 ms); ``nr_accesses`` are those of that one interval
  (0 .. aggr_us / sample_us), ``age`` counts aggregation intervals the region kept its access level.
- Writing ``nr_kdamonds`` while any kdamond runs fails with EBUSY, and writing it rebuilds every kdamond
  directory: so this adapter creates kdamonds only when there are none (``check_free``), and a host
  where another kdamond runs (this CI host has one) gets :class:`UnavailableError` "busy".
- A ``vaddr`` kdamond stops by itself when its target exits. ``regions()`` then raises
  :class:`NoSuchProcessError` (the ``update`` write answers EINVAL on a stopped kdamond; old
  ``tried_regions`` directories stay behind and are never read as if current). Read before the
  process ends. Writing ``off`` to a stopped kdamond answers EPERM, which ``stop()`` ignores.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tierctl.errors import (
    InputError,
    KernelError,
    NoSuchProcessError,
    PermissionDeniedError,
    TierctlError,
    UnavailableError,
)
from tierctl.kernel.knobs import DAMON_KDAMONDS, KnobGuard, format_kdamonds, parse_kdamonds
from tierctl.kernel.roots import LIVE_PROC, LIVE_SYS

DAMON_ADMIN_REL = Path("kernel/mm/damon/admin")  # below the sysfs root
DAMON_ADMIN = LIVE_SYS / DAMON_ADMIN_REL
ULONG_MAX = (1 << 64) - 1
UINT_MAX = (1 << 32) - 1
OPERATIONS = ("vaddr", "fvaddr", "paddr")
SCHEME_ACTIONS = ("stat",)  # the only action a monitoring adapter needs; others move or reclaim memory

REGION_DTYPE = np.dtype(
    [
        ("start", np.uint64),  # address (virtual for vaddr, physical for paddr), inclusive
        ("end", np.uint64),  # exclusive
        ("nr_accesses", np.uint32),  # sampling intervals (of one aggregation) that saw an access
        ("age", np.uint32),  # aggregation intervals the region kept its access level
    ]
)

STAT_FILES = ("nr_tried", "sz_tried", "nr_applied", "sz_applied", "qt_exceeds")


class DamonBusyError(UnavailableError):
    """EBUSY: another kdamond runs (or one of ours is still finishing), so kdamonds cannot change now."""


@dataclass(frozen=True)
class MonitoringAttrs:
    """``monitoring_attrs``: intervals in microseconds and the bounds of the region count."""

    sample_us: int = 5_000
    aggr_us: int = 100_000
    update_us: int = 1_000_000  # vaddr: how often the target's mappings are re-read (kernel default 60 s)
    min_nr_regions: int = 10
    max_nr_regions: int = 1_000

    def __post_init__(self) -> None:
        for name in ("sample_us", "aggr_us", "update_us", "min_nr_regions", "max_nr_regions"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise InputError(f"must be an integer > 0, got {v!r}", f"damon.{name}")
        if self.aggr_us < self.sample_us:
            raise InputError(f"{self.aggr_us} < sample_us {self.sample_us}", "damon.aggr_us")
        if self.min_nr_regions < 3:  # the kernel's damon_set_attrs() refuses fewer
            raise InputError(f"must be >= 3, got {self.min_nr_regions}", "damon.min_nr_regions")
        if self.max_nr_regions < self.min_nr_regions:
            raise InputError(f"{self.max_nr_regions} < min_nr_regions", "damon.max_nr_regions")

    @property
    def max_nr_accesses(self) -> int:
        """The largest ``nr_accesses`` a region can report (every sample of an aggregation saw it)."""
        return self.aggr_us // self.sample_us


@dataclass(frozen=True)
class KdamondSpec:
    """One kdamond: one context with one target, and a ``stat`` scheme (or none)."""

    ops: str = "vaddr"
    pid: int | None = None  # vaddr / fvaddr target
    regions: tuple[tuple[int, int], ...] = ()  # initial regions: required for paddr and fvaddr
    attrs: MonitoringAttrs = field(default_factory=MonitoringAttrs)
    scheme: str | None = "stat"  # None: monitoring only (regions() is then unavailable)
    min_accesses: int = 0  # the scheme tries (and regions() returns) only regions with this many

    def __post_init__(self) -> None:
        if self.ops not in OPERATIONS:
            raise InputError(f"unknown operations {self.ops!r}; known: {', '.join(OPERATIONS)}", "damon.ops")
        if self.ops in ("vaddr", "fvaddr"):
            if isinstance(self.pid, bool) or not isinstance(self.pid, int) or self.pid < 1:
                raise InputError(f"{self.ops} needs a target pid >= 1, got {self.pid!r}", "damon.pid")
        elif self.pid is not None:
            raise InputError("paddr monitors physical memory: no pid", "damon.pid")
        if self.ops in ("paddr", "fvaddr") and not self.regions:
            raise InputError(f"{self.ops} needs initial regions (DAMON sets none by itself)", "damon.regions")
        prev_end = 0
        for start, end in self.regions:
            if not 0 <= start < end or start < prev_end:
                raise InputError(
                    f"regions must be ascending, non-empty, disjoint: {self.regions}", "damon.regions"
                )
            prev_end = end
        if isinstance(self.min_accesses, bool) or not isinstance(self.min_accesses, int):
            raise InputError(f"must be an integer, got {self.min_accesses!r}", "damon.min_accesses")
        if not 0 <= self.min_accesses <= self.attrs.max_nr_accesses:
            raise InputError(
                f"must be in 0..{self.attrs.max_nr_accesses}, got {self.min_accesses}", "damon.min_accesses"
            )
        if self.scheme is not None and self.scheme not in SCHEME_ACTIONS:
            raise InputError(f"unsupported scheme action {self.scheme!r} (only 'stat')", "damon.scheme")


@dataclass(frozen=True)
class KdamondState:
    index: int
    state: str  # "on" | "off"
    pid: int | None  # the kdamond thread's pid while on


class DamonSysfs:
    """The DAMON sysfs tree: ``root`` (the ``admin`` directory), by default the one below ``sys_root``;
    ``proc_root`` tells a vanished target from other stops."""

    def __init__(
        self,
        root: Path | None = None,
        *,
        sys_root: Path = LIVE_SYS,
        proc_root: Path = LIVE_PROC,
        settle_s: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.root = Path(root) if root is not None else Path(sys_root) / DAMON_ADMIN_REL
        self.proc_root = Path(proc_root)
        self.settle_s = settle_s
        self.sleep = sleep
        self.clock = clock

    @property
    def nr_path(self) -> Path:
        return self.root / "kdamonds" / "nr_kdamonds"

    # -- inspection (no side effects) ---------------------------------------------------------
    def present(self) -> bool:
        return self.nr_path.is_file()

    def nr_kdamonds(self) -> int:
        self._need_present()
        return _int(self._read(self.nr_path), self.nr_path)

    def kdamonds(self) -> list[KdamondState]:
        """Every kdamond directory with its state and thread pid."""
        out = []
        for k in range(self.nr_kdamonds()):
            kd = self.root / "kdamonds" / str(k)
            state = self._read(kd / "state").strip()
            pid_text = self._read_opt(kd / "pid")
            pid = int(pid_text) if pid_text and pid_text.strip().lstrip("-").isdigit() else None
            out.append(KdamondState(k, state, pid if pid and pid > 0 else None))
        return out

    def check_free(self, *, replace_idle: bool = False) -> None:
        """Raise UnavailableError (with the reason) unless this adapter may create kdamonds now."""
        self._need_present()
        if not os.access(self.nr_path, os.W_OK):
            raise PermissionDeniedError(
                "permission denied: DAMON's sysfs interface needs root", str(self.nr_path)
            )
        states = self.kdamonds()
        running = [k for k in states if k.state == "on"]
        if running:
            k = running[0]
            who = f" (kdamond thread pid {k.pid})" if k.pid else ""
            raise DamonBusyError(
                f"busy: kdamond {k.index} is running{who}, started by someone else; DAMON's sysfs interface "
                "cannot add a kdamond while another runs (EBUSY)",
                str(self.nr_path),
            )
        if states and not replace_idle:
            raise UnavailableError(
                f"{len(states)} idle kdamond director{'y' if len(states) == 1 else 'ies'} already set up (by "
                "another user, or left by a crashed run): creating ours rewrites nr_kdamonds and would "
                "discard them",
                str(self.nr_path),
            )

    def kdamonds_now(self) -> str:
        """The kdamonds set up now, as a damon knob record writes them (``2: vaddr 4242, vaddr 4243``;
        a kdamond without a context shows ``-``)."""
        items = []
        for ops, pid in self._targets_now():
            name = ops or "-"
            items.append(f"{name} {pid}" if pid else name)
        return f"{len(items)}: {', '.join(items)}" if items else "0"

    def guard_problem(self, guard: KnobGuard) -> str | None:
        """Why ``guard`` cannot record this tree's kdamonds (None: it can): its root must hold this very
        tree, or its restore after a crash would look for the kdamonds in another tree."""
        if guard.path_of(DAMON_KDAMONDS) != self.nr_path:
            return (
                f"the knob guard below {guard.root} would restore {guard.path_of(DAMON_KDAMONDS)}, not "
                f"{self.nr_path}"
            )
        return None

    # -- set up ---------------------------------------------------------------------------------
    def create(
        self, specs: Sequence[KdamondSpec], *, replace_idle: bool = False, guard: KnobGuard | None = None
    ) -> DamonSession:
        """Write one kdamond per spec (not started). Undone by the session's ``teardown()``; with
        ``guard``, recorded there first (persisted) so that a crash before the teardown is undone by the
        guard's next restore (see the module's doc)."""
        specs = tuple(specs)
        if not specs:
            raise InputError("no kdamond to create", "damon.specs")
        if guard is not None and (why := self.guard_problem(guard)) is not None:
            raise InputError(why, str(self.nr_path))
        self.check_free(replace_idle=replace_idle)
        if guard is not None:
            guard.record_damon(DAMON_KDAMONDS, format_kdamonds([(s.ops, s.pid) for s in specs]))
        try:
            self._write(self.nr_path, str(len(specs)))
        except BaseException:
            if guard is not None:  # the kernel refused the write: nothing changed
                guard.drop(DAMON_KDAMONDS)
            raise
        session = DamonSession(self, specs, guard)
        try:
            for k, spec in enumerate(specs):
                self._configure(k, spec)
        except BaseException:
            session.teardown(quiet=True)
            raise
        return session

    def _configure(self, k: int, spec: KdamondSpec) -> None:
        kd = self.root / "kdamonds" / str(k)
        if not kd.is_dir():
            raise KernelError(f"writing nr_kdamonds did not create kdamond {k}", str(kd))
        self._write(kd / "contexts" / "nr_contexts", "1")
        ctx = kd / "contexts" / "0"
        avail = self._read_opt(ctx / "avail_operations")
        if avail is not None and spec.ops not in avail.split():
            raise UnavailableError(
                f"operations {spec.ops!r} not offered by this kernel (avail_operations: {avail.strip()})",
                str(ctx / "avail_operations"),
            )
        self._write(ctx / "operations", spec.ops)
        a = spec.attrs
        iv = ctx / "monitoring_attrs" / "intervals"
        self._write(iv / "sample_us", str(a.sample_us))
        self._write(iv / "aggr_us", str(a.aggr_us))
        self._write(iv / "update_us", str(a.update_us))
        nr = ctx / "monitoring_attrs" / "nr_regions"
        # max before min: the pair never reads min > max (the kernel checks them when the kdamond starts)
        self._write(nr / "max", str(a.max_nr_regions))
        self._write(nr / "min", str(a.min_nr_regions))
        self._write(ctx / "targets" / "nr_targets", "1")
        tgt = ctx / "targets" / "0"
        if spec.pid is not None:
            self._write(tgt / "pid_target", str(spec.pid))
        if spec.regions:
            self._write(tgt / "regions" / "nr_regions", str(len(spec.regions)))
            for j, (start, end) in enumerate(spec.regions):
                self._write(tgt / "regions" / str(j) / "start", str(start))
                self._write(tgt / "regions" / str(j) / "end", str(end))
        if spec.scheme is None:
            return
        self._write(ctx / "schemes" / "nr_schemes", "1")
        sch = ctx / "schemes" / "0"
        self._write(sch / "action", spec.scheme)
        ap = sch / "access_pattern"
        for name, lo, hi in (
            ("sz", 0, ULONG_MAX),
            ("nr_accesses", spec.min_accesses, UINT_MAX),
            ("age", 0, UINT_MAX),
        ):
            self._write(ap / name / "max", str(hi))
            self._write(ap / name / "min", str(lo))

    # -- undo (a session's teardown, a guard's restore) -----------------------------------------
    def release(self, expected: str) -> None:
        """Undo the kdamonds a damon knob record describes (``expected``, as ``format_kdamonds`` writes
        it): every one off, then ``nr_kdamonds`` 0 (retrying while EBUSY) — only while the tree still
        holds them. UnavailableError when it does not (no DAMON sysfs, another number of kdamonds,
        another target pid: not tierctl's, left alone); KernelError when they could not be undone."""
        try:
            want = parse_kdamonds(expected)
        except ValueError as e:
            raise InputError(str(e), str(self.nr_path)) from None
        why = self._not_ours(want)
        if why is not None:
            raise UnavailableError(f"not the kdamonds tierctl set up ({why}): left alone", str(self.nr_path))
        for k in range(len(want)):
            self._turn_off(k)
        self._clear()

    def _targets_now(self) -> list[tuple[str | None, int | None]]:
        """Each kdamond's operations and target pid (None where not set up or unreadable)."""
        out: list[tuple[str | None, int | None]] = []
        for k in range(self.nr_kdamonds()):
            ctx = self.root / "kdamonds" / str(k) / "contexts" / "0"
            ops = self._read_opt(ctx / "operations")
            pid = self._read_opt(ctx / "targets" / "0" / "pid_target")
            pid_v = int(pid) if pid is not None and pid.strip().isdigit() else 0
            out.append((ops.strip() if ops else None, pid_v or None))
        return out

    def _not_ours(self, want: Sequence[tuple[str, int | None]]) -> str | None:
        """Why the tree does not hold the kdamonds ``want`` describes (None: it does). A kdamond whose
        target is not written yet (a crash while ``create`` configured it) counts as the recorded one."""
        now = self._targets_now()
        if len(now) != len(want):
            return f"nr_kdamonds is {len(now)}, tierctl set up {len(want)}"
        for k, ((_, got), (_, pid)) in enumerate(zip(now, want, strict=True)):
            if got is not None and got != pid:
                return f"kdamond {k} targets pid {got}, tierctl's targeted {pid if pid else 'none'}"
        return None

    def _turn_off(self, k: int) -> bool:
        """Write ``off`` to kdamond ``k`` if it is on (a stopped one answers EPERM: fine); whether it was."""
        state = self.root / "kdamonds" / str(k) / "state"
        try:
            if self._read(state).strip() != "on":
                return False
            self._write(state, "off")
        except KernelError:
            if self._read(state).strip() == "on":
                raise
        return True

    def _clear(self) -> None:
        """``nr_kdamonds`` = 0, retrying for ``settle_s`` while EBUSY (a kdamond thread still finishing
        after ``off``); KernelError when it stays busy."""
        deadline = self.clock() + self.settle_s
        while True:
            try:
                self._write(self.nr_path, "0")
                return
            except DamonBusyError as e:
                if self.clock() >= deadline:
                    raise KernelError(
                        f"still busy after {self.settle_s:g} s: {e.message}", str(self.nr_path)
                    ) from e
                self.sleep(0.05)

    # -- low-level I/O ------------------------------------------------------------------------
    def _need_present(self) -> None:
        if not self.nr_path.is_file():
            raise UnavailableError(
                "no DAMON sysfs interface (kernel without CONFIG_DAMON_SYSFS, or sysfs not mounted)",
                str(self.root),
            )

    def _read(self, path: Path) -> str:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise _error(e, path, "read") from None
        try:
            return os.read(fd, 4096).decode("ascii", "replace")
        except OSError as e:
            raise _error(e, path, "read") from None
        finally:
            os.close(fd)

    def _read_opt(self, path: Path) -> str | None:
        try:
            return self._read(path)
        except UnavailableError:
            return None

    def _write(self, path: Path, text: str) -> None:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
        except OSError as e:
            raise _error(e, path, "write") from None
        try:
            os.write(fd, (text + "\n").encode())
        except OSError as e:
            raise _error(e, path, f"write {text!r} to") from None
        finally:
            os.close(fd)


class DamonSession:
    """The kdamonds one ``create()`` made (indices 0..n-1); ``teardown()`` removes them all (and the
    ``guard``'s record of them, once they are gone)."""

    def __init__(
        self, fs: DamonSysfs, specs: tuple[KdamondSpec, ...], guard: KnobGuard | None = None
    ) -> None:
        self.fs = fs
        self.specs = specs
        self.guard = guard
        self.closed = False
        self._stopped_by_us: set[int] = set()

    def __enter__(self) -> DamonSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.teardown()

    def __len__(self) -> int:
        return len(self.specs)

    def kdamond_dir(self, k: int) -> Path:
        if not 0 <= k < len(self.specs):
            raise InputError(f"no kdamond {k} in this session (0..{len(self.specs) - 1})", "kdamond")
        return self.fs.root / "kdamonds" / str(k)

    def _scheme_dir(self, k: int) -> Path:
        return self.kdamond_dir(k) / "contexts" / "0" / "schemes" / "0"

    # -- run ------------------------------------------------------------------------------------
    def start(self) -> None:
        """Turn every kdamond on."""
        self._need_open()
        for k, spec in enumerate(self.specs):
            state = self.kdamond_dir(k) / "state"
            try:
                self.fs._write(state, "on")
            except KernelError as e:
                if spec.pid is not None and not self._alive(spec.pid):
                    raise NoSuchProcessError(
                        f"no process {spec.pid}: kdamond {k} cannot start", str(state)
                    ) from e
                raise
            self._stopped_by_us.discard(k)

    def state(self, k: int) -> str:
        return self.fs._read(self.kdamond_dir(k) / "state").strip()

    def kdamond_pid(self, k: int) -> int | None:
        text = self.fs._read_opt(self.kdamond_dir(k) / "pid")
        pid = int(text) if text and text.strip().lstrip("-").isdigit() else -1
        return pid if pid > 0 else None

    def running(self, k: int) -> bool:
        return self.state(k) == "on"

    def regions(self, k: int) -> np.ndarray:
        """The regions of kdamond ``k`` as of its next aggregation interval (REGION_DTYPE, by address).

        Blocks up to about two aggregation intervals. Raises NoSuchProcessError when a vaddr kdamond
        stopped because its target exited, KernelError when it is off for another reason.
        """
        self.update_regions(k)
        return self.read_regions(k)

    def update_regions(self, k: int) -> None:
        """Ask kdamond ``k`` to refresh its tried regions; returns when it has (up to about two
        aggregation intervals). Several kdamonds may be asked at once from several threads."""
        self._need_open()
        spec = self.specs[k]
        if spec.scheme is None:
            raise UnavailableError(
                "kdamond has no scheme: sysfs shows regions only as tried regions", "damon"
            )
        state = self.kdamond_dir(k) / "state"
        self._need_running(k)
        try:
            self.fs._write(state, "update_schemes_tried_regions")
        except KernelError:
            self._need_running(k)  # the target exited meanwhile: the clearer error
            raise

    def read_regions(self, k: int) -> np.ndarray:
        """The tried regions of kdamond ``k`` as its last update left them (REGION_DTYPE, by address)."""
        self._need_open()
        tried = self._scheme_dir(k) / "tried_regions"
        try:
            names = os.listdir(tried)
        except OSError as e:
            raise _error(e, tried, "list") from None
        idx = sorted(int(n) for n in names if n.isdigit())
        out = np.zeros(len(idx), dtype=REGION_DTYPE)
        for row, n in enumerate(idx):
            d = tried / str(n)
            out[row] = tuple(
                _int(self.fs._read(d / f), d / f) for f in ("start", "end", "nr_accesses", "age")
            )
        if out.size and (np.any(out["end"] <= out["start"])):
            raise KernelError("a tried region ends before it starts", str(tried))
        return out[np.argsort(out["start"], kind="stable")]

    def stats(self, k: int) -> dict[str, int]:
        """The scheme's counters (``update_schemes_stats`` first): regions and bytes tried / applied."""
        self._need_open()
        if self.specs[k].scheme is None:
            raise UnavailableError("kdamond has no scheme", "damon")
        self._need_running(k)
        self.fs._write(self.kdamond_dir(k) / "state", "update_schemes_stats")
        d = self._scheme_dir(k) / "stats"
        return {f: _int(self.fs._read(d / f), d / f) for f in STAT_FILES}

    def stop(self) -> None:
        """Turn every running kdamond off (a stopped one answers EPERM: ignored)."""
        for k in range(len(self.specs)):
            if self.closed:
                return
            if self.fs._turn_off(k):
                self._stopped_by_us.add(k)

    def teardown(self, *, quiet: bool = False) -> None:
        """Stop, then write ``nr_kdamonds`` = 0 (retrying while EBUSY), then drop the guard's record;
        idempotent. When the kdamonds could not be undone, the record stays for a later restore."""
        if self.closed:
            return
        errors: list[TierctlError] = []
        try:
            self.stop()
        except TierctlError as e:
            errors.append(e)
        try:
            self.fs._clear()
        except TierctlError as e:
            errors.append(e)
        self.closed = not errors or quiet
        if not errors and self.guard is not None:
            self.guard.drop(DAMON_KDAMONDS)
        if errors and not quiet:
            raise KernelError(f"teardown incomplete: {errors[-1]}", str(self.fs.nr_path))

    # -- helpers --------------------------------------------------------------------------------
    def _need_open(self) -> None:
        if self.closed:
            raise KernelError("the DAMON session was torn down", str(self.fs.nr_path))

    def _need_running(self, k: int) -> None:
        state_path = self.kdamond_dir(k) / "state"
        if self.state(k) == "on":
            return
        spec = self.specs[k]
        if k in self._stopped_by_us:
            raise KernelError(f"kdamond {k} is off (stopped by this session)", str(state_path))
        if spec.pid is not None and not self._alive(spec.pid):
            raise NoSuchProcessError(
                f"kdamond {k} stopped by itself: its target process {spec.pid} exited (DAMON stops a "
                "vaddr kdamond when its targets exit; read regions before the process ends)",
                str(state_path),
            )
        raise KernelError(f"kdamond {k} is off although this session did not stop it", str(state_path))

    def _alive(self, pid: int) -> bool:
        return (self.fs.proc_root / str(pid)).is_dir()


def node_phys_ranges(node: int, sys_root: Path = LIVE_SYS) -> list[tuple[int, int]]:
    """Physical address ranges [start, end) of the online memory blocks of ``node`` (for paddr regions).

    From ``devices/system/memory/block_size_bytes`` (hex) and the ``memoryN`` links of
    ``devices/system/node/nodeX``; consecutive blocks are merged.
    """
    mem = Path(sys_root) / "devices" / "system" / "memory"
    bs_path = mem / "block_size_bytes"
    try:
        block = int(bs_path.read_text().strip(), 16)
    except FileNotFoundError:
        raise UnavailableError("no memory block information (CONFIG_MEMORY_HOTPLUG?)", str(bs_path)) from None
    except (OSError, ValueError) as e:
        raise KernelError(f"not a hex block size: {e}", str(bs_path)) from None
    node_dir = Path(sys_root) / "devices" / "system" / "node" / f"node{node}"
    try:
        names = os.listdir(node_dir)
    except FileNotFoundError:
        raise InputError(f"no node {node}", str(node_dir)) from None
    blocks = []
    for n in names:
        if n.startswith("memory") and n[6:].isdigit():
            state = node_dir / n / "state"
            if state.exists() and state.read_text().strip() != "online":
                continue
            blocks.append(int(n[6:]))
    ranges: list[tuple[int, int]] = []
    for b in sorted(blocks):
        start, end = b * block, (b + 1) * block
        if ranges and ranges[-1][1] == start:
            ranges[-1] = (ranges[-1][0], end)
        else:
            ranges.append((start, end))
    return ranges


def _int(text: str, path: Path) -> int:
    t = text.strip()
    if not t.lstrip("-").isdigit():
        raise KernelError(f"not an integer: {t!r}", str(path))
    return int(t)


def _error(e: OSError, path: Path, verb: str) -> TierctlError:
    if e.errno == errno.EBUSY:
        return DamonBusyError(
            "busy: another kdamond is running (DAMON's sysfs interface refuses this while one runs)",
            str(path),
        )
    # EPERM from a write is DAMON refusing a state change (``off`` to a stopped kdamond), not a privilege
    if e.errno == errno.EACCES or (e.errno == errno.EPERM and verb == "read"):
        return PermissionDeniedError(
            f"permission denied: cannot {verb} (DAMON's sysfs needs root)", str(path)
        )
    if e.errno in (errno.ENOENT, errno.ENOTDIR):
        return UnavailableError(
            f"cannot {verb}: no such file (DAMON sysfs layout of another kernel?)", str(path)
        )
    return KernelError(
        f"cannot {verb}: {e.strerror or e} ({errno.errorcode.get(e.errno or 0, e.errno)})", str(path)
    )
