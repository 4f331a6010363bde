"""What each operator override or action actually did, judged cycle by cycle from real figures.

An outcome is kept per cgroup (the newest action on it wins; ``ALL`` for a migration pass over every
cgroup). It starts ``accepted``; each cycle the Service hands the book the cycle's facts (``CycleFacts``:
the cgroup's pages per tier after the cycle, the pages the mover moved or was refused for it, the fast
tier's free room, the budget and the rate limits in force) and the book judges:

- ``done``: the goal is met (pinned fast: no page left in the slow tier; pinned slow: none left in the
  fast tier; a quota: the fast pages within [min, max], or every page fast when it has fewer than the
  minimum; unpin or a quota dropped: a decision ran without it; a migration pass: the pass ran and
  moved what it planned for the cgroup, or planned nothing — and then it says so);
- ``in_progress``: not yet, with ``waiting_for`` naming what holds it up (the pause, room in the fast
  tier, a rate limit, the budget, pages the kernel refused, a pin that wins over the quota, the policy);
- ``stuck``: ``stuck_cycles`` cycles in a row without a page moved towards the goal while something
  still holds it up (never for a pause or a pin over a quota: those wait for the operator); it goes back
  to ``in_progress`` as soon as pages move again;
- ``impossible``: the cgroup is gone, the tier it needs no longer exists, or the daemon runs dry.

Each change of state is one ``outcome`` event; figures that change within a state are not.
Pure logic over the facts: no I/O, no clock of its own (``wall`` time stamps ``since``/``updated``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from tierctl.core.mover import MoveReport
from tierctl.core.mover import Outcome as Row
from tierctl.core.plan import PROMOTE, Plan
from tierctl.core.policy import MemoryState, Quota

ALL = "*"  # the key of a migration pass over every cgroup
STATES = ("accepted", "in_progress", "done", "impossible", "stuck")
FINAL = ("done", "impossible")
ACTIONS = ("pin", "unpin", "quota", "migrate")
STUCK_CYCLES = 5
PAUSED = "placement is paused (tierctl resume)"

GoalKind = Literal["fast", "slow", "range", "policy", "pass"]


@dataclass(frozen=True)
class Placement:
    """One cgroup's present pages by tier."""

    fast: int = 0
    slow: int = 0

    @property
    def total(self) -> int:
        return self.fast + self.slow

    def text(self) -> str:
        if not self.total:
            return "none of its pages seen yet"
        return f"{100 * self.fast / self.total:.0f}% of {self.total:,} pages in fast"


@dataclass(frozen=True)
class Moves:
    """What the mover did with one cgroup's pages in one cycle (rows of the plan it was given)."""

    planned: int = 0
    promoted: int = 0
    demoted: int = 0
    target_full: int = 0
    busy: int = 0
    not_permitted: int = 0
    over_budget: int = 0
    dry_run: int = 0

    @property
    def moved(self) -> int:
        return self.promoted + self.demoted

    @property
    def refused(self) -> int:
        return self.busy + self.not_permitted


@dataclass(frozen=True)
class CycleFacts:
    """One cycle as the book needs it (built by the Service from the cycle's snapshot and mover report)."""

    cgroups: frozenset[str]  # the managed cgroups this cycle
    placement: Mapping[str, Placement]  # after the cycle's moves; ALL = every cgroup
    moves: Mapping[str, Moves]  # ALL = every cgroup
    quotas: Mapping[str, Quota]  # the quotas in force, by path (rate limits, minimums)
    pins: Mapping[str, str]
    decided: bool = True  # the policy ran this cycle
    fast_capacity: int = 0
    fast_free: int = 0  # as the decision saw it
    has_slow: bool = True
    budget_pages: int = 0
    moved: int = 0  # pages moved this cycle, every cgroup
    dry_run: bool = False


@dataclass(frozen=True)
class Goal:
    kind: GoalKind
    lo: int = 0  # range: fast pages wanted, at least ...
    hi: int | None = None  # ... and at most


