"""What every bcc program sampler shares: probe → start (compile, filter, attach) → drain → stop, and
health at any time.

Nothing here may hurt the system when BPF does not work: every failure becomes an
``UnavailableError`` (or, from ``probe()``, an ``Availability(ok=False, reason)``) with one reason —
not root, bcc missing, no kernel headers, tracefs/tracepoint missing, the compiler's first error
line, the verifier's refusal, or the refused attach. What the host must change meanwhile (tracefs
mounted, BPF run-time stats on) goes through the shared ``BpfHost`` and its knob record.

The page samplers (``BccSampler``, tierctl/samplers/bpf_sampler.py) and the reclaim-stall sampler
(``StallSampler``, tierctl/samplers/stall.py) build on ``BccProgram``; each keeps its program, its
maps and what its ``drain()`` returns.
"""

from __future__ import annotations

import atexit
import contextlib
import sys
import time
from collections.abc import Sequence
from enum import IntEnum
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from tierctl.errors import InputError, UnavailableError
from tierctl.kernel.bpfhost import BpfHost
from tierctl.samplers import bpf_layout as L
from tierctl.samplers.base import Availability, Health, Targets
from tierctl.samplers.bpf_bcc import LOCK, bcc_version, captured_output, load_bcc
from tierctl.samplers.bpf_compile import Compiled, compile_program
from tierctl.samplers.bpf_headers import HeaderTree, find_headers
from tierctl.samplers.bpf_maps import DRAIN_MODES, drain


