"""The simulated two-tier machine: first-touch allocation, the mover's outcomes, the adapters."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tierctl.core.mover import MoveReport, Outcome
from tierctl.core.plan import Plan
from tierctl.core.samples import make_batch
from tierctl.errors import InputError
from tierctl.sim.machine import FAST, SLOW, MachineSpec, SimMachine, SimMemory, SimMover, SimSampler

OC = Outcome


def _machine(fast: int = 4, n: int = 12, touch: int | None = None) -> SimMachine:
    m = SimMachine(MachineSpec(fast_pages=fast), n)
    if touch:
        m.touch(np.arange(touch))
        m.take_new()
    return m


def _plan(pages: list[int], dest: list[int]) -> Plan:
    kind = np.array([1 if d == FAST else 0 for d in dest], dtype=np.uint8)
    return Plan(np.array(pages, dtype=np.int64), np.array(dest, dtype=np.int16), kind)


def _outcomes(report: MoveReport) -> list[Outcome]:
    return [Outcome(int(o)) for o in report.outcome]


# ---- construction -----------------------------------------------------------------------------
def test_spec_validation() -> None:
    with pytest.raises(InputError, match="needs > 0 pages") as exc:
        SimMachine(MachineSpec(fast_pages=0), 10)
    assert exc.value.where == "--fast-pages"
    with pytest.raises(InputError, match="exceeds the trace's n_pages=10"):
        SimMachine(MachineSpec(fast_pages=11), 10)


def test_new_machine_is_empty() -> None:
    m = SimMachine(MachineSpec(fast_pages=2), 5, cgroup=np.array([0, 3, 1, 1, 0]))
    assert m.node.tolist() == [-1] * 5
    assert m.fast_used == 0 and m.present == 0
    assert m.n_cgroups == 4
    assert m.cgroup.dtype == np.uint16
    assert _machine().n_cgroups == 1


# ---- first touch ------------------------------------------------------------------------------
def test_touch_allocates_fast_first_in_row_order() -> None:
    m = _machine(fast=3, n=10)
    assert m.touch(np.array([5, 2, 5, 7, 1, 2])) == 4
    assert m.node.tolist() == [-1, SLOW, FAST, -1, -1, FAST, -1, FAST, -1, -1]
    assert m.fast_used == 3
    assert m.present == 4
    assert m.take_new().tolist() == [5, 2, 7, 1]
    assert m.take_new().tolist() == []


def test_touch_fills_remaining_room_across_calls() -> None:
    m = _machine(fast=3, n=10)
    assert m.touch(np.array([9, 8])) == 2
    assert m.touch(np.array([8, 0, 9, 4])) == 2  # 8 and 9 are already present
    assert m.node[[9, 8, 0, 4]].tolist() == [FAST, FAST, FAST, SLOW]
    assert m.touch(np.array([9, 0])) == 0
    assert m.fast_used == 3 and m.present == 4
    assert m.take_new().tolist() == [9, 8, 0, 4]


def test_touch_after_demotion_reuses_freed_room() -> None:
    m = _machine(fast=2, n=6, touch=3)
    m.move(_plan([0], [SLOW]), budget=1)
    m.touch(np.array([4, 5]))
    assert m.node.tolist() == [SLOW, FAST, SLOW, -1, FAST, SLOW]
    assert m.fast_used == 2


def test_fast_mask() -> None:
    m = _machine(fast=2, n=4, touch=3)
    assert m.fast_mask().tolist() == [True, True, False, False]


def test_topology_reports_free_pages() -> None:
    m = _machine(fast=4, n=12)
    topo = m.topology()
    assert [(n.id, n.tier, n.capacity_pages, n.free_pages) for n in topo.nodes] == [
        (FAST, 0, 4, 4),
        (SLOW, 1, 12, 12),
    ]
    m.touch(np.arange(7))
    topo = m.topology()
    assert topo.node(FAST).free_pages == 0
    assert topo.node(SLOW).free_pages == 12 - 3
    m.move(_plan([0, 1], [SLOW, SLOW]), budget=5)
    topo = m.topology()
    assert topo.node(FAST).free_pages == 2
    assert topo.node(SLOW).free_pages == 12 - 5
    assert topo.demotion_target() == SLOW
    assert topo.promotion_target() == FAST
    assert topo.page_size == 4096


# ---- moves ------------------------------------------------------------------------------------
def test_move_demote_and_promote() -> None:
    m = _machine(fast=4, n=12, touch=6)  # 0..3 fast, 4..5 slow
    report = m.move(Plan.build([4, 5], FAST, [0, 1], SLOW), budget=10)
    assert report.pages.tolist() == [0, 1, 4, 5]
    assert _outcomes(report) == [OC.MOVED] * 4
    assert report.moved.tolist() == [0, 1, 4, 5]
    assert m.node[:6].tolist() == [SLOW, SLOW, FAST, FAST, FAST, FAST]
    assert m.fast_used == 4


def test_move_already_there() -> None:
    m = _machine(fast=4, n=12, touch=6)
    report = m.move(_plan([0, 5, 1], [FAST, SLOW, SLOW]), budget=10)
    assert _outcomes(report) == [OC.ALREADY_THERE, OC.ALREADY_THERE, OC.MOVED]
    assert report.counts["already_there"] == 2
    # a page is never moved twice by the same plan: the repeat says ALREADY_THERE
    m = _machine(fast=4, n=12, touch=6)
    report = m.move(_plan([4, 4, 3, 3], [SLOW, SLOW, SLOW, SLOW]), budget=10)
    assert _outcomes(report) == [OC.ALREADY_THERE, OC.ALREADY_THERE, OC.MOVED, OC.ALREADY_THERE]
    assert m.fast_used == 3


def test_move_not_present() -> None:
    m = _machine(fast=4, n=12, touch=2)
    report = m.move(_plan([7, 0, 11], [SLOW, SLOW, FAST]), budget=10)
    assert _outcomes(report) == [OC.NOT_PRESENT, OC.MOVED, OC.NOT_PRESENT]
    assert m.node[[7, 11]].tolist() == [-1, -1]
    assert m.fast_used == 1


def test_move_target_full_when_budget_remains() -> None:
    m = _machine(fast=4, n=12, touch=8)
    report = m.move(_plan([5, 6, 7], [FAST, FAST, FAST]), budget=10)
    assert _outcomes(report) == [OC.TARGET_FULL] * 3
    assert report.counts["target_full"] == 3
    assert m.node[5:8].tolist() == [SLOW] * 3


def test_move_room_then_target_full() -> None:
    m = _machine(fast=4, n=12, touch=8)
    m.move(_plan([0], [SLOW]), budget=1)  # one free fast page
    report = m.move(_plan([4, 5, 6, 7], [FAST, FAST, FAST, FAST]), budget=2)
    # the budget counts pages moved: with budget left, every page after the room is gone finds it full
    assert _outcomes(report) == [OC.MOVED, OC.TARGET_FULL, OC.TARGET_FULL, OC.TARGET_FULL]
    assert m.fast_used == 4
    report = m.move(_plan([1, 2], [SLOW, SLOW]), budget=1)
    assert _outcomes(report) == [OC.MOVED, OC.OVER_BUDGET]


def test_move_over_budget() -> None:
    m = _machine(fast=4, n=12, touch=8)
    report = m.move(Plan.build([4, 5, 6], FAST, [0, 1, 2], SLOW), budget=4)
    # the budget is spent in plan order: three demotions, then one promotion
    assert _outcomes(report) == [OC.MOVED] * 4 + [OC.OVER_BUDGET] * 2
    assert report.counts["moved"] == 4
    assert report.counts["over_budget"] == 2
    assert m.fast_used == 2
    report = m.move(_plan([3, 8], [SLOW, FAST]), budget=0)
    assert _outcomes(report) == [OC.OVER_BUDGET, OC.NOT_PRESENT]


def test_move_empty_plan() -> None:
    report = _machine(touch=3).move(Plan.empty(), budget=5)
    assert report.pages.shape == (0,)
    assert sum(report.counts.values()) == 0
    assert set(report.counts) == {o.name.lower() for o in Outcome}


@pytest.mark.parametrize(
    ("pages", "dest", "row"),
    [([0, 1], [SLOW, 2], 1), ([0, 12], [SLOW, SLOW], 1), ([-1, 0], [FAST, SLOW], 0), ([3], [-1], 0)],
)
def test_move_outside_the_machine_raises(pages: list[int], dest: list[int], row: int) -> None:
    m = _machine(fast=4, n=12, touch=6)
    before = m.node.copy()
    with pytest.raises(InputError, match=rf"plan row {row}: .* is outside the machine") as exc:
        m.move(_plan(pages, dest), budget=10)
    assert exc.value.where == "plan"
    assert np.array_equal(m.node, before)


def test_move_report_counts_sum_to_plan_length() -> None:
    m = _machine(fast=3, n=10, touch=6)  # 0..2 fast, 3..5 slow
    plan = _plan([0, 0, 9, 1, 5, 4, 3], [SLOW, SLOW, SLOW, FAST, FAST, FAST, FAST])
    report = SimMover(m).apply(plan, budget_pages=3)
    assert sum(report.counts.values()) == len(plan)
    # slow run: 0 moved, its repeat, 9 absent; fast run: 1 is there, 5 takes the one free page,
    # 4 and 3 find fast full with budget left (a failed attempt moves nothing, costs no budget)
    assert _outcomes(report) == [
        OC.MOVED,
        OC.ALREADY_THERE,
        OC.NOT_PRESENT,
        OC.ALREADY_THERE,
        OC.MOVED,
        OC.TARGET_FULL,
        OC.TARGET_FULL,
    ]
    assert report.counts == {
        "moved": 2,
        "already_there": 2,
        "busy": 0,
        "not_present": 1,
        "gone": 0,
        "target_full": 2,
        "not_permitted": 0,
        "over_budget": 0,
        "dry_run": 0,
    }
    assert report.outcome.dtype == np.int8


def test_no_move_after_an_over_budget_row() -> None:
    m = _machine(fast=3, n=10, touch=6)  # 0..2 fast, 3..5 slow
    m.move(_plan([0], [SLOW]), budget=1)  # one free fast page
    plan = _plan([5, 4, 3, 2], [FAST, FAST, FAST, SLOW])
    out = _outcomes(m.move(plan, budget=2))
    assert out[:2] == [OC.MOVED, OC.TARGET_FULL]
    # OVER_BUDGET means "not attempted: the budget ran out first"; then nothing later may be moved
    first_over = out.index(OC.OVER_BUDGET) if OC.OVER_BUDGET in out else len(out)
    assert OC.MOVED not in out[first_over:]


def test_duplicate_of_a_failed_move_is_not_already_there() -> None:
    m = _machine(fast=4, n=12, touch=8)  # fast is full
    report = m.move(_plan([5, 5], [FAST, FAST]), budget=10)
    assert m.node[5] == SLOW
    assert _outcomes(report)[0] == OC.TARGET_FULL
    assert _outcomes(report)[1] != OC.ALREADY_THERE


@settings(max_examples=60, deadline=None)
@given(
    fast=st.integers(1, 6),
    touched=st.integers(0, 12),
    rows=st.lists(st.tuples(st.integers(0, 11), st.sampled_from([FAST, SLOW])), max_size=20),
    budget=st.integers(0, 10),
)
def test_move_invariants(fast: int, touched: int, rows: list[tuple[int, int]], budget: int) -> None:
    m = _machine(fast=fast, n=12, touch=touched)
    before = m.node.copy()
    plan = _plan([p for p, _ in rows], [d for _, d in rows])
    report = m.move(plan, budget)
    out = report.outcome
    assert sum(report.counts.values()) == len(plan)
    assert report.pages.tolist() == plan.pages.tolist()
    assert m.fast_used <= fast
    assert m.fast_used == int(np.count_nonzero(m.node == FAST))
    assert int(np.count_nonzero(out == OC.MOVED)) <= budget
    changed = np.flatnonzero(m.node != before)
    # every page whose node changed was moved (a page demoted then promoted in one plan moved twice)
    assert set(changed.tolist()) <= set(report.moved.tolist())
    last_moved_to: dict[int, int] = {}
    for p, d, o in zip(plan.pages, plan.dest, out, strict=True):
        if o == OC.MOVED:
            last_moved_to[int(p)] = int(d)
        if o == OC.NOT_PRESENT:
            assert before[p] == -1
    for p, d in last_moved_to.items():  # a page ends where its last move took it
        assert m.node[p] == d
    assert (m.node[before == -1] == -1).all()


# ---- adapters ---------------------------------------------------------------------------------
def test_sim_memory_snapshot() -> None:
    m = SimMachine(MachineSpec(fast_pages=2), 5, cgroup=np.array([0, 1, 1, 0, 2]))
    mem = SimMemory(m)
    m.touch(np.array([3, 1, 4]))
    s = mem.snapshot()
    assert s.node.tolist() == [-1, FAST, -1, FAST, SLOW]
    assert s.cgroup.tolist() == [0, 1, 1, 0, 2]
    assert s.n_cgroups == 3
    assert s.new_pages is not None and s.new_pages.tolist() == [3, 1, 4]
    assert s.topology.fast_free == 0
    s2 = mem.snapshot()
    assert s2.new_pages is not None and s2.new_pages.tolist() == []


def test_sim_sampler_drains_everything_once() -> None:
    s = SimSampler()
    assert s.drain().shape == (0,)
    s.push(make_batch(np.array([1, 2]), 1.0))
    s.push(make_batch(np.array([3]), 2.0))
    out = s.drain()
    assert out["page"].tolist() == [1, 2, 3]
    assert out["weight"].tolist() == [1.0, 1.0, 2.0]
    assert s.drain().shape == (0,)
    s.push(make_batch(np.array([4]), 1.0))
    assert s.drain()["page"].tolist() == [4]
