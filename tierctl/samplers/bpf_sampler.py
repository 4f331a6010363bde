"""The lifecycle the bcc samplers share: probe → start (compile, filter, attach) → drain → stop, health
and the watchdog's throttle at any time.

Nothing here may hurt the system when BPF does not work: every failure becomes an
``UnavailableError`` (or, from ``probe()``, an ``Availability(ok=False, reason)``) with one reason —
not root, bcc missing, no kernel headers, tracefs/tracepoint missing, the compiler's first error
line, the verifier's refusal, or the refused attach. What the host must change meanwhile (tracefs
mounted, BPF run-time stats on) goes through the shared ``BpfHost`` and its knob record.
"""

from __future__ import annotations

import atexit
import contextlib
import sys
import time
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np

from tierctl.errors import InputError, UnavailableError
from tierctl.kernel.bpfhost import BpfHost
from tierctl.samplers import bpf_layout as L
from tierctl.samplers.base import Availability, Health, Targets, empty_raw
from tierctl.samplers.bpf_bcc import LOCK, bcc_version, captured_output, load_bcc
from tierctl.samplers.bpf_compile import Compiled, compile_program
from tierctl.samplers.bpf_headers import HeaderTree, find_headers
from tierctl.samplers.bpf_maps import DRAIN_MODES, drain

MAX_SAMPLE_SHIFT = 6  # the watchdog may lower a sampler's rate down to 1 event in 64


class BccSampler:
    """Lifecycle shared by the bcc samplers: probe → start → drain → stop, health at any time.

    Subclasses set ``name`` and ``program`` and implement ``_check_source`` (is the hook there?
    returns the text for the reason), ``_defines`` and ``_attach``.
    """

    name = "bcc"
    program = ""

    def __init__(
        self,
        *,
        max_entries: int = L.MAX_ENTRIES_DEFAULT,
        max_targets: int = L.MAX_TARGETS_DEFAULT,
        headers: str = "auto",
        bcc_search: Sequence[str] | None = None,
        source: str | None = None,
        drain_mode: str = "auto",
        bpf_stats: bool = True,
        host: BpfHost | None = None,
    ) -> None:
        if max_entries < 1 or max_targets < 1:
            raise InputError("max_entries and max_targets must be positive")
        if headers not in ("auto", "kernel", "shipped"):
            raise InputError(f"headers must be auto, kernel or shipped, not {headers!r}")
        if drain_mode not in DRAIN_MODES:
            raise InputError(f"drain_mode must be auto, batch or iterate, not {drain_mode!r}")
        self.max_entries = max_entries
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
        self._shift = 0  # events kept: 1 in 2**shift (throttle)
        self._keys = np.zeros(0, L.KEY_DTYPE)
        self._vals = np.zeros(0, L.VAL_DTYPE)
        self.compile_seconds = 0.0
        self.headers: HeaderTree | None = None

    # -- hooks
    def _check_source(self, bcc: ModuleType) -> str:
        raise NotImplementedError

    def _defines(self) -> dict[str, int | str]:
        return {"TIERCTL_MAX_ENTRIES": self.max_entries, "TIERCTL_MAX_TARGETS": self.max_targets}

    def _attach(self, bcc: ModuleType) -> None:
        """Attach what BPF() did not attach by itself."""

    def _needs_tracefs(self) -> bool:
        return False

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
        pids = tuple(int(p) for p in targets.pids)
        cgroups = self._cgroup_ids(targets)
        for what, items in (("pids", pids), ("cgroup ids (with descendants)", cgroups)):
            if len(set(items)) > self.max_targets:
                raise InputError(f"{len(set(items))} target {what}: more than max_targets={self.max_targets}")
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
            self._bpf = self._compiled.bpf
            self.compile_seconds = self._compiled.seconds
            self._lib = sys.modules["bcc.libbcc"].lib
            self._health.notes.append(f"compiled in {self._compiled.seconds:.2f} s")
            self._set_filters(pids, cgroups)
            self._attach(bcc)
            self._keys = np.zeros(self.max_entries, L.KEY_DTYPE)
            self._vals = np.zeros(self.max_entries, L.VAL_DTYPE)
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
        pids = tuple(int(p) for p in targets.pids)
        cgroups = self._cgroup_ids(targets)
        if max(len(set(pids)), len(set(cgroups))) > self.max_targets:
            raise InputError(f"more than max_targets={self.max_targets} targets")
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
        tp = self._table(L.MAP_FILTER_PIDS)
        for p in set(pids):
            tp[tp.Key(p)] = tp.Leaf(1)
        tc = self._table(L.MAP_FILTER_CGROUPS)
        for c in set(cgroups):
            tc[tc.Key(c)] = tc.Leaf(1)
        self._config(L.Config.FILTER_PIDS, 1 if pids else 0)
        self._config(L.Config.FILTER_CGROUPS, 1 if cgroups else 0)

    def _table(self, name: str) -> Any:
        return self._bpf[name.encode()]  # bcc wants bytes (it warns about str)

    def _config(self, idx: int, value: int) -> None:
        t = self._table(L.MAP_CONFIG)
        t[t.Key(int(idx))] = t.Leaf(value)

    def counters(self) -> dict[str, int]:
        """Cumulative per-CPU counters, summed (events, drops by cause)."""
        if self._bpf is None:
            return {}
        t = self._table(L.MAP_COUNTERS)
        return {c.name.lower(): int(t.sum(t.Key(int(c))).value) for c in L.Counter if c != L.Counter.NR}

    def drain(self) -> np.ndarray:
        if self._bpf is None:
            return empty_raw()
        t0 = time.thread_time()
        fd = self._table(L.MAP_SAMPLES).map_fd
        got = drain(self._lib, fd, self._keys, self._vals, self.drain_mode)
        self.drain_mode, n = got.mode, got.rows
        if got.note and got.note not in self._health.notes:
            self._health.notes.append(got.note)
        raw = L.rows_to_raw(self._keys[:n], self._vals[:n])
        if self._shift:  # one event in 2^shift was kept: counts estimate the events
            raw["count"] <<= np.uint64(self._shift)
        self._health.samples += len(raw)
        self._health.cpu_seconds += time.thread_time() - t0
        return raw

    def throttle(self) -> bool:
        """Lower the sampling rate by half (the watchdog's first resort); False when it cannot."""
        if self._bpf is None or self._shift >= MAX_SAMPLE_SHIFT:
            return False
        self._shift += 1
        self._config(L.Config.SAMPLE_SHIFT, self._shift)
        self._health.notes.append(f"rate lowered: 1 in {1 << self._shift} events kept, counts scaled")
        return True

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
        self._health.dropped = sum(c[d.name.lower()] for d in L.DROP_COUNTERS)
        runs = [self.host.prog_run_ns(f.fd) for f in self._bpf.funcs.values()]
        known = [r for r in runs if r is not None]
        if known:
            self._health.bpf_run_ns = sum(known)

    def health(self) -> Health:
        self._refresh_health()
        h = self._health
        return Health(h.samples, h.dropped, h.cpu_seconds, h.bpf_run_ns, list(h.notes))
