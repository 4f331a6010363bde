"""A cgroup's working set, found without throttling it: pure decisions, no I/O (docs/pressure.md).

The probe asks the caller to reclaim a small step (``memory.reclaim``, from the daemon's own
thread: the workload's allocations are never throttled) whenever the cgroup's pressure signals are
quiet — its PSI ``some`` share and its workingset refaults per second both under their thresholds —
and stops as soon as either rises. What remains then is the working set: the memory the workload
touches often enough that taking more away makes it wait. It backs off for ``backoff_s`` and probes
again from there (working sets grow and shrink); a charge that grows back above the estimate raises
it, because the kernel only lets the workload keep what it uses.
"""

from __future__ import annotations

from dataclasses import dataclass

from tierctl.errors import InputError

MIB = 1 << 20


@dataclass(frozen=True)
class ProbeLimits:
    step: int = 16 * MIB  # bytes per reclaim step, at most
    share: float = 0.02  # ... and at most this share of the charge per step
    interval_s: float = 5.0  # one step per cgroup at most this often (the signals need time to show)
    psi_some_max: float = 1.0  # % of time some task of the cgroup stalled on memory (avg10)
    refaults_max: float = 256.0  # workingset refaults per second
    backoff_s: float = 60.0  # after the signals rose: no step for this long

    def __post_init__(self) -> None:
        if self.step <= 0 or not 0 < self.share <= 1 or self.interval_s < 0 or self.backoff_s < 0:
            raise InputError("step > 0, 0 < share <= 1, interval_s >= 0, backoff_s >= 0", "workingset")


@dataclass(frozen=True)
class Signals:
    current: int  # bytes charged now (memory.current)
    psi_some: float  # % avg10 of the cgroup's memory.pressure "some" line
    refaults_per_s: float  # workingset_refault_anon + _file, per second since the last reading


class WorkingSetProbe:
    """The probe of one cgroup. ``step`` says how many bytes to reclaim now (0: none)."""

    def __init__(self, limits: ProbeLimits | None = None, *, floor: int = 0) -> None:
        self.limits = limits or ProbeLimits()
        self.floor = floor  # never probe below this (the profile's protected bytes)
        self.estimate: int | None = None  # bytes; None until a probe has ended once
        self.last_step: float | None = None
        self.backoff_until = float("-inf")
        self.ended = ""  # why the last probe ended

    def quiet(self, s: Signals) -> bool:
        lim = self.limits
        return s.psi_some <= lim.psi_some_max and s.refaults_per_s <= lim.refaults_max

    def step(self, now: float, s: Signals) -> int:
        lim = self.limits
        if self.estimate is not None and s.current > self.estimate and self.last_step is None:
            self.estimate = s.current  # it grew back: the kernel lets it keep only what it uses
        if not self.quiet(s):
            if self.last_step is not None:  # we went far enough: what remains is needed
                self.estimate = s.current
                self.ended = "pressure"
            self.last_step = None
            self.backoff_until = now + lim.backoff_s
            return 0
        if now < self.backoff_until:
            return 0
        if self.last_step is not None and now - self.last_step < lim.interval_s:
            return 0
        n = min(lim.step, int(lim.share * s.current), s.current - self.floor)
        if n <= 0:  # at the floor: the working set is at most this
            self.estimate = s.current
            self.ended = "floor"
            self.last_step = None
            self.backoff_until = now + lim.backoff_s
            return 0
        self.last_step = now
        return n

    def stuck(self, now: float, s: Signals) -> None:
        """The kernel could reclaim nothing more (memory.reclaim said EAGAIN): what remains is in use
        or unreclaimable."""
        self.estimate = s.current
        self.ended = "nothing reclaimable"
        self.last_step = None
        self.backoff_until = now + self.limits.backoff_s
