"""The pressure ladder's decisions: order, floors, grace, rate limits, who may never be killed."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tierctl.core.ladder import MIB, MIN_YIELD, Action, Ladder, Limits, Machine, Workload
from tierctl.errors import InputError

GIB = 1 << 30
TOTAL = 16 * GIB


def machine(used: int) -> Machine:
    return Machine(total=TOTAL, available=TOTAL - used)


def test_nothing_happens_below_the_target() -> None:
    lad = Ladder()
    w = [Workload("/a", 10 * GIB, priority=-5, killable=True)]
    assert lad.decide(0.0, machine(int(0.94 * TOTAL)), w, 1.0) == []
    assert lad.state.above_since is None


def test_the_lowest_priority_is_trimmed_first_and_the_protected_keeps_its_memory() -> None:
    lad = Ladder()
    low = Workload("/batch", 6 * GIB, working_set=2 * GIB, priority=-10, trim_rate=1 * GIB)
    mid = Workload("/web", 5 * GIB, working_set=4 * GIB, priority=0, trim_rate=1 * GIB)
    top = Workload("/db", 5 * GIB, working_set=1 * GIB, priority=10, protect=5 * GIB, trim_rate=1 * GIB)
    used = int(0.95 * TOTAL) + 1500 * MIB
    acts = lad.decide(0.0, machine(used), [top, mid, low], 1.0)
    assert [(a.kind, a.path) for a in acts] == [("trim", "/batch"), ("trim", "/web")]
    assert acts[0].nbytes == 1 * GIB  # its rate this second
    assert sum(a.nbytes for a in acts) >= 1500 * MIB - 1
    # the protected database is never trimmed below its 5 GiB, whatever the pressure
    acts = lad.decide(1.0, machine(TOTAL), [top], 1.0)
    assert not [a for a in acts if a.kind == "trim"]


def test_coldest_first_within_a_priority() -> None:
    lad = Ladder()
    warm = Workload("/warm", 4 * GIB, working_set=1 * GIB, cold_share=0.1)
    cold = Workload("/cold", 4 * GIB, working_set=1 * GIB, cold_share=0.9)
    acts = lad.decide(0.0, machine(int(0.95 * TOTAL) + 10 * MIB), [warm, cold], 1.0)
    assert [a.path for a in acts] == ["/cold"]


def test_notify_then_kill_after_the_grace_period_and_only_the_killable_one() -> None:
    lad = Ladder(Limits(kill_interval_s=10.0))
    runaway = Workload("/jobs/runaway", 12 * GIB, trim=False, priority=-5, grace_s=5.0, killable=True)
    keep = Workload("/system.slice/db.service", 3 * GIB, trim=False, priority=5, killable=False)
    used = int(0.97 * TOTAL)
    acts = lad.decide(0.0, machine(used), [runaway, keep], 1.0)
    assert [(a.kind, a.path) for a in acts] == [("notify", "/jobs/runaway")]
    assert acts[0].deadline == 5.0 and acts[0].nbytes > 0
    assert [a.kind for a in lad.decide(4.0, machine(used), [runaway, keep], 1.0)] == []  # in grace
    acts = lad.decide(5.0, machine(used), [runaway, keep], 1.0)
    assert [(a.kind, a.path) for a in acts] == [("kill", "/jobs/runaway")]
    # the one left is never killed: not killable
    for t in range(6, 60):
        assert all(a.kind != "kill" for a in lad.decide(float(t), machine(TOTAL), [keep], 1.0))


def test_critical_level_kills_at_once_and_kills_are_rate_limited() -> None:
    lad = Ladder(Limits(kill_interval_s=10.0))
    a = Workload("/a", 8 * GIB, trim=False, priority=-2, killable=True)
    b = Workload("/b", 7 * GIB, trim=False, priority=-1, killable=True)
    acts = lad.decide(0.0, machine(int(0.99 * TOTAL)), [a, b], 1.0)
    assert [(x.kind, x.path) for x in acts if x.kind == "kill"] == [("kill", "/a")]
    assert not [x for x in lad.decide(5.0, machine(int(0.99 * TOTAL)), [b], 1.0) if x.kind == "kill"]
    assert [x.path for x in lad.decide(10.0, machine(int(0.99 * TOTAL)), [b], 1.0) if x.kind == "kill"] == [
        "/b"
    ]


def test_a_new_episode_notifies_again() -> None:
    lad = Ladder()
    w = Workload("/a", 8 * GIB, trim=False)
    assert [a.kind for a in lad.decide(0.0, machine(int(0.96 * TOTAL)), [w], 1.0)] == ["notify"]
    assert lad.decide(1.0, machine(int(0.96 * TOTAL)), [w], 1.0) == []
    assert lad.decide(2.0, machine(int(0.5 * TOTAL)), [w], 1.0) == []
    assert [a.kind for a in lad.decide(3.0, machine(int(0.96 * TOTAL)), [w], 1.0)] == ["notify"]


def test_limits_are_checked() -> None:
    with pytest.raises(InputError, match="target"):
        Limits(target_ratio=0.99, critical_ratio=0.95)


workloads = st.lists(
    st.builds(
        Workload,
        path=st.sampled_from([f"/w{i}" for i in range(6)]),
        current=st.integers(0, 8 * GIB),
        working_set=st.none() | st.integers(0, 8 * GIB),
        cold_share=st.floats(0, 1),
        priority=st.integers(-3, 3),
        protect=st.integers(0, 4 * GIB),
        trim=st.booleans(),
        trim_rate=st.integers(0, GIB),
        notify=st.booleans(),
        grace_s=st.floats(0, 20),
        killable=st.booleans(),
        trim_yield=st.floats(0, 1),
    ),
    max_size=6,
    unique_by=lambda w: w.path,
)


@settings(max_examples=200, deadline=None)
@given(steps=st.lists(st.tuples(workloads, st.floats(0.5, 1.0)), min_size=1, max_size=12))
def test_ladder_properties(steps: list[tuple[list[Workload], float]]) -> None:
    lim = Limits(kill_interval_s=3.0)
    lad, twin = Ladder(lim), Ladder(lim)
    kills: list[float] = []
    for t, (ws, used_share) in enumerate(steps):
        now, m = float(t), machine(int(used_share * TOTAL))
        acts = lad.decide(now, m, ws, 1.0)
        assert acts == twin.decide(now, m, ws, 1.0)  # deterministic
        by = {w.path: w for w in ws}
        if m.used <= lim.target_ratio * TOTAL:
            assert acts == []
            continue
        _check_trims(acts, by)
        for a in acts:
            w = by[a.path]
            if a.kind == "notify":
                assert w.notify and a.deadline == now + w.grace_s and 0 < a.nbytes <= w.current - w.protect
            if a.kind == "kill":
                assert w.killable and w.current > 0
                kills.append(now)
        assert len([a for a in acts if a.kind == "kill"]) <= 1
    assert all(b - a >= lim.kill_interval_s for a, b in itertools.pairwise(kills))


def _check_trims(acts: list[Action], by: dict[str, Workload]) -> None:
    trims = [a for a in acts if a.kind == "trim"]
    for a in trims:
        w = by[a.path]
        floor = max(w.protect, w.working_set or 0)
        assert w.trim and 0 < a.nbytes <= w.current - floor and a.nbytes <= w.trim_rate
    # a higher-priority workload is trimmed only once every lower one gave what it could
    trimmed = {a.path: a.nbytes for a in trims}
    for a in trims:
        for w in by.values():
            useful = w.trimmable(1.0) >= 2 * MIB and w.trim_yield >= MIN_YIELD
            if w.priority < by[a.path].priority and useful:
                assert trimmed.get(w.path, 0) == w.trimmable(1.0), (w, trimmed)


def test_trims_that_free_nothing_are_skipped_and_the_ladder_goes_on() -> None:
    """On a tiered machine memory.reclaim may only demote: the charge stays, so the trims do not
    count, and the workloads are notified instead of being trimmed forever."""
    lad = Ladder()
    demotes_only = Workload("/a", 8 * GIB, working_set=GIB, trim_rate=GIB, trim_yield=0.01)
    acts = lad.decide(0.0, machine(int(0.96 * TOTAL)), [demotes_only], 1.0)
    assert [a.kind for a in acts] == ["notify"]
    half = Workload("/a", 8 * GIB, working_set=GIB, trim_rate=GIB, trim_yield=0.5)
    acts = Ladder().decide(0.0, machine(int(0.95 * TOTAL) + 100 * MIB), [half], 1.0)
    assert [(a.kind, a.nbytes) for a in acts] == [("trim", 200 * MIB)]  # asks twice what it needs
