"""The page samplers' lifecycle on top of ``BccProgram`` (tierctl/samplers/bpf_program.py): the
``samples`` map drained into RAW_SAMPLE_DTYPE rows, the pid/cgroup filters, and the watchdog's
throttle at any time.

Nothing here may hurt the system when BPF does not work: every failure becomes an
``UnavailableError`` (or, from ``probe()``, an ``Availability(ok=False, reason)``) with one reason;
what the host must change meanwhile (tracefs mounted, BPF run-time stats on) goes through the shared
``BpfHost`` and its knob record — see ``BccProgram``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from types import ModuleType

import numpy as np

from tierctl.errors import InputError
from tierctl.kernel.bpfhost import BpfHost
from tierctl.samplers import bpf_layout as L
from tierctl.samplers.base import Targets, empty_raw
from tierctl.samplers.bpf_program import BccProgram

MAX_SAMPLE_SHIFT = 6  # the watchdog may lower a sampler's rate down to 1 event in 64


class BccSampler(BccProgram):
    """Lifecycle shared by the bcc page samplers: probe → start → drain → stop, health at any time.

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
        super().__init__(
            max_targets=max_targets,
            headers=headers,
            bcc_search=bcc_search,
            source=source,
            drain_mode=drain_mode,
            bpf_stats=bpf_stats,
            host=host,
        )
        self.max_entries = max_entries
        self._shift = 0  # events kept: 1 in 2**shift (throttle)
        self._keys = np.zeros(0, L.KEY_DTYPE)
        self._vals = np.zeros(0, L.VAL_DTYPE)

    # -- hooks
    def _defines(self) -> dict[str, int | str]:
        return {"TIERCTL_MAX_ENTRIES": self.max_entries, "TIERCTL_MAX_TARGETS": self.max_targets}

    def _targets(self, targets: Targets) -> tuple[Sequence[int], Sequence[int]]:
        pids = tuple(int(p) for p in targets.pids)
        cgroups = self._cgroup_ids(targets)
        for what, items in (("pids", pids), ("cgroup ids (with descendants)", cgroups)):
            if len(set(items)) > self.max_targets:
                raise InputError(f"{len(set(items))} target {what}: more than max_targets={self.max_targets}")
        return pids, cgroups

    def _loaded(self, bcc: ModuleType) -> None:
        self._keys = np.zeros(self.max_entries, L.KEY_DTYPE)
        self._vals = np.zeros(self.max_entries, L.VAL_DTYPE)

    # -- contract
    def drain(self) -> np.ndarray:
        if self._bpf is None:
            return empty_raw()
        t0 = time.thread_time()
        n = self._drain_map(L.MAP_SAMPLES, self._keys, self._vals)
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
