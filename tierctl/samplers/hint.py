"""NUMA hint faults for sampling, without the kernel promoting pages itself (docs/hint-faults.md).

``HintFaults.apply`` sets the knobs through a KnobGuard (originals recorded and
persisted first, so they come back even after a crash), ``numa_balancing`` last;
``restore`` puts those knobs back in reverse order, and only those: the guard may be
shared (the daemon's one guard also records the BPF host's sysctl and tracefs mount).
Scan tuning lives in debugfs: where debugfs is not mounted those knobs are skipped and
said so — hint faults still come, only at the kernel's default scan pace.
"""

from __future__ import annotations

from collections.abc import Sequence

from tierctl.errors import TierctlError, UnavailableError
from tierctl.kernel.knobs import NUMA_BALANCING, PROMOTE_RATE_LIMIT, KnobGuard, Restored
from tierctl.kernel.knobs import NUMA_BALANCING_SCAN as SCAN

__all__ = ["NUMA_BALANCING", "PROMOTE_RATE_LIMIT", "SCAN", "SETTINGS", "HintFaults"]

# (knob, value, required); order matters: the mode goes last, so it is restored first
SETTINGS: Sequence[tuple[str, str, bool]] = (
    (PROMOTE_RATE_LIMIT, "0", True),  # every promotion candidate refused (6.12 should_numa_migrate_memory)
    (f"{SCAN}/scan_delay_ms", "0", False),
    (f"{SCAN}/scan_period_min_ms", "100", False),
    (f"{SCAN}/scan_period_max_ms", "1000", False),
    (f"{SCAN}/scan_size_mb", "64", False),
    (NUMA_BALANCING, "2", True),  # tiering mode: only slow-tier pages are scanned
)


class HintFaults:
    """``keep_locality``: the machine has several nodes with CPUs, so if NUMA balancing's locality
    mode (bit 1 of ``numa_balancing``) is on it stays on (mode 3: locality moves between CPU nodes go
    on, tiering promotion is still refused); with one CPU node locality balancing has nothing to do but
    pull slow-tier pages up, untiered, and mode 2 replaces it."""

    def __init__(self, guard: KnobGuard, *, keep_locality: bool = False) -> None:
        self.guard = guard
        self.keep_locality = keep_locality
        self.notes: list[str] = []

    def mode(self) -> str:
        """The ``numa_balancing`` value to set: 2, or 3 to keep locality balancing that was on."""
        if not self.keep_locality:
            return "2"
        try:
            current = int(self.guard.get(NUMA_BALANCING))
        except (TierctlError, ValueError):
            return "2"
        return "3" if current & 1 else "2"

    def apply(self) -> list[str]:
        """Set the knobs; returns notes on those skipped. Raises UnavailableError (after restoring
        whatever it had set) when a required knob cannot be set."""
        self.notes = []
        for knob, value, required in SETTINGS:
            if knob == NUMA_BALANCING:
                value = self.mode()
            try:
                self.guard.set(knob, value)
            except TierctlError as e:
                if required:
                    self.restore()
                    raise UnavailableError(f"cannot set up NUMA hint faults: {e}", knob) from None
                self.notes.append(f"{knob} not set ({e.message}): kernel default scan pace")
        return self.notes

    def restore(self) -> list[Restored]:
        """Restore the knobs of ``SETTINGS`` that are recorded, mode first; others the guard holds
        (still in use by someone else) stay as they are."""
        out: list[Restored] = []
        for knob, _, _ in reversed(SETTINGS):
            done = self.guard.restore(knob)
            if done is not None:
                out.append(done)
        return out
