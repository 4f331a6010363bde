"""The controller under a gate: quiet cycles skip the policy, heat decay is deferred but exact, and the
memory view hears where the mover put pages."""

from __future__ import annotations

import numpy as np

from tierctl.core.controller import Controller
from tierctl.core.heat import HeatModel
from tierctl.core.mover import MoveReport, Outcome
from tierctl.core.plan import Plan
from tierctl.core.policy import MemoryState, PolicyView
from tierctl.core.samples import make_batch
from tierctl.core.topology import Node, Topology

N = 64
TOPO = Topology(nodes=(Node(0, 0, 32, 0, cpus=(0,)), Node(1, 1, 64, 32)), demotion_targets={0: 1})


class Memory:
    def __init__(self) -> None:
        self.node = np.r_[np.zeros(32, np.int16), np.ones(32, np.int16)]
        self.moved: list[tuple[np.ndarray, np.ndarray]] = []

    def snapshot(self) -> MemoryState:
        return MemoryState(node=self.node, cgroup=np.zeros(N, np.uint16), n_cgroups=1, topology=TOPO)

    def note_moved(self, pages: np.ndarray, nodes: np.ndarray) -> None:
        self.moved.append((pages.copy(), nodes.copy()))
        self.node[pages] = nodes


class Samples:
    name = "fake"

    def __init__(self, per_cycle: list[list[int]]) -> None:
        self.per_cycle = list(per_cycle)

    def drain(self) -> np.ndarray:
        pages = self.per_cycle.pop(0) if self.per_cycle else []
        return make_batch(np.asarray(pages, dtype=np.int64), 1.0)


class Promote40:
    """Promotes page 40 whenever asked; counts the calls."""

    name = "p"

    def __init__(self) -> None:
        self.calls = 0

    def decide(self, view: PolicyView) -> Plan:
        self.calls += 1
        return Plan.build(np.array([40]), 0, np.zeros(0, np.int64), 1)


class MoveAll:
    def apply(self, plan: Plan, budget_pages: int) -> MoveReport:
        return MoveReport.from_outcomes(plan.pages, np.full(len(plan), Outcome.MOVED, dtype=np.int8))


def run(gate: object, schedule: list[list[int]]) -> tuple[Controller, Promote40, Memory]:
    mem, pol = Memory(), Promote40()
    c = Controller(
        sampler=Samples(schedule),
        memory=mem,
        policy=pol,
        mover=MoveAll(),
        heat=HeatModel(N, half_life=2.0),
        budget_pages=8,
        gate=gate,  # type: ignore[arg-type]
    )
    for now in range(1, len(schedule) + 1):
        c.cycle(now)
    return c, pol, mem


def test_quiet_cycles_skip_the_policy_and_the_decay_catches_up_exactly() -> None:
    schedule = [[40, 41], [], [], [], [41], [], []]
    eager, _, _ = run(None, schedule)
    calls: list[tuple[int, bool]] = []

    def gate(samples: int, changed: bool) -> bool:
        calls.append((samples, changed))
        return samples > 0

    lazy, pol, _ = run(gate, schedule)
    assert pol.calls == 2  # only the two cycles with samples decided
    assert [s for s, _ in calls] == [2, 0, 0, 0, 1, 0, 0]
    lazy._settle_decay()  # what a decision or the next sample would do first
    np.testing.assert_allclose(lazy.heat.heat, eager.heat.heat, rtol=1e-6)


def test_report_says_whether_it_decided_and_splits_cpu_time() -> None:
    c, _, _ = run(lambda s, ch: False, [[1]])
    rep = c.cycle(2)
    assert rep.decided is False and rep.planned_promotions == 0 and rep.promoted == 0
    assert rep.cpu_s >= 0.0 and rep.mover_cpu_s >= 0.0


def test_the_memory_view_hears_where_the_mover_put_pages() -> None:
    _, pol, mem = run(None, [[40]])
    assert pol.calls == 1
    (pages, nodes) = mem.moved[0]
    assert pages.tolist() == [40] and nodes.tolist() == [0]
    assert mem.node[40] == 0