@dataclass
class Outcome:
    cgroup: str
    action: str
    target: str
    goal: Goal
    since: float
    state: str = "accepted"
    waiting_for: str | None = "the next cycle"
    moved_pages: int = 0
    updated: float = 0.0
    message: str = ""
    idle: int = 0  # cycles in a row without progress
    passes: int = 0  # decided cycles since the request
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "target": self.target,
            "state": self.state,
            "waiting_for": self.waiting_for,
            "moved_pages": self.moved_pages,
            "since": self.since,
            "updated": self.updated,
            "message": self.message,
        }


class OutcomeBook:
    def __init__(
        self,
        wall: Callable[[], float],
        emit: Callable[..., None],
        *,
        stuck_cycles: int = STUCK_CYCLES,
    ) -> None:
        """``emit(kind, **info)``: the Service's event log; ``stuck_cycles``: cycles without progress
        before a blocked outcome is called stuck."""
        self.wall = wall
        self.emit = emit
        self.stuck_cycles = stuck_cycles
        self._by_cgroup: dict[str, Outcome] = {}

    def start(
        self,
        cgroup: str,
        action: str,
        target: str,
        goal: Goal,
        message: str,
        *,
        waiting_for: str | None = "the next cycle",
    ) -> dict[str, Any]:
        """Record a new request (it replaces the cgroup's previous outcome); its JSON. Announced by
        the mutation's own event, not by an ``outcome`` event."""
        now = self.wall()
        o = Outcome(cgroup, action, target, goal, since=now, updated=now, message=message)
        o.waiting_for = waiting_for
        self._by_cgroup[cgroup] = o
        return o.to_json()

    def get(self, cgroup: str) -> dict[str, Any] | None:
        o = self._by_cgroup.get(cgroup)
        return None if o is None else o.to_json()

    def to_json(self) -> dict[str, dict[str, Any]]:
        return {k: o.to_json() for k, o in sorted(self._by_cgroup.items())}

    def paused(self) -> None:
        """A cycle that placed nothing because placement is paused."""
        for o in self._live():
            o.idle = 0
            self._set(o, "in_progress", PAUSED, f"{o.action} {o.target}: waiting, {PAUSED}")

    def observe(self, facts: CycleFacts) -> None:
        for o in self._live():
            state, waiting, message = judge(o, facts, self.stuck_cycles)
            self._set(o, state, waiting, message)

    @property
    def waiting(self) -> bool:
        """Whether any outcome is still to be judged (not done, not impossible)."""
        return bool(self._live())

    def _live(self) -> list[Outcome]:
        return [o for o in self._by_cgroup.values() if o.state not in FINAL]

    def _set(self, o: Outcome, state: str, waiting_for: str | None, message: str) -> None:
        changed = state != o.state
        o.state, o.waiting_for, o.message, o.updated = state, waiting_for, message, self.wall()
        if changed:
            self.emit(
                "outcome",
                cgroup=o.cgroup,
                action=o.action,
                target=o.target,
                state=state,
                waiting_for=waiting_for,
                moved_pages=o.moved_pages,
                message=message,
            )


# ---- judging ----------------------------------------------------------------------------------------


def judge(o: Outcome, f: CycleFacts, stuck_cycles: int) -> tuple[str, str | None, str]:
    """The outcome's new (state, waiting_for, message) after one cycle; updates its counters."""
    what = f"{o.action} {o.target}"
    if o.cgroup != ALL and o.cgroup not in f.cgroups:
        return "impossible", None, f"{what}: the cgroup is gone"
    if o.goal.kind == "slow" and not f.has_slow:
        return "impossible", None, f"{what}: this machine has no slow tier any more"
    pl = f.placement.get(o.cgroup, Placement())
    mv = f.moves.get(o.cgroup, Moves())
    o.moved_pages += mv.moved
    o.passes += int(f.decided)
    since = f"{o.moved_pages:,} pages moved since the request"
    if _met(o, pl, mv, f):
        if o.moved_pages == 0:
            return "done", None, f"{what}: nothing needed moving ({pl.text()})"
        return "done", None, f"{what}: done, {since}; {pl.text()}"
    blocked = _blocker(o, pl, mv, f)
    if f.dry_run and blocked is not None and mv.dry_run:
        return "impossible", None, f"{what}: dry-run daemon: {mv.dry_run:,} moves planned, none made"
    progress = _progress(o, pl, mv)
    o.idle = 0 if progress else o.idle + 1
    if o.goal.kind == "range" and o.cgroup in f.pins:  # waits for the operator, never stuck
        return "in_progress", blocked, f"{what}: inactive while pinned to {f.pins[o.cgroup]}; {pl.text()}"
    if o.idle >= stuck_cycles:
        why = blocked or "the policy, which plans no moves for it"
        return "stuck", why, f"{what}: stuck for {o.idle} cycles, waiting for {why}; {pl.text()}"
    if progress:
        rest = f"; limited by {blocked}" if blocked else ""
        return "in_progress", blocked, f"{what}: moving, {since}{rest}; {pl.text()}"
    return "in_progress", blocked, f"{what}: waiting for {blocked or 'the next decision'}; {pl.text()}"


