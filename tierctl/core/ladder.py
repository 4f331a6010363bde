"""The memory-pressure escalation ladder: pure decisions, no I/O (docs/pressure.md).

Each cycle the caller reports the machine (memory used and total, the target) and every managed
cgroup (its charge, working-set estimate, how cold its memory is, its ``[pressure]`` policy, whether
it may be killed at all); ``Ladder.decide`` returns the actions to take, in order:

1. **trim** — while the machine is above its target, reclaim from cgroups that allow it, lowest
   priority first, coldest first, down to the larger of their working set and their protected bytes,
   at most at their trim rate (``memory.reclaim`` from the daemon's thread: nothing is throttled);
2. **notify** — when what trimming may take this cycle does not cover the excess, tell the workloads
   that asked to be told (lowest priority first) how much is wanted and by when (``grace_s``);
3. **kill** — when the excess remains and a notified workload's grace has run out (or at once above
   the critical level), kill one cgroup whole: the lowest-priority one whose policy is ``cgroup``,
   at most one per ``kill_interval_s``. Never the daemon's own cgroup, ``init.scope``, or a cgroup
   without an explicit kill policy (the caller marks those ``killable=False``).

Nothing here sets memory.high or memory.max. Under ``dry_run`` the caller logs the same actions
instead of taking them; the decisions do not change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from tierctl.errors import InputError

MIB = 1 << 20
MIN_YIELD = 0.05  # a workload whose trims free less than this share of what they ask is skipped


@dataclass(frozen=True)
class Limits:
    target_ratio: float = 0.95  # keep MemTotal - MemAvailable under this share of MemTotal
    critical_ratio: float = 0.98  # above it, kill without waiting for a grace period
    kill_interval_s: float = 10.0  # at most one kill per interval: let the kernel free the memory
    min_step: int = 2 * MIB  # smaller trims are not worth a memory.reclaim write

    def __post_init__(self) -> None:
        if not 0 < self.target_ratio <= self.critical_ratio <= 1:
            raise InputError(
                f"need 0 < target ({self.target_ratio}) <= critical ({self.critical_ratio}) <= 1",
                "pressure.target",
            )
        if self.kill_interval_s < 0 or self.min_step < 0:
            raise InputError("kill_interval_s and min_step must be >= 0", "pressure.limits")


@dataclass(frozen=True)
class Machine:
    total: int  # MemTotal, bytes
    available: int  # MemAvailable, bytes

    @property
    def used(self) -> int:
        return max(0, self.total - self.available)


@dataclass(frozen=True)
class Workload:
    """One managed cgroup this cycle, and what its profile's ``[pressure]`` table allows."""

    path: str
    current: int  # bytes charged (memory.current)
    working_set: int | None = None  # estimate in bytes; None: not known yet
    cold_share: float = 0.0  # share of its memory the heat model calls cold (0..1): coldest first
    priority: int = 0
    protect: int = 0  # bytes never trimmed away
    trim: bool = True
    trim_rate: int = 32 * MIB  # bytes per second, at most
    notify: bool = True
    grace_s: float = 10.0
    killable: bool = False  # kill policy "cgroup", and not the daemon's own cgroup or init.scope
    # share of what its recent trims asked that its charge really fell by (on a tiered machine the
    # kernel demotes before it frees: a trim that only demotes frees nothing of the machine's memory)
    trim_yield: float = 1.0

    def trimmable(self, step_s: float) -> int:
        """Bytes this cycle's trim may take: above the floor, at most the rate allows. Without a
        working-set estimate the floor is one step below the charge (the estimator probes)."""
        if not self.trim:
            return 0
        pace = int(self.trim_rate * step_s)
        floor = self.protect
        if self.working_set is not None:
            floor = max(floor, self.working_set)
        return max(0, min(pace, self.current - floor))


@dataclass(frozen=True)
class Action:
    kind: str  # "trim" | "notify" | "kill"
    path: str
    nbytes: int = 0  # trim: to reclaim; notify: wanted from it; kill: its charge
    deadline: float | None = None  # notify: when the ladder may go on
    reason: str = ""


@dataclass
class LadderState:
    # path -> (deadline, bytes asked) of its notification in this episode
    notified: dict[str, tuple[float, int]] = field(default_factory=dict)
    last_kill: float | None = None
    above_since: float | None = None  # when the machine went above its target (None: below)


class Ladder:
    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.state = LadderState()

    def decide(
        self, now: float, machine: Machine, workloads: Sequence[Workload], step_s: float
    ) -> list[Action]:
        lim, st = self.limits, self.state
        target = int(lim.target_ratio * machine.total)
        excess = machine.used - target
        present = {w.path for w in workloads}
        st.notified = {p: d for p, d in st.notified.items() if p in present}
        if excess <= 0:
            st.above_since = None
            st.notified.clear()  # a new episode notifies afresh
            return []
        if st.above_since is None:
            st.above_since = now
        order = sorted(workloads, key=lambda w: (w.priority, -w.cold_share, -w.current, w.path))
        actions = self._trims(order, excess, step_s)
        yields = {w.path: w.trim_yield for w in workloads}
        left = excess - sum(int(a.nbytes * yields[a.path]) for a in actions)
        if left <= 0:
            return actions
        kill = self._kill(now, machine, order)
        if kill is not None:  # what it frees comes first: nobody else is asked this cycle
            return [*actions, kill]
        return actions + self._notifications(now, order, left)

    def _trims(self, order: Sequence[Workload], excess: int, step_s: float) -> list[Action]:
        out, left = [], excess
        for w in order:
            if left <= 0:
                break
            if w.trim_yield < MIN_YIELD:  # its trims free nothing now: the next rung has to
                continue
            n = min(w.trimmable(step_s), max(int(left / w.trim_yield), self.limits.min_step))
            if n < self.limits.min_step:
                continue
            floor = "working set" if w.working_set is not None else "one step (working set unknown)"
            out.append(Action("trim", w.path, n, reason=f"above target by {left} bytes; down to its {floor}"))
            left -= int(n * w.trim_yield)  # what it is expected to free
        return out

    def _notifications(self, now: float, order: Sequence[Workload], left: int) -> list[Action]:
        """New notifications for what is still wanted beyond the bytes already asked of workloads
        whose grace has not run out (they are shedding: asking others too would over-shed)."""
        left -= sum(n for d, n in self.state.notified.values() if now < d)
        out = []
        for w in order:
            if left <= 0:
                break
            if not w.notify or w.path in self.state.notified:
                continue
            wanted = min(left, max(0, w.current - w.protect))
            if wanted <= 0:
                continue
            deadline = now + w.grace_s
            self.state.notified[w.path] = (deadline, wanted)
            why = f"shed {wanted} bytes within {w.grace_s:g} s"
            out.append(Action("notify", w.path, wanted, deadline, why))
            left -= wanted
        return out

    def _kill(self, now: float, machine: Machine, order: Sequence[Workload]) -> Action | None:
        lim, st = self.limits, self.state
        if st.last_kill is not None and now - st.last_kill < lim.kill_interval_s:
            return None
        critical = machine.used > lim.critical_ratio * machine.total
        for w in order:
            if not w.killable or w.current <= 0:
                continue
            asked = st.notified.get(w.path)
            expired = asked is not None and now >= asked[0]
            silent = not w.notify  # nobody to wait for: its grace starts when the episode did
            waited = st.above_since is not None and now - st.above_since >= w.grace_s
            if critical or expired or (silent and waited):
                st.last_kill = now
                st.notified.pop(w.path, None)
                why = "critical" if critical else "grace period over"
                return Action("kill", w.path, w.current, reason=f"{why}, still above target")
        return None