def test_a_quota_change_is_news_for_a_gated_controller() -> None:
    """A pin or a reload changes the quotas: the next cycle decides even without samples."""
    from tierctl.core.policy import Quota

    policy = Promote40()
    asked: list[bool] = []

    def gate(samples: int, changed: bool) -> bool:
        asked.append(changed)
        return samples > 0 or changed

    ctl = Controller(
        sampler=Samples([]),
        memory=Memory(),
        policy=policy,
        mover=MoveAll(),
        heat=HeatModel(N),
        budget_pages=8,
        gate=gate,
    )
    ctl.cycle(1)
    ctl.cycle(2)
    assert policy.calls == 0 and asked == [False, False]
    ctl.quotas = {0: Quota(0, 0)}
    ctl.cycle(3)
    assert policy.calls == 1 and asked[-1] is True
    ctl.quotas = {0: Quota(0, 0)}  # the same quotas again: no news
    ctl.cycle(4)
    assert policy.calls == 1 and asked[-1] is False


def test_only_samples_outside_the_fast_tier_are_news() -> None:
    """Samples of pages already in DRAM confirm the placement: the gate hears 0 of them; pages not
    present (node -1) are no news either."""
    calls: list[int] = []

    def gate(news: int, changed: bool) -> bool:
        calls.append(news)
        return news > 0

    mem, pol = Memory(), Promote40()
    mem.node[50] = -1
    c = Controller(
        sampler=Samples([[1, 2, 3], [1, 40, 40, 50], [50]]),
        memory=mem,
        policy=pol,
        mover=MoveAll(),
        heat=HeatModel(N),
        budget_pages=8,
        gate=gate,
    )
    for now in (1, 2, 3):
        c.cycle(now)
    assert calls == [0, 2, 0] and pol.calls == 1
    assert c.heat.heat[40] > c.heat.heat[1] > 0  # all of them still count as heat (40 twice)


def test_the_mover_gets_promotions_into_free_room_first_then_chunks_in_turn() -> None:
    """Node 0 has 4 free pages: 2 promotions go first (half the room), then demotions and promotions
    alternate in chunks of move_chunk, so pages arrive before every demotion is done."""

    class Swap:
        name = "swap"

        def decide(self, view: PolicyView) -> Plan:
            return Plan.build(np.arange(40, 46), 0, np.arange(0, 6), 1)

    class Record:
        def __init__(self) -> None:
            self.plans: list[Plan] = []

        def apply(self, plan: Plan, budget_pages: int) -> MoveReport:
            self.plans.append(plan)
            return MoveReport.from_outcomes(plan.pages, np.full(len(plan), Outcome.MOVED, dtype=np.int8))

    topo = Topology(nodes=(Node(0, 0, 32, 4, cpus=(0,)), Node(1, 1, 64, 32)), demotion_targets={0: 1})

    class Mem(Memory):
        def snapshot(self) -> MemoryState:
            return MemoryState(node=self.node, cgroup=np.zeros(N, np.uint16), n_cgroups=1, topology=topo)

    mover = Record()
    c = Controller(
        sampler=Samples([[40]]),
        memory=Mem(),
        policy=Swap(),
        mover=mover,
        heat=HeatModel(N),
        budget_pages=64,
        move_chunk=2,
    )
    rep = c.cycle(1)
    assert mover.plans[0].pages.tolist() == [40, 41, 0, 1, 42, 43, 2, 3, 44, 45, 4, 5]
    assert rep.promoted == 6 and rep.demoted == 6


def test_a_forced_decision_shows_the_gate_a_changed_space_once_and_the_report_carries_the_plan() -> None:
    """``force_decision`` (a migration pass on request): the next cycle's gate is asked with
    ``changed`` true, the one after is not; each report carries the plan and what the mover made
    of it (the Service judges outcomes from them)."""
    seen: list[tuple[int, bool]] = []

    def gate(news: int, changed: bool) -> bool:
        seen.append((news, changed))
        return changed

    mem, pol = Memory(), Promote40()
    c = Controller(
        sampler=Samples([[], [], [], []]),
        memory=mem,
        policy=pol,
        mover=MoveAll(),
        heat=HeatModel(N, half_life=2.0),
        budget_pages=8,
        gate=gate,
    )
    c.cycle(1)
    quiet = c.cycle(2)
    c.force_decision()
    forced = c.cycle(3)
    after = c.cycle(4)
    assert [changed for _, changed in seen[1:]] == [False, True, False]
    assert not quiet.decided and forced.decided and not after.decided and pol.calls == seen.count((0, True))
    assert forced.plan is not None and forced.moves is not None
    assert forced.plan.pages.tolist() == [40] and forced.moves.moved.tolist() == [40]
    assert quiet.plan is not None and len(quiet.plan) == 0