def _met(o: Outcome, pl: Placement, mv: Moves, f: CycleFacts) -> bool:
    g = o.goal
    if g.kind == "fast":
        return pl.slow == 0
    if g.kind == "slow":
        return pl.fast == 0
    if g.kind == "range":
        if o.cgroup in f.pins:
            return False  # the pin decides, the quota waits
        low_ok = pl.fast >= g.lo or pl.slow == 0
        return low_ok and (g.hi is None or pl.fast <= g.hi)
    if o.passes == 0:  # policy / pass: a decision must have run since the request
        return False
    if g.kind == "policy":
        return True
    if mv.planned == 0 and f.budget_pages and f.moved >= f.budget_pages:
        return False  # the others' moves took the budget first: this pass has not had its turn
    blocked = mv.target_full + mv.refused + mv.over_budget + mv.dry_run
    return blocked == 0 and not _rate_limited(o.cgroup, mv, f)


def _wants_up(o: Outcome, pl: Placement) -> bool:
    g = o.goal
    return g.kind == "fast" or (g.kind == "range" and pl.fast < g.lo and pl.slow > 0)


def _progress(o: Outcome, pl: Placement, mv: Moves) -> int:
    g = o.goal
    if g.kind == "fast" or (g.kind == "range" and pl.fast < g.lo):
        return mv.promoted
    if g.kind == "slow" or (g.kind == "range" and g.hi is not None and pl.fast > g.hi):
        return mv.demoted
    return mv.moved


def _rate_limited(cgroup: str, mv: Moves, f: CycleFacts) -> bool:
    q = f.quotas.get(cgroup)
    if q is None:
        return False
    up = q.promote_pages is not None and mv.promoted >= q.promote_pages > 0
    down = q.demote_pages is not None and mv.demoted >= q.demote_pages > 0
    return up or down


def _blocker(o: Outcome, pl: Placement, mv: Moves, f: CycleFacts) -> str | None:
    """What keeps the goal from being met this cycle, from the figures (None: nothing identified)."""
    if o.goal.kind == "range" and (pin := f.pins.get(o.cgroup)):
        return f"a pin that wins over the quota (pinned to {pin}; unpin to apply it)"
    if f.dry_run and mv.dry_run:
        return "nothing: the daemon runs in dry-run mode"
    if mv.refused:
        return (
            f"pages the kernel refused ({mv.busy:,} busy, {mv.not_permitted:,} not allowed) "
            "(retried next cycle)"
        )
    q = f.quotas.get(o.cgroup)
    up = _wants_up(o, pl)
    if q is not None:
        limit = q.promote_pages if up else q.demote_pages
        done = mv.promoted if up else mv.demoted
        if limit is not None and done >= limit:
            return f"the migration rate limit ({limit:,} pages/cycle)"
    if mv.over_budget or (f.budget_pages and f.moved >= f.budget_pages):
        return f"the migration budget ({f.budget_pages:,} pages/cycle, {f.moved:,} used this cycle)"
    if up and (mv.target_full or (not mv.promoted and f.fast_free < pl.slow)):
        return _room(o.cgroup, pl, f)
    if not f.decided and not mv.moved:
        return "the next decision (nothing new to decide on this cycle)"
    return None


