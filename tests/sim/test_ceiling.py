"""The causal ceiling: capacity, migration limit, causality, hand-computed hits, ~oracle when stationary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tierctl.core.plan import DEMOTE, PROMOTE
from tierctl.errors import InputError
from tierctl.sim.ceiling import causal_ceiling, load_rates, plan_epoch
from tierctl.sim.machine import FAST, SLOW
from tierctl.sim.rates import Piecewise, draw_trace, zipf
from tierctl.sim.runner import SimConfig, oracle_hits, simulate
from tierctl.sim.shapes import random_workload
from tierctl.sim.trace import Trace, from_epochs
from tierctl.sim.workloads import make_workload


def unpack(res: np.ndarray | None, n: int) -> np.ndarray:
    assert res is not None
    return np.unpackbits(res, axis=1)[:, :n].astype(bool)


def tiny() -> Trace:
    rows = [(np.arange(4), np.array([1, 1, 5, 5]))] * 3
    return from_epochs(rows, n_pages=4)


def test_tiny_trace_by_hand() -> None:
    """K = 2, limit 2. Epoch 0: pages 0, 1 land in the fast tier (2 hits of 12). Epoch 1: one swap,
    page 2 (rate 5) for page 0 (rate 1): 1 + 5 hits. Epoch 2: page 3 for page 1: 10 hits. 18 / 36."""
    rate = np.array([1.0, 1.0, 5.0, 5.0])
    for rates in (lambda e: rate, None):  # true rates, or the previous epoch's counts (the same here)
        c = causal_ceiling(tiny(), 2, 2, rates, keep_residency=True)
        assert (c.hits, c.accesses, c.promoted, c.demoted) == (18, 36, 2, 2)
        assert c.hit_ratio == 0.5
        fast = unpack(c.residency, 4)
        assert fast.tolist() == [[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]]
    assert causal_ceiling(tiny(), 2, 2, lambda e: rate).source == "rates"
    assert causal_ceiling(tiny(), 2, 2).source == "counts"
    # with a limit of 4, both swaps happen before epoch 1: 2 + 10 + 10
    assert causal_ceiling(tiny(), 2, 4, lambda e: rate).hits == 22
    # a limit of 1 allows no swap (2 moves each): the fast tier stays as first touch left it
    assert causal_ceiling(tiny(), 2, 1, lambda e: rate).hits == 6


def test_plan_fills_free_room_then_swaps_within_the_limit() -> None:
    node = np.array([FAST, SLOW, SLOW, -1, SLOW], dtype=np.int16)
    rate = np.array([1.0, 2.0, 3.0, 9.0, 0.0])
    plan = plan_epoch(node, rate, fast_pages=3, limit=5)
    # room for 2: page 2 then page 1 fill it (page 4 has rate 0, page 3 is not present); no swap left
    assert plan.pages[plan.kind == PROMOTE].tolist() == [2, 1]
    assert plan.pages[plan.kind == DEMOTE].tolist() == []
    plan = plan_epoch(node, rate, fast_pages=2, limit=5)  # room 1: page 2; then swap page 1 for page 0
    assert plan.pages[plan.kind == PROMOTE].tolist() == [2, 1]
    assert plan.pages[plan.kind == DEMOTE].tolist() == [0]
    assert len(plan_epoch(node, rate, fast_pages=2, limit=2)) == 1  # a fill (1) but no swap (2 more)
    same = np.array([1.0, 1.0, 1.0, 9.0, 0.0])
    assert len(plan_epoch(node, same, fast_pages=1, limit=9)) == 0  # swaps need a strictly higher rate


@pytest.mark.parametrize("seed", range(4))
def test_capacity_limit_first_touch_and_hits_on_random_shapes(seed: int) -> None:
    wl = random_workload(seed, "medium", scale=0.02, epochs=30)
    t, k = wl.trace, wl.fast_pages
    limit = max(1, k // 10)
    c = causal_ceiling(t, k, limit, wl.rates, keep_residency=True)
    fast = unpack(c.residency, t.n_pages)
    first = np.full(t.n_pages, -1)
    for e in range(t.n_epochs - 1, -1, -1):
        first[t.epoch(e)[0]] = e
    hits = 0
    for e in range(t.n_epochs):
        page, count = t.epoch(e)
        assert fast[e].sum() <= k
        new = first == e
        if e:
            assert ((fast[e] ^ fast[e - 1]) & ~new).sum() <= limit
        hits += int(count[fast[e][page]].sum())
    assert hits == c.hits and c.promoted + c.demoted <= limit * (t.n_epochs - 1)


def test_causal_rates_of_an_epoch_are_read_only_after_it_is_served() -> None:
    wl = make_workload("jump", scale=0.02, epochs=12, density="dense")
    assert wl.rates is not None
    rates = wl.rates
    served: list[int] = []
    asked: list[int] = []

    class Spy(Trace):
        def epoch(self, e: int) -> tuple[np.ndarray, np.ndarray]:
            served.append(e)
            return super().epoch(e)

    t = wl.trace
    spy = Spy(t.page_size, t.n_pages, t.epoch_s, t.offsets, t.page, t.count)

    def spy_rates(e: int) -> np.ndarray:
        assert served and e <= served[-1], (e, served)  # epoch e was served before its rates are read
        asked.append(e)
        return rates(e)

    causal_ceiling(spy, wl.fast_pages, 10, spy_rates)
    assert asked == list(range(t.n_epochs - 1))
    # and changing the rates of epoch t changes nothing served up to epoch t
    a = causal_ceiling(t, wl.fast_pages, 10, rates, keep_residency=True)
    b = causal_ceiling(
        t, wl.fast_pages, 10, lambda e: rates(e) if e < 6 else rates(e)[::-1].copy(), keep_residency=True
    )
    assert a.residency is not None and b.residency is not None
    assert np.array_equal(a.residency[:7], b.residency[:7])
    assert not np.array_equal(a.residency, b.residency)


def test_stationary_workload_ceiling_reaches_the_oracle() -> None:
    rng = np.random.default_rng(5)
    n, k, epochs = 4096, 1024, 60
    rate = zipf(n, 1.0)[rng.permutation(n)] * 128 * n
    trace = draw_trace(rng, Piecewise([0], [0], [rate]), n, epochs)
    c = causal_ceiling(trace, k, k // 10, lambda e: rate)
    oracle = sum(oracle_hits(trace.epoch(e)[1], k) for e in range(epochs)) / trace.count.sum()
    assert c.hit_ratio >= 0.97 * oracle
    # once converged (20 epochs at K/20 swaps each), the ceiling holds the true top K: ~oracle
    late = causal_ceiling(trace, k, k // 10, lambda e: rate, keep_residency=True)
    fast = unpack(late.residency, n)
    assert set(np.flatnonzero(fast[-1])) == set(np.argsort(-rate)[:k])


def test_simulate_reports_the_ceiling() -> None:
    wl = make_workload("sliding", scale=0.05, epochs=30, density="medium")
    cfg = SimConfig(fast_pages=wl.fast_pages)
    r, _ = simulate(wl.trace, cfg, rates=wl.rates)
    c = causal_ceiling(wl.trace, wl.fast_pages, cfg.limit(), wl.rates)
    assert r.ceiling_hit_ratio == c.hit_ratio and r.ceiling_from == "rates"
    assert r.vs_ceiling == pytest.approx(r.fast_hit_ratio / r.ceiling_hit_ratio)
    assert r.quality == pytest.approx(r.fast_hit_ratio / r.oracle_hit_ratio)
    r2, _ = simulate(wl.trace, cfg)
    assert r2.ceiling_from == "counts" and r2.fast_hits == r.fast_hits
    r3, _ = simulate(wl.trace, cfg, ceiling=c)  # a precomputed ceiling is reused as is
    assert r3.ceiling_hit_ratio == c.hit_ratio


def test_rates_file(tmp_path: Path) -> None:
    t = tiny()
    path = tmp_path / "r.npz"
    rate = np.tile([1.0, 1.0, 5.0, 5.0], 3)
    np.savez(path, page_size=4096, n_pages=4, epoch_s=1.0, offsets=t.offsets, page=t.page, count=rate)
    r = load_rates(path, t)
    assert r(1).tolist() == [1.0, 1.0, 5.0, 5.0]
    assert causal_ceiling(t, 2, 2, r).hits == 18
    bad = tmp_path / "bad.npz"
    np.savez(bad, page_size=4096, n_pages=4, epoch_s=1.0, offsets=t.offsets, page=t.page, count=-rate)
    with pytest.raises(InputError, match="array 'count' row 0"):
        load_rates(bad, t)
    with pytest.raises(InputError, match="not found"):
        load_rates(tmp_path / "none.npz", t)
