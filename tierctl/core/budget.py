"""The loop's CPU budget: a token bucket of CPU seconds for the optional work of a cycle.

Each cycle's own CPU time (sampling, re-reading the page space, deciding; the mover is bounded by
its bandwidth cap instead) is charged against a bucket that fills at ``share`` CPU seconds per
second of wall time, up to ``burst_s``. Work that is optional in a cycle — a full re-read of the
tracked pages, a policy decision — runs only while the bucket is not in debt, so the long-run CPU
share of that work stays near ``share`` whatever the tracked memory size, while a shift in the
workload can still use a burst. Pure: the caller passes the clock readings.
"""

from __future__ import annotations

from dataclasses import dataclass

from tierctl.errors import InputError


@dataclass
class CpuBudget:
    share: float = 0.25  # of one core, long run
    burst_s: float = 2.0  # CPU seconds that may be spent at once after a quiet period
    tokens: float = 0.0
    _last: float | None = None
    spent_s: float = 0.0
    denied: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.share <= 1:
            raise InputError(f"must be in (0, 1], got {self.share}", "budget.share")
        if self.burst_s < 0:
            raise InputError(f"must be >= 0, got {self.burst_s}", "budget.burst_s")
        self.tokens = self.burst_s

    def refill(self, now: float) -> None:
        if self._last is not None and now > self._last:
            self.tokens = min(self.burst_s, self.tokens + (now - self._last) * self.share)
        self._last = now

    def allows(self, now: float) -> bool:
        """Whether optional work may run now (the bucket is not in debt); counts refusals."""
        self.refill(now)
        if self.tokens > 0:
            return True
        self.denied += 1
        return False

    def charge(self, cpu_s: float) -> None:
        """Spend ``cpu_s`` CPU seconds (may go into debt: the next optional work waits for it)."""
        if cpu_s < 0:
            raise InputError(f"must be >= 0, got {cpu_s}", "budget.charge")
        self.tokens -= cpu_s
        self.spent_s += cpu_s


@dataclass
class CycleGate:
    """When a cycle does its optional work, under a :class:`CpuBudget`.

    - ``full_read(now, cost_s)``: re-read every tracked page (placement, new allocations) at most
      every ``refresh_s``, and no more often than keeps full reads (``cost_s`` CPU seconds the last
      one took) within ``full_share`` of a core; only while the budget has at least half its burst
      left (a shift's decisions come first). The first cycle always reads.
    - ``decide(now, news, changed)``: run the policy when there is something new — a changed page
      space or quotas, ``min_news`` samples of pages outside the fast tier since the last decision
      (fewer wait at most ``trickle_s``: a stray sample is not worth a pass over every page) — or the
      previous cycle moved ``busy_pages`` or more (a move in progress goes on), and the budget is not
      in debt. A quiet cycle decides nothing and costs next to nothing.
    - ``finish(cpu_s, moved)``: charge the cycle's CPU time, remember whether it moved many pages.
    """

    budget: CpuBudget
    refresh_s: float = 30.0
    full_share: float = 0.01
    stale_s: float = 2.0
    busy_pages: int = 256  # moves in a cycle that make the next one decide again without news
    min_news: int = 64  # samples outside the fast tier that make a cycle decide at once ...
    trickle_s: float = 10.0  # ... fewer wait until this long after the last decision
    last_full: float | None = None
    last_decided: float | None = None
    news: int = 0  # samples outside the fast tier since the last decision
    busy: bool = False
    decided: int = 0
    full_reads: int = 0
    quiet: int = 0  # cycles with nothing new to decide on
    held: int = 0  # cycles whose decision (or full read) the budget postponed

    def __post_init__(self) -> None:
        if self.refresh_s <= 0:
            raise InputError(f"must be > 0, got {self.refresh_s}", "refresh_s")
        if not 0 < self.full_share <= 1:
            raise InputError(f"must be in (0, 1], got {self.full_share}", "full_share")

    def interval(self, cost_s: float) -> float:
        return max(self.refresh_s, cost_s / self.full_share)

    def full_read(self, now: float, cost_s: float = 0.0, *, stale: bool = False) -> bool:
        """``stale``: the page space is known to be out of date (new target processes, samples of
        untracked pages): read after ``stale_s`` instead of the full interval, if the budget allows."""
        if self.last_full is not None:
            since = now - self.last_full
            if stale and since >= self.stale_s:
                if not self.budget.allows(now):
                    self.held += 1
                    return False
                self.last_full = now
                self.full_reads += 1
                return True
            if since < self.interval(cost_s):
                return False
            self.budget.refill(now)
            if self.budget.tokens < self.budget.burst_s / 2:
                self.held += 1
                return False
        self.last_full = now
        self.full_reads += 1
        return True

    def decide(self, now: float, news: int, changed: bool) -> bool:
        self.news += news
        since = now - self.last_decided if self.last_decided is not None else float("inf")
        enough = self.news >= self.min_news or (self.news > 0 and since >= self.trickle_s)
        if not (enough or changed or self.busy):
            self.quiet += 1
            return False
        if not self.budget.allows(now):
            self.held += 1
            return False
        self.decided += 1
        self.news, self.last_decided = 0, now
        return True

    def finish(self, cpu_s: float, moved: int) -> None:
        self.budget.charge(max(0.0, cpu_s))
        self.busy = moved >= self.busy_pages  # a trickle of moves is not a move in progress
