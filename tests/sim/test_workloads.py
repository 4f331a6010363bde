"""Built-in workloads: valid traces, reproducible, and the default policy beats the baselines."""

from __future__ import annotations

import numpy as np
import pytest

from tierctl.errors import InputError
from tierctl.sim.runner import SimConfig, simulate
from tierctl.sim.trace import validate_trace
from tierctl.sim.workloads import WORKLOADS, make_workload


@pytest.mark.parametrize("name", list(WORKLOADS))
def test_workload_trace_is_valid_and_reproducible(name: str) -> None:
    a = make_workload(name, seed=3, scale=0.125, epochs=20)
    b = make_workload(name, seed=3, scale=0.125, epochs=20)
    c = make_workload(name, seed=4, scale=0.125, epochs=20)
    t = a.trace
    validate_trace(t.arrays(), name)
    assert t.n_epochs == 20 and 0 < a.fast_pages < t.n_pages
    assert np.array_equal(t.page, b.trace.page) and np.array_equal(t.count, b.trace.count)
    assert not (t.page.shape == c.trace.page.shape and np.array_equal(t.count, c.trace.count))
    for e in range(t.n_epochs):  # rows of an epoch are unique pages in first-touch (page id) order
        assert np.all(np.diff(t.epoch(e)[0]) > 0)


@pytest.mark.parametrize("name", list(WORKLOADS))
def test_default_policy_beats_baselines_at_small_scale(name: str) -> None:
    wl = make_workload(name, seed=0, scale=0.25, epochs=80)
    q = {}
    for policy in ("tierctl", "static", "nb2"):
        r, _ = simulate(wl.trace, SimConfig(fast_pages=wl.fast_pages, policy=policy), quotas=wl.quotas)
        q[policy] = r.quality
    assert q["tierctl"] > q["static"]
    assert q["tierctl"] >= q["nb2"] - 0.01  # full-size margins are in scripts/bench
    assert q["tierctl"] > 0.85


def test_quotas_of_multi_cgroup_are_honoured() -> None:
    wl = make_workload("multi-cgroup", scale=0.25, epochs=60)
    cfg = SimConfig(fast_pages=wl.fast_pages)
    _, res = simulate(wl.trace, cfg, quotas=wl.quotas, keep_residency=True)
    assert res is not None
    fast = np.unpackbits(res, axis=1)[:, : wl.trace.n_pages].astype(bool)
    owner = wl.trace.cgroup
    per_cg = np.array([np.bincount(owner[f], minlength=3) for f in fast[-20:]])
    batch_max = wl.quotas[0].max_pages
    cache_min = wl.quotas[1].min_pages
    assert batch_max is not None
    assert per_cg[:, 0].max() <= batch_max  # once converged, batch stays within its max
    assert per_cg[:, 1].min() >= cache_min  # and the cache keeps its guaranteed minimum


def test_unknown_workload_hints() -> None:
    with pytest.raises(InputError, match="did you mean 'grow'"):
        make_workload("grwo")


@pytest.mark.parametrize("name", list(WORKLOADS))
def test_original_workloads_expose_their_true_rates(name: str) -> None:
    wl = make_workload(name, seed=2, scale=0.125, epochs=20)
    assert wl.rates is not None and wl.density is None
    t = wl.trace
    want, got = 0.0, 0.0
    for e in range(t.n_epochs):
        r = wl.rates(e)
        page, count = t.epoch(e)
        assert r.shape == (t.n_pages,) and (r >= 0).all()
        if name != "scan" or e > 0:  # scan's load epoch reads every cold page, drawn or not
            assert (r[page] > 0).all()
        want += float(r.sum())
        got += float(count.sum())
    assert abs(got / want - 1) < 0.01
    r, _ = simulate(t, SimConfig(fast_pages=wl.fast_pages), quotas=wl.quotas, rates=wl.rates)
    assert r.ceiling_from == "rates" and 0 < r.ceiling_hit_ratio <= r.oracle_hit_ratio


@pytest.mark.parametrize("name", ["zipf-shift", "multi-cgroup", "scan", "grow"])
@pytest.mark.parametrize("epochs", [1, 4])
def test_a_short_run_of_every_workload_fits_its_fast_tier(name: str, epochs: int) -> None:
    """`tierctl sim --workload grow --epochs 4` once refused its own fast tier (16 Ki pages of 10 Ki)."""
    w = make_workload(name, seed=0, epochs=epochs)
    assert 1 <= w.fast_pages <= w.trace.n_pages and w.trace.n_epochs == epochs