def _room(cgroup: str, pl: Placement, f: CycleFacts) -> str:
    """'room in the fast tier (full: …)', naming the cgroups whose pins or minimums hold it."""
    used = f.fast_capacity - f.fast_free
    holders = []
    for path, q in f.quotas.items():
        if path in (cgroup, ALL):
            continue
        held = min(f.placement.get(path, Placement()).fast, q.min_pages)
        if held:
            holders.append((held, path, "pinned" if f.pins.get(path) == "fast" else "minimum"))
    holders.sort(reverse=True)
    held_total = sum(h for h, _, _ in holders)
    text = (
        f"room in the fast tier (full: {used:,} of {f.fast_capacity:,} pages in use, "
        f"{pl.fast:,} of them its own"
    )
    if held_total:
        named = ", ".join(f"{p} {h:,} ({why})" for h, p, why in holders[:3])
        text += f"; {held_total:,} held by pinned cgroups or fast-tier minimums: {named}"
    else:
        text += "; the policy ranks the others' pages higher"
    if pl.total > f.fast_capacity:
        text += f"; it has {pl.total:,} pages, more than the whole fast tier"
    return text + ")"


# ---- the facts of a cycle -----------------------------------------------------------------------------


def cycle_facts(
    st: MemoryState,
    cgroups: Sequence[str],
    tapped: tuple[Plan, MoveReport] | None,
    quotas: Mapping[int, Quota],
    pins: Mapping[str, str],
    *,
    decided: bool,
    budget_pages: int,
    dry_run: bool,
) -> CycleFacts:
    """The facts of the cycle whose snapshot is ``st`` (its ``node`` as after the moves) and whose
    plan and mover report are ``tapped``; ``quotas`` by cgroup index, as the controller had them."""
    nc = max(len(cgroups), st.n_cgroups, 1)
    cg = st.cgroup.astype(np.int64)
    present = st.node >= 0
    fast = st.topology.fast_lut()[st.node + 1]
    fast_c = np.bincount(cg[present & fast], minlength=nc)
    slow_c = np.bincount(cg[present & ~fast], minlength=nc)
    placement = {p: Placement(int(fast_c[i]), int(slow_c[i])) for i, p in enumerate(cgroups)}
    placement[ALL] = Placement(int(fast_c.sum()), int(slow_c.sum()))
    moves: dict[str, Moves] = {}
    moved = 0
    if tapped is not None and len(tapped[0]):
        plan, rep = tapped
        owner = cg[plan.pages]
        up = plan.kind == PROMOTE
        is_moved = rep.outcome == Row.MOVED
        moved = int(np.count_nonzero(is_moved))

        def per(mask: np.ndarray) -> np.ndarray:
            return np.bincount(owner[mask], minlength=nc)

        cols = {
            "planned": per(np.ones(len(plan), dtype=bool)),
            "promoted": per(is_moved & up),
            "demoted": per(is_moved & ~up),
            "target_full": per(rep.outcome == Row.TARGET_FULL),
            "busy": per(rep.outcome == Row.BUSY),
            "not_permitted": per(rep.outcome == Row.NOT_PERMITTED),
            "over_budget": per(rep.outcome == Row.OVER_BUDGET),
            "dry_run": per(rep.outcome == Row.DRY_RUN),
        }
        for i, p in enumerate(cgroups):
            if cols["planned"][i]:
                moves[p] = Moves(**{k: int(v[i]) for k, v in cols.items()})
        moves[ALL] = Moves(**{k: int(v.sum()) for k, v in cols.items()})
    topo = st.topology
    return CycleFacts(
        cgroups=frozenset(cgroups),
        placement=placement,
        moves=moves,
        quotas={cgroups[i]: q for i, q in quotas.items() if 0 <= i < len(cgroups)},
        pins=dict(pins),
        decided=decided,
        fast_capacity=topo.fast_capacity,
        fast_free=topo.fast_free,
        has_slow=bool(topo.slow_nodes),
        budget_pages=budget_pages,
        moved=moved,
        dry_run=dry_run,
    )
