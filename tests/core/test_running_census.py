"""The incremental cycle: lazy decay, sampled-page deltas, the running census, sweeps."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.sim.test_sim_properties import any_trace, first_touch_epoch, unpack
from tierctl.core.estimate import RateEstimator
from tierctl.core.evaluation import Evaluation
from tierctl.core.heat import NEVER, HeatModel, distinct
from tierctl.core.policies.tierctl import TierctlPolicy
from tierctl.core.policy import MemoryState, PolicyView
from tierctl.core.running_census import BIN_MASK, RunningCensus
from tierctl.core.samples import make_batch
from tierctl.sim.machine import FAST, SLOW, MachineSpec, SimMachine
from tierctl.sim.runner import SimConfig, simulate


# ---- heat: lazy decay ---------------------------------------------------------------------------
def test_lazy_decay_gives_the_eagerly_decayed_values_and_rebases_exactly() -> None:
    rng = np.random.default_rng(1)
    lazy = HeatModel(64, half_life=1.0)
    eager = np.zeros(64)
    d = lazy.decay_factor
    for t in range(80):  # 2**-80: past the rebase point (2**-32) twice
        lazy.decay()
        eager *= d
        pages = rng.integers(0, 64, 20)
        lazy.ingest(make_batch(pages, 1.0), t)
        np.add.at(eager, pages, 1.0)
        assert 2.0**-33 < lazy.scale <= 1.0
    assert lazy.rebased_log2 <= -64 and lazy.epoch == 0  # rebased twice, by exact powers of two
    np.testing.assert_allclose(lazy.heat, eager, rtol=1e-5)
    np.testing.assert_allclose(lazy.current(np.arange(64)), eager, rtol=1e-5)


def test_heat_is_read_only_and_load_sets_current_values() -> None:
    h = HeatModel(3)
    h.decay(3)
    with pytest.raises(ValueError):
        h.heat[0] = 1.0
    h.load(np.array([1.0, 2.0, 0.0]))
    assert h.heat.tolist() == [1.0, 2.0, 0.0]
    h.decay(h.half_life)
    np.testing.assert_allclose(h.heat, [0.5, 1.0, 0.0], rtol=1e-6)
    assert h.stored.tolist() == [1.0, 2.0, 0.0]  # decay did not touch the array


def test_touched_deltas_add_up_to_the_change_in_stored_heat() -> None:
    rng = np.random.default_rng(2)
    h = HeatModel(50)
    h.track_touched()
    before = h.stored.astype(np.float64).copy()
    for t in range(5):
        h.decay()
        h.ingest(make_batch(rng.integers(0, 50, 40), 1.0), t)  # with repeats
    d1 = np.zeros(50)
    d2 = np.zeros(50)
    for t in h.take_touched():
        assert np.unique(t.pages).shape == t.pages.shape  # one row per distinct page
        np.add.at(d1, t.pages, t.d1)
        np.add.at(d2, t.pages, t.d2)
        assert (h.stored[t.pages] >= t.stored).all()  # stored heat only grows by samples
    after = h.stored.astype(np.float64)
    np.testing.assert_allclose(d1, after - before, atol=1e-9)
    np.testing.assert_allclose(d2, after**2 - before**2, rtol=1e-6, atol=1e-9)
    assert h.take_touched() == []


def test_distinct_sorts_and_drops_repeats() -> None:
    assert distinct(np.array([3, 3, 5, 4, 3, 5, 9])).tolist() == [3, 4, 5, 9]
    assert distinct(np.array([7])).tolist() == [7]


def test_ingest_sums_repeats_and_unequal_weights() -> None:
    h = HeatModel(6)
    batch = make_batch(np.array([4, 1, 4, 4]), 1.0)
    batch["weight"] = [1.0, 2.0, 3.0, 0.5]
    assert h.ingest(batch, 3) == 4
    assert h.heat.tolist() == [0, 2.0, 0, 0, 4.5, 0]
    assert h.last_seen.tolist() == [NEVER, 3, NEVER, NEVER, 3, NEVER]


# ---- the running census ---------------------------------------------------------------------
def _recount(c: RunningCensus, cgroup: np.ndarray) -> np.ndarray:
    return np.bincount(c._keys(c.codes, cgroup), minlength=c.hist.size).reshape(c.hist.shape)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_running_census_counts_what_the_codes_say(seed: int) -> None:
    """Whatever is re-evaluated in whatever order, and however far the window slides up, the
    histogram equals a count of the codes."""
    rng = np.random.default_rng(seed)
    n, n_cg = 300, 3
    cgroup = rng.integers(0, n_cg, n).astype(np.uint16)
    lut = np.array([False, True, False])  # node -1: absent, 0: fast, 1: slow
    c = RunningCensus()
    c.reset(n, n_cg)
    level = 1.0
    for _ in range(12):
        level *= float(rng.choice([1.0, 3.0, 1000.0]))  # the top rises, sometimes by far
        k = int(rng.integers(1, n))
        idx = rng.choice(n, k, replace=False)
        stored = rng.exponential(level, k) * (rng.random(k) < 0.8)
        node = rng.integers(-1, 2, k).astype(np.int16)
        if rng.random() < 0.5:
            lo = int(rng.integers(0, n - 1))
            hi = int(rng.integers(lo + 1, n + 1))
            stored = rng.exponential(level, hi - lo)
            node = rng.integers(-1, 2, hi - lo).astype(np.int16)
            c.apply(slice(lo, hi), c.codes_for(stored, node, lut), cgroup[lo:hi])
        else:
            c.apply(idx, c.codes_for(stored, node, lut), cgroup[idx])
        assert c.healthy()
        np.testing.assert_array_equal(c.hist, _recount(c, cgroup))
    assert c.hist.sum() == np.count_nonzero(c.codes & BIN_MASK)


def test_window_bins_put_the_highest_code_at_the_top() -> None:
    c = RunningCensus()
    c.reset(4, 1)
    lut = np.array([False, True, False])
    c.apply(
        np.arange(4), c.codes_for(np.array([8.0, 4.0, 0.0, 1.0]), np.zeros(4, np.int16), lut), np.zeros(4)
    )
    assert c.window_bins(np.arange(4)).tolist() == [255, 247, 0, 231]
    cen = c.census(scale=1.0)
    assert 8.0 <= cen.hmax < 8.0 * 2 ** (1 / 8) + 1e-9


# ---- the estimator's sums, kept up to date ------------------------------------------------------
def test_incremental_region_sums_match_a_full_pass() -> None:
    rng = np.random.default_rng(3)
    n = 4096
    h = HeatModel(n)
    cg = np.repeat(np.arange(4), n // 4).astype(np.uint16)
    present = np.ones(n, dtype=bool)
    inc = RateEstimator(region_pages=256, level_half_life=0, workers=1)  # no history to compare
    for t in range(10):
        h.decay()
        h.ingest(make_batch(rng.integers(0, n, 300), 1.0), t)
        lo = (t * 1000) % n
        full = inc.prepare(h, present, cg, t, refresh=(lo, min(n, lo + 1000)))
        assert full == (t == 0)
    ref = RateEstimator(region_pages=256, level_half_life=0, workers=1)
    assert ref.prepare(h, present, cg, 9)
    np.testing.assert_allclose(inc._s1, ref._s1, rtol=1e-6)
    np.testing.assert_allclose(inc._s2, ref._s2, rtol=1e-5)
    np.testing.assert_array_equal(inc._cnt, ref._cnt)
    idx = np.arange(0, n, 7)
    np.testing.assert_allclose(inc.rate(idx), ref.rate(idx), rtol=1e-5)
    # the float32 bulk path (what the census bins) agrees with the float64 one
    np.testing.assert_allclose(ref.rates32(idx, ref.regions_of(idx)), ref.rate(idx), rtol=2e-6, atol=1e-30)
    np.testing.assert_allclose(ref.block_rates(0, n), ref.rate(np.arange(n)), rtol=2e-6, atol=1e-30)


# ---- the policy evaluating part of the pages -------------------------------------------------
def _machine(n: int, fast: int) -> SimMachine:
    m = SimMachine(MachineSpec(fast_pages=fast), n, np.repeat(np.arange(4), n // 4))
    m.touch(np.arange(n))
    m.take_new()
    return m


def _view(m: SimMachine, h: HeatModel, now: int, budget: int = 64) -> PolicyView:
    state = MemoryState(node=m.node, cgroup=m.cgroup, n_cgroups=m.n_cgroups, topology=m.topology())
    return PolicyView(now=now, heat=h, memory=state, budget=budget, quotas={})


def test_a_sampled_slow_page_outside_the_sweep_comes_in() -> None:
    n, fast = 8192, 1024
    m = _machine(n, fast)
    h = HeatModel(n)
    h.ingest(make_batch(np.arange(n), 1.0), 0)  # everything lukewarm
    pol = TierctlPolicy(sweep_pages=1024, threads=1)
    pol.decide(_view(m, h, 1))
    assert pol.stats is not None and pol.stats.full
    h.decay()
    h.ingest(make_batch(np.repeat([6000, 7000], 30), 1.0), 2)
    plan = pol.decide(_view(m, h, 2))
    assert not pol.stats.full and pol.stats.evaluated < n // 2
    assert {6000, 7000} <= set(plan.promote.tolist())
    assert (m.node[plan.demote] == FAST).all() and (m.node[plan.promote] == SLOW).all()


def test_incremental_census_stays_a_true_count_while_pages_move() -> None:
    rng = np.random.default_rng(4)
    n, fast = 8192, 2048
    m = _machine(n, fast)
    h = HeatModel(n)
    pol = TierctlPolicy(sweep_pages=1024, threads=1)
    rate = rng.pareto(1.2, n)
    for t in range(1, 30):
        h.decay()
        h.ingest(make_batch(rng.choice(n, 400, p=rate / rate.sum()), 1.0), t)
        plan = pol.decide(_view(m, h, t))
        h.note_moved(m.move(plan, 64).moved, t)
        c = pol.evaluation.census
        assert c.healthy()
        np.testing.assert_array_equal(c.hist, _recount(c, m.cgroup))
    # every page's code was refreshed within the last rotation of the sweep: tiers are right
    slow = (pol.evaluation.census.codes & 0x8000) != 0
    assert (slow == (m.node == SLOW)).mean() > 0.99


def test_rescale_shifts_heated_codes_and_the_window_and_keeps_the_count() -> None:
    rng = np.random.default_rng(3)
    n, n_cg = 5000, 3
    cgroup = rng.integers(0, n_cg, n).astype(np.uint16)
    c = RunningCensus()
    c.reset(n, n_cg)
    lut = np.array([False, True, False])
    est = np.where(rng.random(n) < 0.2, 0.0, 2.0 ** rng.uniform(-148, 20, n)).astype(np.float32)
    node = rng.integers(-1, 2, n)
    c.apply(slice(0, n), RunningCensus.codes_for(est, node, lut), cgroup)
    before, window = c.codes.copy(), c.window_bins(slice(0, n))
    c.rescale(-8 * 33, cgroup)  # stored heat times 2**-33
    np.testing.assert_array_equal(c.hist, _recount(c, cgroup))
    b0 = (before & BIN_MASK).astype(np.int32)
    b1 = (c.codes & BIN_MASK).astype(np.int32)
    kept = b0 - 8 * 33 >= 8
    flushed = (b0 >= 2) & ~kept
    assert kept.any() and flushed.any()
    np.testing.assert_array_equal(b1[kept], b0[kept] - 8 * 33)
    assert (b1[flushed] == 1).all() and (b1[b0 < 2] == b0[b0 < 2]).all()
    np.testing.assert_array_equal(c.codes & ~np.uint16(BIN_MASK), before & ~np.uint16(BIN_MASK))
    # every page that kept heat kept its window bin: the histogram did not need a recount
    np.testing.assert_array_equal(c.window_bins(slice(0, n))[kept], window[kept])


def test_a_rebase_shifts_codes_and_sums_to_what_a_full_evaluation_gives() -> None:
    """A heat rebase multiplies stored heat by an exact power of two: the census codes and the
    region sums move with it instead of being recomputed, and come out as a fresh full evaluation
    of the same heat would have them."""
    n, fast = 4096, 1024
    m = _machine(n, fast)
    h = HeatModel(n, half_life=1.0)
    pol = TierctlPolicy(sweep_pages=1024, threads=1)
    rng = np.random.default_rng(7)
    rate = rng.pareto(1.2, n)
    fulls, rebases = [], 0
    for t in range(1, 72):  # 2**-32 of decay in 32 cycles: two rebases on the way
        units = h.rebased_log2
        h.decay()
        h.ingest(make_batch(rng.choice(n, 900, p=rate / rate.sum()), 1.0), t)
        if t % 5 == 0:  # two ingests before a decision: touched changes rescaled in between
            h.decay()
            h.ingest(make_batch(rng.choice(n, 300, p=rate / rate.sum()), 1.0), t)
        plan = pol.decide(_view(m, h, t))
        h.note_moved(m.move(plan, 64).moved, t)
        assert pol.stats is not None
        fulls.append(pol.stats.full)
        c = pol.evaluation.census
        np.testing.assert_array_equal(c.hist, _recount(c, m.cgroup))
        if h.rebased_log2 != units:
            rebases += 1
            assert not pol.stats.full  # shifted, not recounted
            assert c.units == h.rebased_log2
            # the region sums equal a recomputation from the rescaled heat
            est = pol.estimator
            s1, s2 = est._s1.copy(), est._s2.copy()
            est._refresh(h, m.node, 0, n)
            np.testing.assert_allclose(s1, est._s1, rtol=1e-6, atol=1e-12 * est._s1.max())
            np.testing.assert_allclose(s2, est._s2, rtol=1e-5, atol=1e-12 * est._s2.max())
    assert rebases == 2
    assert fulls[0] and fulls.count(True) == 1


def test_everything_is_evaluated_again_after_a_full_read_or_below_sweep_pages() -> None:
    n, fast = 4096, 1024
    m = _machine(n, fast)
    h = HeatModel(n, half_life=1.0)
    pol = TierctlPolicy(sweep_pages=1024, threads=1)
    for t in range(1, 41):
        h.decay()
        h.ingest(make_batch(np.arange(0, n, 3), 1.0), t)
        pol.decide(_view(m, h, t))
        assert pol.stats is not None and pol.stats.full == (t == 1)
    # a new node array (a full read of where pages are) is a full evaluation
    state = _view(m, h, 41)
    fresh = MemoryState(node=m.node.copy(), cgroup=m.cgroup, n_cgroups=m.n_cgroups, topology=m.topology())
    pol.decide(PolicyView(now=41, heat=h, memory=fresh, budget=64, quotas={}))
    assert pol.stats.full
    pol.decide(state)
    assert pol.stats.full  # back to the machine's own array: one more
    # at most sweep_pages tracked pages: always every page
    small = TierctlPolicy(sweep_pages=n, threads=1)
    for t in range(42, 45):
        small.decide(_view(m, h, t))
        assert small.stats is not None and small.stats.full and small.stats.evaluated == n


# ---- the simulator's contract with part of the pages evaluated ---------------------------------
@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_incremental_mode_keeps_the_simulator_contract(data: st.DataObject) -> None:
    """Random traces and shapes with tiny regions and sweeps, so that most decisions evaluate only
    part of the pages: the fast tier never overflows, migrations stay within the limit, runs are
    deterministic, and the census equals a recount of the codes after every evaluation."""
    trace = data.draw(any_trace(min_epochs=2))
    k = data.draw(st.integers(1, trace.n_pages))
    region = data.draw(st.sampled_from([1, 2, 4, 8]))
    cfg = SimConfig(
        fast_pages=k,
        policy="tierctl",
        sample_rate=data.draw(st.sampled_from([0.05, 0.3, 1.0])),
        migrate_limit=data.draw(st.integers(0, k)),
        seed=data.draw(st.integers(0, 2**16)),
        sample_mode=data.draw(st.sampled_from(["all", "hint", "scan"])),
        policy_options={
            "region_pages": region,
            "sweep_pages": data.draw(st.sampled_from([region, 2 * region, 4 * region])),
            "threads": 1,
        },
    )
    checked = []
    run = Evaluation.run

    def checked_run(self: Evaluation, view: PolicyView) -> tuple[list, bool]:
        out = run(self, view)
        c = self.census
        np.testing.assert_array_equal(c.hist, _recount(c, view.memory.cgroup))
        checked.append(out[1])
        return out

    Evaluation.run = checked_run  # type: ignore[method-assign]
    try:
        result, res = simulate(trace, cfg, keep_residency=True)
    finally:
        Evaluation.run = run  # type: ignore[method-assign]
    assert checked  # the policy did decide (and the check ran)
    _, res2 = simulate(trace, cfg, keep_residency=True)
    assert res is not None and np.array_equal(res, res2)
    fast = unpack(res, trace.n_pages)
    first = first_touch_epoch(trace)
    for e in range(trace.n_epochs):
        assert fast[e].sum() <= cfg.fast_pages
        if e > 0:
            migrated = (fast[e] ^ fast[e - 1]) & (first != e)
            assert migrated.sum() <= cfg.limit()
    assert result.fast_hit_ratio <= result.oracle_hit_ratio + 1e-12
