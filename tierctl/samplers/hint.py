"""NUMA hint faults for sampling, without the kernel promoting pages itself (docs/hint-faults.md).

``HintFaults.apply`` sets the knobs through a KnobGuard (originals recorded and
persisted first, so they come back even after a crash), ``numa_balancing`` last;
``restore`` puts everything back in reverse order. Scan tuning lives in debugfs:
where debugfs is not mounted those knobs are skipped and said so — hint faults
still come, only at the kernel's default scan pace.
"""

from __future__ import annotations

from collections.abc import Sequence

from tierctl.errors import TierctlError, UnavailableError
from tierctl.kernel.knobs import KnobGuard, Restored

NUMA_BALANCING = "/proc/sys/kernel/numa_balancing"
PROMOTE_RATE_LIMIT = "/proc/sys/kernel/numa_balancing_promote_rate_limit_MBps"
SCAN = "/sys/kernel/debug/sched/numa_balancing"

# (knob, value, required); order matters: the mode goes last, so it is restored first
SETTINGS: Sequence[tuple[str, str, bool]] = (
    (PROMOTE_RATE_LIMIT, "0", True),  # every promotion candidate refused (6.12 should_numa_migrate_memory)
    (f"{SCAN}/scan_delay_ms", "0", False),
    (f"{SCAN}/scan_period_min_ms", "100", False),
    (f"{SCAN}/scan_period_max_ms", "400", False),
    (f"{SCAN}/scan_size_mb", "16", False),
    (NUMA_BALANCING, "2", True),  # tiering mode: only slow-tier pages are scanned
)


class HintFaults:
    def __init__(self, guard: KnobGuard) -> None:
        self.guard = guard
        self.notes: list[str] = []

    def apply(self) -> list[str]:
        """Set the knobs; returns notes on those skipped. Raises UnavailableError (after restoring
        whatever it had set) when a required knob cannot be set."""
        self.notes = []
        for knob, value, required in SETTINGS:
            try:
                self.guard.set(knob, value)
            except TierctlError as e:
                if required:
                    self.restore()
                    raise UnavailableError(f"cannot set up NUMA hint faults: {e}", knob) from None
                self.notes.append(f"{knob} not set ({e.message}): kernel default scan pace")
        return self.notes

    def restore(self) -> list[Restored]:
        return self.guard.restore_all()
