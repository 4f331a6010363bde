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

Modules: this one holds ``DamonSysfs`` (inspect, create, release; re-exporting every name it had);
:mod:`~tierctl.kernel.damon_spec` the specs and constants, :mod:`~tierctl.kernel.damon_setup` the
writes that set up one kdamond, :mod:`~tierctl.kernel.damon_session` ``DamonSession`` (the kdamonds'
lifecycle), :mod:`~tierctl.kernel.damon_files` file access and its errors,
:mod:`~tierctl.kernel.phys_ranges` ``node_phys_ranges`` (paddr regions of a node).

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

import contextlib
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from tierctl.errors import InputError, KernelError, PermissionDeniedError, TierctlError, UnavailableError
from tierctl.kernel.damon_files import DamonBusyError, read_file, write_file
from tierctl.kernel.damon_files import parse_int as _int
from tierctl.kernel.damon_files import sysfs_error as _error  # noqa: F401 (tests/fixtures/damon imports it)
from tierctl.kernel.damon_session import DamonSession
from tierctl.kernel.damon_setup import write_kdamond
from tierctl.kernel.damon_spec import (
    DAMON_ADMIN,
    DAMON_ADMIN_REL,
    OPERATIONS,
    REGION_DTYPE,
    SCHEME_ACTIONS,
    STAT_FILES,
    UINT_MAX,
    ULONG_MAX,
    KdamondSpec,
    KdamondState,
    MonitoringAttrs,
)
from tierctl.kernel.knobs import DAMON_KDAMONDS, KnobGuard, format_kdamonds, parse_kdamonds
from tierctl.kernel.phys_ranges import node_phys_ranges
from tierctl.kernel.roots import LIVE_PROC, LIVE_SYS

__all__ = [
    "DAMON_ADMIN", "DAMON_ADMIN_REL", "OPERATIONS", "REGION_DTYPE", "SCHEME_ACTIONS", "STAT_FILES",
    "UINT_MAX", "ULONG_MAX", "DamonBusyError", "DamonSession", "DamonSysfs", "KdamondSpec",
    "KdamondState", "MonitoringAttrs", "node_phys_ranges",
]  # fmt: skip


T = TypeVar("T")


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
        return format_kdamonds([(ops or "-", pid) for ops, pid in self._targets_now()])

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
        # under the guard's lock: its verify (the metrics) never sees the kdamonds half set up
        with guard.lock if guard is not None else contextlib.nullcontext():
            if guard is not None:
                guard.record_damon(DAMON_KDAMONDS, format_kdamonds([(s.ops, s.pid) for s in specs]))
            try:
                self._write(self.nr_path, str(len(specs)))
            except BaseException:
                if guard is not None:  # the kernel refused the write: nothing changed
                    with contextlib.suppress(TierctlError):  # the kernel's error is the one to report
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
        write_kdamond(kd, spec, self._write, self._read_opt)

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
        """Write ``off`` to kdamond ``k`` if it is on (a stopped one answers EPERM: fine); whether it was.
        EBUSY (another sysfs user holds DAMON's lock) is retried as ``_while_busy`` does: never an
        UnavailableError, which a knob restore would take for "gone" and drop the record."""
        state = self.root / "kdamonds" / str(k) / "state"

        def off() -> bool:
            try:
                if self._read(state).strip() != "on":
                    return False
                self._write(state, "off")
            except KernelError:  # (DamonBusyError is not one: it reaches _while_busy)
                if self._read(state).strip() == "on":
                    raise
            return True

        return self._while_busy(off, state)

    def _clear(self) -> None:
        """``nr_kdamonds`` = 0, retried as ``_while_busy`` does (a kdamond thread still finishing after
        ``off``)."""
        self._while_busy(lambda: self._write(self.nr_path, "0"), self.nr_path)

    def _while_busy(self, step: Callable[[], T], path: Path) -> T:
        """``step()``, retried every 50 ms for ``settle_s`` while DAMON answers EBUSY; then a KernelError
        naming ``path``."""
        deadline = self.clock() + self.settle_s
        while True:
            try:
                return step()
            except DamonBusyError as e:
                if self.clock() >= deadline:
                    raise KernelError(f"still busy after {self.settle_s:g} s: {e.message}", str(path)) from e
                self.sleep(0.05)

    # -- low-level I/O ------------------------------------------------------------------------
    def _need_present(self) -> None:
        if not self.nr_path.is_file():
            raise UnavailableError(
                "no DAMON sysfs interface (kernel without CONFIG_DAMON_SYSFS, or sysfs not mounted)",
                str(self.root),
            )

    def _read(self, path: Path) -> str:
        return read_file(path)

    def _read_opt(self, path: Path) -> str | None:
        try:
            return self._read(path)
        except UnavailableError:
            return None

    def _write(self, path: Path, text: str) -> None:
        write_file(path, text)
