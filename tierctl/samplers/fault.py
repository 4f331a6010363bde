"""``bpf-fault``: user page faults per (cgroup, process, page), from exceptions:page_fault_user.

tierctl/data/bpf/fault_sampler.c counts each fault into a bounded hash keyed by (cgroup id, tgid, fault flags,
virtual page); drain() empties it in one batch. A fault is a first touch (or a protection fault:
write to a read-only or NUMA-hinting PTE), not every access: this sampler sees allocation and, with
NUMA balancing's hinting faults or protection changes, re-touches. It also counts
migrate:mm_migrate_pages by reason (``migrations()``) when the kernel has that tracepoint.
"""

from __future__ import annotations

import os
from types import ModuleType

import numpy as np

from tierctl.errors import TierctlError, UnavailableError
from tierctl.kernel.knobs import KnobGuard
from tierctl.kernel.thp import KpageflagsHugeResolver
from tierctl.samplers import bpf_layout as L
from tierctl.samplers.base import Targets
from tierctl.samplers.bpf_sampler import BccSampler
from tierctl.samplers.hint import HintFaults
from tierctl.samplers.huge import Units, spread_huge


class FaultSampler(BccSampler):
    name = "bpf-fault"
    program = "fault_sampler"

    def __init__(
        self,
        *,
        migrations: bool = True,
        hint_faults: KnobGuard | None = None,
        keep_locality: bool = False,
        huge: Units | None = None,
        **kw: object,
    ) -> None:
        """``hint_faults``: a KnobGuard to turn on NUMA hint faults on slow-tier pages with (see
        tierctl/samplers/hint.py) while sampling; the knobs are restored by stop(); ``keep_locality``:
        see HintFaults. ``huge``: where
        huge pages start and how big they are (default: kpageflags in the host's procfs, as root), so
        that a fault on a THP counts for each of its base pages (tierctl/samplers/huge.py)."""
        super().__init__(**kw)  # type: ignore[arg-type]
        if huge is None and os.geteuid() == 0:
            huge = KpageflagsHugeResolver(self.host.proc).units
        self._huge = huge
        self.want_migrations = migrations
        self.with_migrations = False
        self._hint = HintFaults(hint_faults, keep_locality=keep_locality) if hint_faults is not None else None

    def start(self, targets: Targets) -> None:
        super().start(targets)
        if self._hint is not None:
            try:
                for note in self._hint.apply():
                    self._health.notes.append(note)
            except TierctlError:
                super().stop()
                raise

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            if self._hint is not None:
                failed = [r for r in self._hint.restore() if r.outcome == "failed"]
                for r in failed:
                    self._health.notes.append(f"could not restore {r.knob} to {r.value!r}: {r.error}")

    def drain(self) -> np.ndarray:
        rows = super().drain()
        return spread_huge(rows, self._huge) if self._huge is not None else rows

    def _needs_tracefs(self) -> bool:
        return True  # bcc reads the tracepoint's format file at compile time

    def _check_source(self, bcc: ModuleType) -> str:
        ok, why = self.host.tracepoint("exceptions", "page_fault_user")
        if not ok:
            raise UnavailableError(why)
        self.with_migrations = False
        what = "tracepoint exceptions:page_fault_user"
        if why.startswith("tracefs not mounted"):
            what += f" ({why})"
        if self.want_migrations:
            ok_m, why_m = self.host.tracepoint("migrate", "mm_migrate_pages")
            self.with_migrations = ok_m
            what += " + migrate:mm_migrate_pages" if ok_m else f" (no migration counts: {why_m})"
        return what

    def _defines(self) -> dict[str, int | str]:
        d = super()._defines()
        if self.with_migrations:
            d["TIERCTL_WITH_MIGRATE"] = 1
        return d

    def migrations(self) -> np.ndarray:
        """Cumulative mm_migrate_pages counts, MIGRATE_VAL_DTYPE[MR_SLOTS] indexed by MigrateReason."""
        out = np.zeros(int(L.MigrateReason.SLOTS), L.MIGRATE_VAL_DTYPE)
        if self._bpf is None or not self.with_migrations:
            return out
        t = self._table(L.MAP_MIGRATIONS)
        for i in range(len(out)):
            v = t[t.Key(i)]
            out[i] = (v.calls, v.succeeded, v.failed)
        return out
