"""Policies: registry, static, nb2, the default tierctl policy, the controller loop, ranking helpers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pytest

from tierctl.core.controller import Controller
from tierctl.core.heat import HeatModel
from tierctl.core.plan import DEMOTE, PROMOTE, Plan
from tierctl.core.policies import DEFAULT_POLICY, POLICIES, make_policy
from tierctl.core.policies.nb2 import Nb2Policy
from tierctl.core.policies.static import StaticPolicy
from tierctl.core.policies.tierctl import TierctlPolicy
from tierctl.core.policy import MemoryState, PolicyView, Quota, quota_arrays, rank_within_groups, top_k
from tierctl.core.samples import make_batch
from tierctl.core.topology import Node, Topology
from tierctl.errors import InputError
from tierctl.sim.machine import FAST, SLOW, MachineSpec, SimMachine, SimMemory, SimMover, SimSampler

NOW = 5


def _setup(
    counts: Sequence[int], fast: int = 10, cgroup: Sequence[int] | None = None, now: int = NOW
) -> tuple[SimMachine, HeatModel]:
    """A machine with every page touched in id order (the first ``fast`` pages land in DRAM) and a
    heat model that saw ``counts[p]`` unit-weight samples of page p during cycle ``now``."""
    n = len(counts)
    m = SimMachine(MachineSpec(fast_pages=fast), n, None if cgroup is None else np.asarray(cgroup))
    m.touch(np.arange(n))
    m.take_new()
    h = HeatModel(n)
    h.ingest(make_batch(np.repeat(np.arange(n), counts), 1.0), now)
    return m, h


def _view(
    m: SimMachine,
    h: HeatModel,
    *,
    now: int = NOW,
    budget: int = 10,
    quotas: Mapping[int, Quota] | None = None,
) -> PolicyView:
    state = MemoryState(node=m.node, cgroup=m.cgroup, n_cgroups=m.n_cgroups, topology=m.topology())
    return PolicyView(now=now, heat=h, memory=state, budget=budget, quotas=quotas or {})


def _check_plan_shape(plan: Plan, m: SimMachine) -> None:
    """Every plan: demotions first, promotions of present slow pages to FAST, demotions of fast
    pages to SLOW, no page twice."""
    kinds = plan.kind.tolist()
    assert kinds == sorted(kinds)  # DEMOTE (0) before PROMOTE (1)
    assert (plan.dest[plan.kind == PROMOTE] == FAST).all()
    assert (plan.dest[plan.kind == DEMOTE] == SLOW).all()
    assert (m.node[plan.promote] == SLOW).all()
    assert (m.node[plan.demote] == FAST).all()
    assert np.unique(plan.pages).shape[0] == len(plan)


# ---- registry ---------------------------------------------------------------------------------
def test_make_policy_by_name_with_options() -> None:
    assert isinstance(make_policy("static"), StaticPolicy)
    p = make_policy("nb2", hot_threshold_cycles=3)
    assert isinstance(p, Nb2Policy) and p.hot_threshold_cycles == 3
    t = make_policy(DEFAULT_POLICY, hysteresis=0.5)
    assert isinstance(t, TierctlPolicy) and t.hysteresis == 0.5
    assert sorted(POLICIES) == ["ewma", "nb2", "static", "tierctl"]
    assert {name: make_policy(name).name for name in POLICIES} == {n: n for n in POLICIES}


def test_policy_registry_is_immutable() -> None:
    with pytest.raises(TypeError):
        POLICIES["mine"] = StaticPolicy  # type: ignore[index]


def test_make_policy_unknown_name_has_hint() -> None:
    with pytest.raises(InputError, match=r"unknown policy 'tierclt' \(did you mean 'tierctl'\?\)") as exc:
        make_policy("tierclt")
    assert exc.value.where == "--policy"
    assert "known: tierctl, static, nb2" in str(exc.value)
    assert exc.value.exit_code == 2


def test_make_policy_unknown_name_without_close_match() -> None:
    with pytest.raises(InputError, match="unknown policy 'zzzz'; known") as exc:
        make_policy("zzzz")
    assert "did you mean" not in str(exc.value)


@pytest.mark.parametrize(
    ("factory", "options", "where"),
    [
        (TierctlPolicy, {"hysteresis": -0.1}, "tierctl.hysteresis"),
        (TierctlPolicy, {"headroom_min": 0.2, "headroom_max": 0.1}, "tierctl.headroom"),
        (TierctlPolicy, {"headroom_max": 1.0}, "tierctl.headroom"),
        (TierctlPolicy, {"min_residency": -1}, "tierctl.min_residency"),
        (TierctlPolicy, {"growth_alpha": 0.0}, "tierctl.growth_alpha"),
        (Nb2Policy, {"hot_threshold_cycles": 0}, "nb2.hot_threshold_cycles"),
        (Nb2Policy, {"low_wmark": 0.3, "high_wmark": 0.2}, "nb2.wmark"),
    ],
)
def test_policy_option_validation(factory: type, options: dict[str, float], where: str) -> None:
    with pytest.raises(InputError) as exc:
        factory(**options)
    assert exc.value.where == where


def test_quota_validation_and_arrays() -> None:
    with pytest.raises(InputError, match="min must be >= 0"):
        Quota(min_pages=-1)
    with pytest.raises(InputError, match=r"max \(2\) is below min \(3\)"):
        Quota(min_pages=3, max_pages=2)
    m, h = _setup([0] * 4, fast=2, cgroup=[0, 1, 2, 2])
    view = _view(m, h, quotas={1: Quota(1, 5), 2: Quota(max_pages=0), 7: Quota(9, 9)})
    mins, maxs = quota_arrays(view)
    assert mins.tolist() == [0, 1, 0]
    assert maxs[1:].tolist() == [5, 0]
    assert maxs[0] >= 1 << 60  # unlimited


# ---- static -----------------------------------------------------------------------------------
def test_static_never_moves() -> None:
    m, h = _setup([0] * 5 + [50] * 5, fast=5)
    plan = StaticPolicy().decide(_view(m, h))
    assert len(plan) == 0
    assert plan.pages.dtype == np.int64


# ---- nb2 --------------------------------------------------------------------------------------
def test_nb2_promotes_recently_sampled_slow_pages_and_demotes_least_recent() -> None:
    counts = [0] * 20
    counts[12], counts[15], counts[3] = 1, 4, 2  # 12 and 15 are slow, 3 is fast
    m, h = _setup(counts, fast=10)
    h.ingest(make_batch(np.array([1]), 1.0), NOW - 2)  # page 1 seen earlier (not "recent")
    plan = Nb2Policy().decide(_view(m, h, budget=10))
    _check_plan_shape(plan, m)
    # most recent first, then the hotter: 15 before 12
    assert plan.promote.tolist() == [15, 12]
    # fast is full: make room for both, least recently seen first (never-seen 0 and 2, by position)
    assert plan.demote.tolist() == [0, 2]
    assert plan.pages.tolist() == [0, 2, 15, 12]


def test_nb2_ignores_pages_not_sampled_in_the_latest_cycle() -> None:
    counts = [0] * 20
    m, h = _setup(counts, fast=10)
    h.ingest(make_batch(np.array([14]), 1.0), NOW - 1)
    assert len(Nb2Policy().decide(_view(m, h))) == 0
    # a wider window includes it
    plan = Nb2Policy(hot_threshold_cycles=2).decide(_view(m, h))
    assert plan.promote.tolist() == [14]


def test_nb2_demotes_under_the_watermark_without_candidates() -> None:
    m, h = _setup([0] * 20, fast=10)
    h.ingest(make_batch(np.array([1]), 1.0), NOW - 2)
    h.ingest(make_batch(np.array([0, 4]), 1.0), NOW - 1)
    h.ingest(make_batch(np.array([5, 6, 7, 8, 9]), 1.0), NOW)  # 2 and 3 never seen
    plan = Nb2Policy(low_wmark=0.1, high_wmark=0.3).decide(_view(m, h, budget=10))
    # high watermark = 3 free pages; the least recently seen go first (never-seen ties by position)
    assert plan.demote.tolist() == [2, 3, 1]
    assert plan.promote.tolist() == []


def test_nb2_fills_free_room_down_to_the_low_watermark() -> None:
    m, h = _setup([0] * 20, fast=10)
    m.move(Plan.build([], FAST, [0, 1, 2, 3], SLOW), budget=4)  # 4 free fast pages
    h.ingest(make_batch(np.array([10, 11, 12, 13, 14]), 1.0), NOW)
    plan = Nb2Policy(low_wmark=0.2, high_wmark=0.2).decide(_view(m, h, budget=10))
    # high=2: need = 2 + 5 - 4 = 3 demotions; promotions keep low=2 pages free: 4 + 3 - 2 = 5
    assert len(plan.demote) == 3
    assert plan.promote.tolist() == [10, 11, 12, 13, 14]


@pytest.mark.parametrize("budget", [0, 1, 2, 3, 5, 8])
def test_nb2_respects_the_budget(budget: int) -> None:
    counts = [0] * 10 + [3] * 10
    m, h = _setup(counts, fast=10)
    plan = Nb2Policy().decide(_view(m, h, budget=budget))
    assert len(plan) <= budget
    _check_plan_shape(plan, m)
    # half for demotions, the rest for promotions into the room they make
    assert len(plan.demote) == budget // 2
    assert len(plan.promote) == budget // 2


def test_nb2_never_sampled_pages_are_not_recent() -> None:
    counts = [0] * 20
    counts[15] = 1
    m, h = _setup(counts, fast=10, now=1)
    plan = Nb2Policy(hot_threshold_cycles=3).decide(_view(m, h, now=1, budget=20))
    assert plan.promote.tolist() == [15]


# ---- tierctl ----------------------------------------------------------------------------------
# 20 pages, 10 fast: 0..4 cold fast, 5..9 hot fast, 10..14 hot slow, 15..19 cold slow
SEPARATED = [0] * 5 + [100] * 5 + [100] * 5 + [0] * 5


def test_tierctl_swaps_hot_slow_pages_for_cold_fast_pages() -> None:
    m, h = _setup(SEPARATED)
    policy = TierctlPolicy()
    plan = policy.decide(_view(m, h, budget=10))
    _check_plan_shape(plan, m)
    assert plan.pages.tolist() == [0, 1, 2, 3, 4, 10, 11, 12, 13, 14]
    assert plan.kind.tolist() == [DEMOTE] * 5 + [PROMOTE] * 5
    assert plan.dest.tolist() == [SLOW] * 5 + [FAST] * 5
    assert policy.stats is not None
    assert (policy.stats.swaps, policy.stats.fills, policy.stats.forced_demotions) == (5, 0, 0)
    # applied, the hot pages are all in DRAM
    m.move(plan, 10)
    assert np.flatnonzero(m.node == FAST).tolist() == list(range(5, 15))


@pytest.mark.parametrize("budget", range(0, 13))
def test_tierctl_respects_the_budget(budget: int) -> None:
    m, h = _setup(SEPARATED)
    plan = TierctlPolicy().decide(_view(m, h, budget=budget))
    assert len(plan) <= budget
    _check_plan_shape(plan, m)
    swaps = min(5, budget // 2)
    assert plan.demote.tolist() == list(range(swaps))
    assert plan.promote.tolist() == list(range(10, 10 + swaps))


def test_tierctl_budget_with_random_heat() -> None:
    rng = np.random.default_rng(42)
    for _ in range(40):
        n = int(rng.integers(8, 60))
        fast = int(rng.integers(1, n))
        counts = rng.poisson(rng.choice([0.3, 3.0, 30.0], size=n))
        cg = rng.integers(0, 3, size=n)
        m, h = _setup(counts.tolist(), fast=fast, cgroup=cg.tolist())
        if rng.random() < 0.5:  # some free room
            k = int(rng.integers(0, fast + 1))
            m.move(Plan.build([], FAST, np.arange(k), SLOW), budget=k)
        budget = int(rng.integers(0, 20))
        quotas = {0: Quota(min_pages=int(rng.integers(0, 4))), 1: Quota(max_pages=int(rng.integers(0, 6)))}
        policy = TierctlPolicy(headroom_min=0.05, headroom_max=0.2)
        plan = policy.decide(_view(m, h, budget=budget, quotas=quotas))
        assert len(plan) <= budget
        _check_plan_shape(plan, m)
        fast_c = np.bincount(m.cgroup[m.fast_mask()], minlength=3)
        report = m.move(plan, budget)
        assert report.counts["moved"] == len(plan)  # demotions come first and make the room
        assert m.fast_used <= fast
        after = np.bincount(m.cgroup[m.fast_mask()], minlength=3)
        # promotions never take cgroup 1 over its max; demotions never take cgroup 0 under its min
        assert after[1] <= max(fast_c[1], quotas[1].max_pages)
        assert after[0] >= min(fast_c[0], quotas[0].min_pages)


def test_tierctl_demotes_a_cgroup_over_its_max() -> None:
    # cgroup 0 owns the fast tier (heat 5..14), cgroup 1 is cold in the slow tier
    counts = list(range(5, 15)) + [0] * 10
    cg = [0] * 10 + [1] * 10
    m, h = _setup(counts, cgroup=cg)
    # without the quota nothing moves
    assert len(TierctlPolicy().decide(_view(m, h, budget=20))) == 0
    policy = TierctlPolicy()
    plan = policy.decide(_view(m, h, budget=20, quotas={0: Quota(max_pages=6)}))
    _check_plan_shape(plan, m)
    assert plan.demote.tolist() == [0, 1, 2, 3]  # its 4 coldest
    assert plan.promote.tolist() == []
    assert policy.stats is not None and policy.stats.forced_demotions == 4
    m.move(plan, 20)
    assert int(np.count_nonzero(m.fast_mask() & (m.cgroup == 0))) == 6


def test_tierctl_max_quota_demotions_are_limited_by_the_budget() -> None:
    counts = list(range(5, 15)) + [3] * 10
    cg = [0] * 10 + [1] * 10
    m, h = _setup(counts, cgroup=cg)
    plan = TierctlPolicy().decide(_view(m, h, budget=4, quotas={0: Quota(max_pages=6)}))
    # half the budget for forced demotions while there are pages to promote, the other half fills
    assert plan.demote.tolist() == [0, 1]
    assert plan.promote.tolist() == [10, 11]
    # with a large budget: all 4 over the max go, and the room they free is filled
    plan = TierctlPolicy().decide(_view(m, h, budget=20, quotas={0: Quota(max_pages=6)}))
    assert plan.demote.tolist() == [0, 1, 2, 3]
    assert plan.promote.tolist() == [10, 11, 12, 13]


def _min_quota_setup() -> tuple[SimMachine, HeatModel]:
    # cgroup 0 in DRAM: two unused pages and heat 3..10; cgroup 1 in the slow tier, every page
    # hotter than all of cgroup 0's, in distinct heat bins
    counts = [0, 0, *range(3, 11)] + [int(100 * 2 ** (i / 4)) for i in range(10)]
    cg = [0] * 10 + [1] * 10
    return _setup(counts, cgroup=cg)


def test_tierctl_without_min_quota_swaps_everything() -> None:
    m, h = _min_quota_setup()
    plan = TierctlPolicy().decide(_view(m, h, budget=20))
    assert sorted(plan.demote.tolist()) == list(range(10))
    assert sorted(plan.promote.tolist()) == list(range(10, 20))


def test_tierctl_min_quota_stops_demotions() -> None:
    m, h = _min_quota_setup()
    plan = TierctlPolicy().decide(_view(m, h, budget=20, quotas={0: Quota(min_pages=8)}))
    _check_plan_shape(plan, m)
    assert plan.demote.tolist() == [0, 1]  # cgroup 0's two coldest, no more
    assert plan.promote.tolist() == [19, 18]  # cgroup 1's two hottest
    m.move(plan, 20)
    assert int(np.count_nonzero(m.fast_mask() & (m.cgroup == 0))) == 8


@pytest.mark.parametrize(("counts", "label"), [((10, 11), "near-equal heat"), ((40, 44), "10 % hotter")])
def test_tierctl_hysteresis_blocks_small_differences(counts: tuple[int, int], label: str) -> None:
    m, h = _setup([counts[0]] * 10 + [counts[1]] * 10)
    assert len(TierctlPolicy(region_pages=1).decide(_view(m, h))) == 0, label
    # without hysteresis and noise margin the same view does swap: the test can fail
    plan = TierctlPolicy(hysteresis=0.0, noise_z=0.0, region_pages=1).decide(_view(m, h))
    assert plan.demote.tolist() == [0, 1, 2, 3, 4]
    assert plan.promote.tolist() == [10, 11, 12, 13, 14]


def test_tierctl_noise_margin_blocks_swaps_on_few_samples() -> None:
    # twice as hot, but 2 samples against 1: within one standard deviation of Poisson noise
    m, h = _setup([1] * 10 + [2] * 10)
    assert len(TierctlPolicy(region_pages=1, noise_z=1.0).decide(_view(m, h))) == 0
    assert len(TierctlPolicy(noise_z=0.0, region_pages=1).decide(_view(m, h))) == 10


def test_tierctl_region_prior_pools_a_uniform_region() -> None:
    """20 pages alike, 1 or 2 samples each: with neighbours to learn from, 2 against 1 is noise of
    one rate (every estimate shrinks to the region's), so even without a noise margin nothing moves."""
    m, h = _setup([1, 2] * 10)
    assert len(TierctlPolicy(noise_z=0.0, hysteresis=0.0).decide(_view(m, h))) == 0
    assert len(TierctlPolicy(noise_z=0.0, hysteresis=0.0, region_pages=1).decide(_view(m, h))) > 0


def test_tierctl_one_sample_is_enough_against_never_seen_pages() -> None:
    # one sample (weight 100 = the unit) of a slow page against never-seen fast pages is enough for
    # a swap (a hint fault or a DAMON region comes once per scan, seconds apart: waiting for a second
    # one missed whole phases in the guest)
    m = SimMachine(MachineSpec(fast_pages=2), 4)
    m.touch(np.arange(4))
    h = HeatModel(4)
    h.ingest(make_batch(np.array([2, 3]), 100.0), NOW)
    assert len(TierctlPolicy(region_pages=1).decide(_view(m, h))) == 4
    # against fast pages seen as often, one sighting is noise: no swap
    h.ingest(make_batch(np.array([0, 1]), 100.0), NOW)
    assert len(TierctlPolicy(region_pages=1).decide(_view(m, h))) == 0


def test_tierctl_unsampled_pages_of_a_hot_region_come_in() -> None:
    """A uniform hot region of 64 pages in the slow tier, sampled sparsely (a third of its pages
    once), against 64 fast pages never sampled: the region prior brings in its unsampled pages too."""
    n = 128
    m = SimMachine(MachineSpec(fast_pages=64), n)
    m.touch(np.arange(n))  # 0..63 fast, 64..127 slow
    h = HeatModel(n)
    seen = np.arange(64, 128, 3)
    h.ingest(make_batch(seen, 1.0), NOW, unit=1.0)
    plan = TierctlPolicy(region_pages=64).decide(_view(m, h, budget=128))
    assert np.isin(plan.promote, seen).sum() < plan.promote.shape[0]  # not only the sampled ones
    assert plan.promote.shape[0] >= 48
    # page by page, only sampled pages could come in
    plan = TierctlPolicy(region_pages=1).decide(_view(m, h, budget=128))
    assert np.isin(plan.promote, seen).all()


def test_tierctl_silence_is_evidence_of_coldness() -> None:
    """Two pages with similar decayed heat: one was seen often long ago, then never again; the other
    is seen at a steady trickle. Silence that a hot page would almost never show makes the first the
    colder estimate; with no hazard (silence ignored) it stays the hotter."""
    from tierctl.core.estimate import RateEstimator

    n = 64  # pages 2.. are never seen: the region's level is near 0
    h = HeatModel(n, half_life=8.0)
    h.ingest(make_batch(np.zeros(40, np.int64), 1.0), 0, unit=1.0)  # page 0: 40 samples at cycle 0
    for t in range(1, 13):
        h.decay()
        if t % 2 == 0:
            h.ingest(make_batch(np.array([1]), 1.0), t, unit=1.0)  # page 1: one every other cycle
    present, cg = np.ones(n, bool), np.zeros(n, np.uint16)
    est = RateEstimator(region_pages=n, hazard=0.05)
    est.prepare(h, present, cg, 12)
    assert est.rate(np.array([0]))[0] < 0.5 * est.rate(np.array([1]))[0]
    off = RateEstimator(region_pages=n, hazard=0.0)
    off.prepare(h, present, cg, 12)
    assert off.rate(np.array([0]))[0] > off.rate(np.array([1]))[0]


def test_tierctl_region_level_follows_a_region_that_went_quiet() -> None:
    """A region busy for many cycles goes quiet: its pages' estimates drop within a few cycles, long
    before their decayed heat does (half-life 8)."""
    from tierctl.core.estimate import RateEstimator

    n = 64
    h = HeatModel(n, half_life=8.0)
    present, cg = np.ones(n, bool), np.zeros(n, np.uint16)
    est = RateEstimator(region_pages=32, level_half_life=1.0, hazard=0.0)
    for t in range(20):
        h.decay()
        h.ingest(make_batch(np.arange(n), 1.0), t, unit=1.0)  # both regions busy
        est.prepare(h, present, cg, t)
    for t in range(20, 23):
        h.decay()
        h.ingest(make_batch(np.arange(32, 64), 1.0), t, unit=1.0)  # region 0 quiet
        est.prepare(h, present, cg, t)
    r = est.rate(np.array([0, 40]))
    assert r[0] < 0.2 * r[1]
    assert h.heat[0] > 0.6 * h.heat[40]  # the raw heat has barely moved


def test_tierctl_min_residency_prevents_moving_back() -> None:
    m, h = _setup(SEPARATED)
    plan = TierctlPolicy().decide(_view(m, h, now=NOW))
    report = m.move(plan, 10)
    h.note_moved(report.moved, NOW)
    assert sorted(report.moved.tolist()) == [0, 1, 2, 3, 4, 10, 11, 12, 13, 14]
    # next cycle the heat flips: the pages just demoted are hot, the pages just promoted are cold
    h.load(np.zeros(h.n_pages))
    flipped = np.repeat(np.arange(10), 100)  # 0..4 (now slow) and 5..9 (fast) hot
    h.ingest(make_batch(flipped, 1.0), NOW + 1)
    assert len(TierctlPolicy().decide(_view(m, h, now=NOW + 1))) == 0
    # the same view with min_residency=1 does move them back: the test can fail
    plan = TierctlPolicy(min_residency=1).decide(_view(m, h, now=NOW + 1))
    assert sorted(plan.promote.tolist()) == [0, 1, 2, 3, 4]
    # two cycles after the move they may move again
    h.ingest(make_batch(flipped, 1.0), NOW + 2)
    plan = TierctlPolicy().decide(_view(m, h, now=NOW + 2))
    assert sorted(plan.promote.tolist()) == [0, 1, 2, 3, 4]
    assert sorted(plan.demote.tolist()) == [10, 11, 12, 13, 14]


def test_tierctl_never_moved_pages_are_settled() -> None:
    m, h = _setup(SEPARATED, now=1)
    plan = TierctlPolicy(min_residency=3).decide(_view(m, h, now=1))
    assert plan.demote.tolist() == [0, 1, 2, 3, 4]


def test_tierctl_restores_headroom_when_fast_is_full() -> None:
    counts = list(range(5, 15)) + [0] * 10
    m, h = _setup(counts)
    assert m.topology().fast_free == 0
    policy = TierctlPolicy(headroom_min=0.2, headroom_max=0.5)
    plan = policy.decide(_view(m, h))
    assert plan.demote.tolist() == [0, 1]  # the two coldest
    assert plan.promote.tolist() == []
    assert policy.stats is not None
    assert (policy.stats.headroom, policy.stats.target) == (2, 8)
    m.move(plan, 10)
    assert m.topology().fast_free >= 0.2 * 10


@pytest.mark.parametrize(
    ("budget", "demote", "promote"),
    [(10, [0, 1, 2, 3, 4, 5], [19, 18, 17, 16]), (4, [0, 1, 2], [19]), (1, [0], [])],
)
def test_tierctl_headroom_restore_comes_before_swaps(
    budget: int, demote: list[int], promote: list[int]
) -> None:
    # fast full of unused pages; slow pages all hot, in distinct heat bins
    m, h = _setup([0] * 10 + [int(100 * 2 ** (i / 4)) for i in range(10)])
    policy = TierctlPolicy(headroom_min=0.2, headroom_max=0.5)
    plan = policy.decide(_view(m, h, budget=budget))
    assert plan.demote.tolist() == demote
    assert plan.promote.tolist() == promote
    m.move(plan, budget)
    assert m.topology().fast_free == min(2, budget)


def test_tierctl_headroom_follows_allocation_rate() -> None:
    m = SimMachine(MachineSpec(fast_pages=100), 400)
    h = HeatModel(400)
    policy = TierctlPolicy(headroom_min=0.01, headroom_max=0.2, growth_alpha=0.5, headroom_cycles=2.0)
    m.touch(np.arange(100))
    policy.decide(_view(m, h, now=1))
    assert policy.stats is not None and policy.stats.headroom == 1
    m.touch(np.arange(100, 120))  # 20 new pages: growth = 0.5 * 20 = 10 -> headroom 20
    policy.decide(_view(m, h, now=2))
    assert policy.stats.growth == pytest.approx(10.0)
    assert policy.stats.headroom == 20
    m.touch(np.arange(120, 300))  # a burst: capped at headroom_max * capacity
    policy.decide(_view(m, h, now=3))
    assert policy.stats.headroom == 20
    assert policy.stats.growth == pytest.approx(95.0)


def test_tierctl_fills_free_room_with_hottest_slow_pages() -> None:
    m, h = _setup([5] * 10 + [1, 9, 3, 7, 0, 0, 0, 0, 0, 0])
    m.move(Plan.build([], FAST, [0, 1, 2], SLOW), budget=3)
    policy = TierctlPolicy()
    plan = policy.decide(_view(m, h, budget=10))
    # 3 free pages: the two hottest slow pages, then the first of the three at heat 5 (by position);
    # the rest are no clear gain over the fast pages at heat 5
    assert plan.demote.tolist() == []
    assert plan.promote.tolist() == [11, 13, 0]
    assert policy.stats is not None
    assert (policy.stats.fills, policy.stats.swaps) == (3, 0)


def test_tierctl_swaps_when_hot_set_exceeds_fast_tier() -> None:
    # 10 cold fast pages; 11 equally hot slow pages (one more than DRAM holds)
    m, h = _setup([1] * 10 + [100] * 11)
    plan = TierctlPolicy().decide(_view(m, h, budget=20))
    assert sorted(plan.demote.tolist()) == list(range(10))
    assert len(plan.promote) == 10
    assert set(plan.promote.tolist()) <= set(range(10, 21))


def test_tierctl_with_hand_built_topology_and_raw_arrays() -> None:
    # three nodes: two DRAM nodes (0, 2), one CXL node (3) and a not-present page (-1)
    node = np.array([0, 0, 2, 2, 3, 3, 3, -1], dtype=np.int16)
    topo = Topology(
        nodes=(Node(0, 0, 2, 0), Node(2, 0, 2, 0), Node(3, 1, 100, 97)), demotion_targets={0: 3, 2: 3}
    )
    state = MemoryState(node=node, cgroup=np.zeros(8, np.uint16), n_cgroups=1, topology=topo)
    h = HeatModel(8)
    h.ingest(make_batch(np.repeat(np.array([1, 2, 3, 4, 5, 7]), [50, 1, 50, 50, 40, 99]), 1.0), NOW)
    plan = TierctlPolicy().decide(PolicyView(now=NOW, heat=h, memory=state, budget=10, quotas={}))
    assert plan.pages.tolist() == [0, 2, 4, 5]
    assert plan.dest.tolist() == [3, 3, 0, 0]
    assert plan.kind.tolist() == [DEMOTE, DEMOTE, PROMOTE, PROMOTE]


# ---- controller -------------------------------------------------------------------------------
def _run_controller(policy: str, cycles: int, budget: int = 4) -> tuple[SimMachine, Controller, list]:
    m = SimMachine(MachineSpec(fast_pages=8), 32)
    sampler = SimSampler()
    ctl = Controller(
        sampler=sampler,
        memory=SimMemory(m),
        policy=make_policy(policy),
        mover=SimMover(m),
        heat=HeatModel(32),
        budget_pages=budget,
    )
    hot = np.repeat(np.arange(24, 32), 5)
    reports = []
    for e in range(cycles):
        if e > 0:
            reports.append(ctl.cycle(now=e))
        m.touch(np.arange(32))  # first touch in id order: 0..7 land in DRAM
        sampler.push(make_batch(hot, 1.0, node=m.node[hot]))
    return m, ctl, reports


def test_controller_converges_hot_pages_into_dram() -> None:
    m, ctl, reports = _run_controller("tierctl", cycles=8)
    assert np.flatnonzero(m.fast_mask()).tolist() == list(range(24, 32))
    assert [(r.promoted, r.demoted) for r in reports] == [(2, 2)] * 4 + [(0, 0)] * 3
    assert all(r.planned_promotions == r.promoted for r in reports)
    assert all(r.samples == 40 for r in reports)
    assert (ctl.totals.cycles, ctl.totals.promoted, ctl.totals.demoted) == (7, 8, 8)
    assert ctl.totals.samples == 7 * 40
    assert ctl.totals.outcomes["moved"] == 16
    assert ctl.totals.outcomes["over_budget"] == 0
    assert m.fast_used == 8


def test_controller_with_nb2_and_static() -> None:
    m, _, _ = _run_controller("nb2", cycles=8)
    assert np.flatnonzero(m.fast_mask()).tolist() == list(range(24, 32))
    m, ctl, _ = _run_controller("static", cycles=8)
    assert np.flatnonzero(m.fast_mask()).tolist() == list(range(8))
    assert ctl.totals.promoted == 0


def test_controller_budget_zero_never_moves() -> None:
    m, ctl, _ = _run_controller("tierctl", cycles=5, budget=0)
    assert np.flatnonzero(m.fast_mask()).tolist() == list(range(8))
    assert ctl.totals.outcomes["moved"] == 0


def test_controller_rejects_negative_budget() -> None:
    m = SimMachine(MachineSpec(fast_pages=1), 2)
    with pytest.raises(InputError, match="budget must be >= 0"):
        Controller(
            sampler=SimSampler(),
            memory=SimMemory(m),
            policy=StaticPolicy(),
            mover=SimMover(m),
            heat=HeatModel(2),
            budget_pages=-1,
        )


def test_controller_records_moves_in_the_heat_model() -> None:
    _, ctl, _ = _run_controller("tierctl", cycles=2)
    assert sorted(np.flatnonzero(ctl.heat.last_moved == 1).tolist()) == [0, 1, 24, 25]
    assert (ctl.heat.last_seen[24:] == 1).all()


# ---- ranking helpers --------------------------------------------------------------------------
def test_rank_within_groups() -> None:
    groups = np.array([2, 0, 2, 1, 0, 2, 0])
    assert rank_within_groups(groups).tolist() == [0, 0, 1, 0, 1, 2, 2]
    assert rank_within_groups(np.zeros(0, np.int64)).tolist() == []
    assert rank_within_groups(np.array([5, 5, 5])).tolist() == [0, 1, 2]


def test_top_k_order_and_bounds() -> None:
    keys = np.array([3.0, 9.0, 1.0, 7.0, 5.0])
    assert top_k(keys, 3, largest=True).tolist() == [1, 3, 4]
    assert top_k(keys, 2, largest=False).tolist() == [2, 0]
    assert top_k(keys, 10, largest=True).tolist() == [1, 3, 4, 0, 2]
    assert top_k(keys, 0, largest=True).tolist() == []
    assert top_k(keys, -1, largest=False).tolist() == []
    assert top_k(np.zeros(0), 3, largest=True).tolist() == []


def test_top_k_ties_by_position_when_taking_all() -> None:
    keys = np.array([2, 1, 2, 1, 2])
    assert top_k(keys, 5, largest=True).tolist() == [0, 2, 4, 1, 3]
    assert top_k(keys, 5, largest=False).tolist() == [1, 3, 0, 2, 4]
    assert top_k(keys, 3, largest=False).tolist() == [1, 3, 0]


def test_top_k_ties_by_position_at_the_cut() -> None:
    keys = np.array([0.0, 0.0, 1.0, 1.0])
    assert top_k(keys, 1, largest=True).tolist() == [2]


def test_tierctl_headroom_restores_that_free_nothing_back_off() -> None:
    """Something refills the fast tier as fast as the policy demotes for its headroom (allocations, the
    kernel pulling pages back): the restores back off exponentially instead of churning every cycle;
    a restore that frees room resets the backoff."""
    topo = Topology(nodes=(Node(0, 0, 100, 0, cpus=(0,)), Node(1, 1, 1000, 500)), demotion_targets={0: 1})
    node = np.r_[np.zeros(100, np.int16), np.ones(100, np.int16)]
    pol = TierctlPolicy(headroom_min=0.1, headroom_max=0.1)
    h = HeatModel(200)

    def restore(now: int, free: int) -> int:
        t = Topology(nodes=(Node(0, 0, 100, free, cpus=(0,)), Node(1, 1, 1000, 500)), demotion_targets={0: 1})
        state = MemoryState(node=node, cgroup=np.zeros(200, np.uint16), n_cgroups=1, topology=t)
        plan = pol.decide(PolicyView(now=now, heat=h, memory=state, budget=50, quotas={}))
        return int(plan.demote.shape[0])

    assert topo.fast_capacity == 100
    got = [restore(now, free=0) for now in range(1, 16)]  # the room is always taken again
    assert got == [10, 0, 10, 0, 0, 10, 0, 0, 0, 0, 10, 0, 0, 0, 0]
    assert [restore(now, free=0) for now in range(16, 21)] == [0, 0, 0, 0, 10]  # 8 skipped
    assert restore(21, free=10) == 0  # that one stayed free: the backoff is over ...
    assert restore(22, free=0) == 10  # ... so the next deficit is restored at once


def test_tierctl_headroom_taken_by_the_workloads_own_new_pages_is_no_reason_to_back_off() -> None:
    """A growing workload fills the headroom with its first touches: that is what it is for, so every
    deficit is restored again."""
    node = np.r_[np.zeros(100, np.int16), np.ones(50, np.int16), np.full(100, -1, np.int16)]
    pol = TierctlPolicy(headroom_min=0.1, headroom_max=0.1)
    h = HeatModel(250)
    got = []
    for now in range(1, 8):
        node[150 + 10 * now : 160 + 10 * now] = 1  # 10 new pages a cycle
        t = Topology(nodes=(Node(0, 0, 100, 0, cpus=(0,)), Node(1, 1, 1000, 500)), demotion_targets={0: 1})
        state = MemoryState(node=node, cgroup=np.zeros(250, np.uint16), n_cgroups=1, topology=t)
        plan = pol.decide(PolicyView(now=now, heat=h, memory=state, budget=50, quotas={}))
        got.append(int(plan.demote.shape[0]))
    assert got == [10] * 7


def test_tierctl_one_sighting_stays_one_observation_as_it_decays() -> None:
    """A slow page seen once, 3 cycles ago, still beats a fast page never seen (its heat decayed, but
    so did what one observation weighs); a page the threshold keeps out does not come in."""
    m = SimMachine(MachineSpec(fast_pages=2), 4)
    m.touch(np.arange(4))
    h = HeatModel(4, half_life=4.0)
    h.ingest(make_batch(np.array([2, 3]), 1.0), NOW - 3, unit=1.0)
    h.decay(3)
    assert len(TierctlPolicy(region_pages=1).decide(_view(m, h))) == 4
    # fast page 0 is busy now, page 2 is seen again now, page 3 only that once: of the three pages
    # with heat, two fit the fast tier, so the threshold keeps page 3 (priority < 1) out: one swap
    h.ingest(make_batch(np.array([0, 2]), np.array([10.0, 1.0])), NOW, unit=1.0)
    plan = TierctlPolicy(headroom_min=0.0, headroom_max=0.0, region_pages=1).decide(_view(m, h, budget=4))
    assert plan.promote.tolist() == [2] and plan.demote.tolist() == [1]


def test_tierctl_fill_needs_evidence_of_its_own_or_a_uniform_region() -> None:
    """Free room in the fast tier: a slow region of 64 pages, half of them sampled (hot), half never
    sampled. The unsampled half is not uniform with the sampled half, so nothing but the sampled
    pages fill the room (a move costs a copy); a uniform region's unsampled pages do come in."""
    n = 256
    m = SimMachine(MachineSpec(fast_pages=128), n)
    m.touch(np.arange(n))
    m.move(Plan.build(np.zeros(0, np.int64), FAST, np.arange(64), SLOW), 64)  # 64 pages of free room
    h = HeatModel(n)
    hot = np.arange(128, 160)  # region 128..191: its first half sampled 4 times each
    h.ingest(make_batch(np.repeat(hot, 4), 1.0), NOW, unit=1.0)
    plan = TierctlPolicy(region_pages=64).decide(_view(m, h, budget=64))
    assert sorted(plan.promote.tolist()) == hot.tolist()
    # a uniform region sampled sparsely (every other page once): its unsampled pages come in too
    h2 = HeatModel(n)
    h2.ingest(make_batch(np.arange(128, 192, 2), 1.0), NOW, unit=1.0)
    plan = TierctlPolicy(region_pages=64).decide(_view(m, h2, budget=64))
    assert np.isin(plan.promote, np.arange(129, 192, 2)).any()


def test_tierctl_decides_the_same_on_one_thread_or_several(monkeypatch: pytest.MonkeyPatch) -> None:
    """The block passes run on a few threads; with blocks small enough to be many, the plan is the
    same page for page as on one thread."""
    from tierctl.core import census

    rng = np.random.default_rng(7)
    n = 20_000
    counts = rng.poisson(rng.lognormal(0.0, 1.5, n)).tolist()
    cg = (np.arange(n) * 3 // n).tolist()

    def plan(threads: int) -> Plan:
        m, h = _setup(counts, fast=n // 4, cgroup=cg)
        policy = TierctlPolicy(threads=threads)
        return policy.decide(_view(m, h, budget=2000, quotas={1: Quota(max_pages=n // 20)}))

    monkeypatch.setattr(census, "BLOCK", 1024)
    one, many = plan(1), plan(4)
    assert len(one) > 0
    assert np.array_equal(one.pages, many.pages) and np.array_equal(one.dest, many.dest)