class BccProgram:
    """A bcc program with tierctl.h's ``config`` and ``filter_*`` maps and a per-CPU counter array.

    Subclasses set ``name``, ``program`` and the counters (``counter_map``, ``counter_enum`` with an
    ``NR`` member, ``drop_counters``) and implement ``_check_source`` (is the hook there? returns the
    text for the reason), ``_defines``, ``_targets`` and, as needed, ``_needs_tracefs``, ``_loaded``
    (after compiling: layout checks, drain buffers) and ``_attach``.
    """

    name = "bcc"
    program = ""
    counter_map: ClassVar[str] = L.MAP_COUNTERS
    counter_enum: ClassVar[type[IntEnum]] = L.Counter
    drop_counters: ClassVar[Sequence[IntEnum]] = L.DROP_COUNTERS

    def __init__(
        self,
        *,
        max_targets: int,
        headers: str = "auto",
        bcc_search: Sequence[str] | None = None,
        source: str | None = None,
        drain_mode: str = "auto",
        bpf_stats: bool = True,
        host: BpfHost | None = None,
    ) -> None:
        if headers not in ("auto", "kernel", "shipped"):
            raise InputError(f"headers must be auto, kernel or shipped, not {headers!r}")
        if drain_mode not in DRAIN_MODES:
            raise InputError(f"drain_mode must be auto, batch or iterate, not {drain_mode!r}")
        self.max_targets = max_targets
        self.headers_pref = headers
        self.bcc_search = bcc_search
        self.source = source
        self.drain_mode = drain_mode
        self.want_bpf_stats = bpf_stats
        self.host = host or BpfHost()
        self._bpf: Any = None
        self._lib: Any = None
        self._compiled: Compiled | None = None
        self._health = Health()
        self._stats_held = False
        self._tracefs_held = False
        self.compile_seconds = 0.0
        self.headers: HeaderTree | None = None

    # -- hooks
    def _check_source(self, bcc: ModuleType) -> str:
        raise NotImplementedError

    def _defines(self) -> dict[str, int | str]:
        raise NotImplementedError

    def _targets(self, targets: Targets) -> tuple[Sequence[int], Sequence[int]]:
        """The pids and cgroup ids (with descendants) to filter on; InputError past ``max_targets``."""
        raise NotImplementedError

    def _needs_tracefs(self) -> bool:
        return False

    def _loaded(self, bcc: ModuleType) -> None:
        """After compiling, before the filters are written: check layouts, allocate drain buffers."""

    def _attach(self, bcc: ModuleType) -> None:
        """Attach what BPF() did not attach by itself."""

    # -- contract
    def _check(self) -> tuple[ModuleType, HeaderTree, str]:
        problem = self.host.privilege_problem()
        if problem:
            raise UnavailableError(problem)
        bcc = load_bcc(self.bcc_search)
        headers = find_headers(self.headers_pref)
        what = self._check_source(bcc)
        return bcc, headers, f"bcc {bcc_version(bcc)}; {what}; {headers.describe()}"

    def probe(self) -> Availability:
        try:
            return Availability(True, self._check()[2])
        except UnavailableError as e:
            return Availability(False, e.message)

    def start(self, targets: Targets) -> None:
        if self._bpf is not None:
            raise InputError(f"{self.name} is already started")
        t0 = time.thread_time()
        pids, cgroups = self._targets(targets)
        problem = self.host.privilege_problem()
        if problem:
            raise UnavailableError(problem)
        self._health = Health()
        self._health.notes += [
            f"restored what a crashed run left: {r.knob} ({r.outcome})" for r in self.host.restored_at_start
        ]
        try:
            if self._needs_tracefs():  # before _check(): it looks the tracepoints up in tracefs
                note = self.host.tracefs.acquire()
                self._tracefs_held = True
                if note:
                    self._health.notes.append(note)
            bcc, headers, reason = self._check()
            self.headers = headers
            self._health.notes.insert(0, reason)
            self._compiled = compile_program(bcc, self.program, self._defines(), headers, self.source)
            self._bpf, self.compile_seconds = self._compiled.bpf, self._compiled.seconds
            self._lib = sys.modules["bcc.libbcc"].lib
            self._health.notes.append(f"compiled in {self.compile_seconds:.2f} s")
            self._loaded(bcc)
            self._set_filters(pids, cgroups)
            self._attach(bcc)
            if self.want_bpf_stats:
                self._health.notes.append(self.host.stats.acquire())
                self._stats_held = True
            self._config(L.Config.ENABLED, 1)
        except BaseException:
            self._teardown()
            raise
        self._health.cpu_seconds += time.thread_time() - t0

    def retarget(self, targets: Targets) -> None:
        """Observe ``targets`` from now on: the filter maps are rewritten in place (no recompiling),
        so processes that appeared after ``start`` are seen too."""
        if self._bpf is None:
            return
        t0 = time.thread_time()
        pids, cgroups = self._targets(targets)
        for name in (L.MAP_FILTER_PIDS, L.MAP_FILTER_CGROUPS):
            self._table(name).clear()
        self._set_filters(pids, cgroups)
        self._health.cpu_seconds += time.thread_time() - t0

    def _cgroup_ids(self, targets: Targets) -> list[int]:
        """The target cgroups and their descendants (the programs match exact ids; targets mean subtrees)."""
        tree = self.host.cgroups() if targets.cgroup_ids else None
        out: list[int] = []
        for cg in targets.cgroup_ids:
            out += tree.descendant_ids(int(cg)) if tree is not None else [int(cg)]
        return out

    def _set_filters(self, pids: Sequence[int], cgroups: Sequence[int]) -> None:
        for name, items in ((L.MAP_FILTER_PIDS, pids), (L.MAP_FILTER_CGROUPS, cgroups)):
            t = self._table(name)
            for x in set(items):
                t[t.Key(x)] = t.Leaf(1)
        self._config(L.Config.FILTER_PIDS, 1 if pids else 0)
        self._config(L.Config.FILTER_CGROUPS, 1 if cgroups else 0)

    def _table(self, name: str) -> Any:
        return self._bpf[name.encode()]  # bcc wants bytes (it warns about str)

    def _config(self, idx: int, value: int) -> None:
        t = self._table(L.MAP_CONFIG)
        t[t.Key(int(idx))] = t.Leaf(value)

    def _drain_map(self, name: str, keys: np.ndarray, vals: np.ndarray) -> int:
        """Empty map ``name`` into ``keys``/``vals``; the number of rows. Keeps the drain mode that
        worked, and its note once."""
        got = drain(self._lib, self._table(name).map_fd, keys, vals, self.drain_mode)
        self.drain_mode = got.mode
        if got.note and got.note not in self._health.notes:
            self._health.notes.append(got.note)
        return got.rows

    def counters(self) -> dict[str, int]:
        """Cumulative per-CPU counters, summed (events, drops by cause)."""
        if self._bpf is None:
            return {}
        t = self._table(self.counter_map)
        nr = self.counter_enum["NR"]
        return {c.name.lower(): int(t.sum(t.Key(int(c))).value) for c in self.counter_enum if c != nr}

    def stop(self) -> None:
        if self._bpf is not None:
            with contextlib.suppress(Exception):
                self._config(L.Config.ENABLED, 0)
            self._refresh_health()
        self._teardown()

    def _teardown(self) -> None:
        bpf, self._bpf = self._bpf, None
        if bpf is None and self._compiled is not None:
            bpf = self._compiled.bpf
        self._compiled = None
        if bpf is not None:
            with LOCK, captured_output(), contextlib.suppress(Exception):
                bpf.cleanup()
            atexit.unregister(bpf.cleanup)
        if self._stats_held:
            self._stats_held = False
            self.host.stats.release()
        if self._tracefs_held:
            self._tracefs_held = False
            self.host.tracefs.release()

    def _refresh_health(self) -> None:
        if self._bpf is None:
            return
        c = self.counters()
        self._health.dropped = sum(c[d.name.lower()] for d in self.drop_counters)
        runs = [self.host.prog_run_ns(f.fd) for f in self._bpf.funcs.values()]
        known = [r for r in runs if r is not None]
        if known:
            self._health.bpf_run_ns = sum(known)

    def health(self) -> Health:
        self._refresh_health()
        h = self._health
        return Health(h.samples, h.dropped, h.cpu_seconds, h.bpf_run_ns, list(h.notes))
