"""Properties of the simulator contract (DESIGN.md), checked from the residency output alone."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tierctl.core.policies import POLICIES
from tierctl.errors import InputError
from tierctl.sim import runner
from tierctl.sim.machine import SimSampler
from tierctl.sim.rates import DENSITIES
from tierctl.sim.runner import SimConfig, simulate
from tierctl.sim.shapes import random_workload
from tierctl.sim.trace import Trace, from_epochs

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def traces(draw: st.DrawFn, min_epochs: int = 1) -> Trace:
    n_pages = draw(st.integers(4, 160))
    n_epochs = draw(st.integers(min_epochs, 10))
    rows = []
    for _ in range(n_epochs):
        k = draw(st.integers(0, n_pages))
        pages = np.array(draw(st.permutations(range(n_pages)))[:k], dtype=np.int64)
        counts = np.array(draw(st.lists(st.integers(1, 60), min_size=k, max_size=k)), dtype=np.int64)
        rows.append((pages, counts))
    n_cg = draw(st.integers(1, 3))
    cgroup = np.array(draw(st.lists(st.integers(0, n_cg - 1), min_size=n_pages, max_size=n_pages)))
    return from_epochs(rows, n_pages=n_pages, cgroup=cgroup)


@st.composite
def random_shapes(draw: st.DrawFn, min_epochs: int = 1) -> Trace:
    """A tiny random_workload (16..200 pages): the composed shapes, not just arbitrary rows."""
    wl = random_workload(
        draw(st.integers(0, 10_000)),
        draw(st.sampled_from(sorted(DENSITIES))),
        scale=draw(st.sampled_from([0.0002, 0.001, 0.003])),
        epochs=draw(st.integers(min_epochs, 8)),
    )
    return wl.trace


def any_trace(min_epochs: int = 1) -> st.SearchStrategy[Trace]:
    return st.one_of(traces(min_epochs), random_shapes(min_epochs))


@st.composite
def configs(draw: st.DrawFn, trace: Trace) -> SimConfig:
    k = draw(st.integers(1, trace.n_pages))
    return SimConfig(
        fast_pages=k,
        policy=draw(st.sampled_from(sorted(POLICIES))),
        sample_rate=draw(st.sampled_from([0.05, 0.3, 1.0])),
        migrate_limit=draw(st.integers(0, k)),
        seed=draw(st.integers(0, 2**16)),
        sample_mode=draw(st.sampled_from(["all", "hint", "scan"])),
        scan_period=draw(st.integers(1, 5)),
    )


def unpack(residency: np.ndarray, n_pages: int) -> np.ndarray:
    return np.unpackbits(residency, axis=1)[:, :n_pages].astype(bool)


def first_touch_epoch(trace: Trace) -> np.ndarray:
    first = np.full(trace.n_pages, -1)
    for e in range(trace.n_epochs - 1, -1, -1):
        first[trace.epoch(e)[0]] = e
    return first


@SETTINGS
@given(data=st.data())
def test_capacity_limit_allocation_and_hits(data: st.DataObject) -> None:
    trace = data.draw(any_trace())
    cfg = data.draw(configs(trace))
    result, res = simulate(trace, cfg, keep_residency=True)
    assert res is not None
    fast = unpack(res, trace.n_pages)
    first = first_touch_epoch(trace)
    hits = 0
    for e in range(trace.n_epochs):
        page, count = trace.epoch(e)
        # the fast tier is never over capacity
        assert fast[e].sum() <= cfg.fast_pages
        new = first == e
        if e > 0:
            # tier changes of already-present pages are migrations, bounded by the limit
            migrated = (fast[e] ^ fast[e - 1]) & ~new
            assert migrated.sum() <= cfg.limit()
        # a newly touched page lands in the fast tier while it has room, in row order
        before = int((fast[e] & ~new).sum())
        new_rows = page[new[page]]
        room = cfg.fast_pages - before
        assert fast[e][new_rows[:room]].all()
        assert not fast[e][new_rows[room:]].any()
        # pages never touched are nowhere
        assert not fast[e][first < 0].any()
        hits += int(count[fast[e][page]].sum())
    # the reported hit ratio is exactly what the residency implies
    assert hits == result.fast_hits
    total = int(trace.count.sum())
    assert result.accesses == total
    assert result.fast_hit_ratio == (hits / total if total else 1.0)
    assert result.fast_hit_ratio <= result.oracle_hit_ratio + 1e-12
    assert result.ceiling_hit_ratio <= result.oracle_hit_ratio + 1e-12
    assert result.vs_ceiling == (
        result.fast_hit_ratio / result.ceiling_hit_ratio if result.ceiling_hit_ratio else 1.0
    )


@SETTINGS
@given(data=st.data())
def test_identical_seeds_give_identical_runs(data: st.DataObject) -> None:
    trace = data.draw(any_trace())
    cfg = data.draw(configs(trace))
    a, ra = simulate(trace, cfg, keep_residency=True)
    b, rb = simulate(trace, cfg, keep_residency=True)
    assert np.array_equal(ra, rb)
    assert (a.fast_hits, a.promoted, a.demoted, a.outcomes) == (
        b.fast_hits,
        b.promoted,
        b.demoted,
        b.outcomes,
    )


@SETTINGS
@given(data=st.data())
def test_causality(data: st.DataObject) -> None:
    """Two traces equal up to epoch t give identical residency up to epoch t."""
    trace = data.draw(any_trace(min_epochs=2))
    cfg = data.draw(configs(trace))
    t = data.draw(st.integers(0, trace.n_epochs - 2))
    other = data.draw(traces(min_epochs=1))
    head = trace.head(t + 1)
    tail_rows = [
        (p[p < trace.n_pages], c[p < trace.n_pages])
        for p, c in (other.epoch(e) for e in range(other.n_epochs))
    ]
    rows = [head.epoch(e) for e in range(t + 1)] + tail_rows
    changed = from_epochs(rows, n_pages=trace.n_pages, cgroup=trace.cgroup)
    _, ra = simulate(trace, cfg, keep_residency=True)
    _, rb = simulate(changed, cfg, keep_residency=True)
    assert ra is not None and rb is not None
    assert np.array_equal(ra[: t + 1], rb[: t + 1])


def test_observed_file_drives_decisions() -> None:
    """With an observed trace, decisions follow it: observing a cold page as hot promotes it."""
    n = 8
    rows = [(np.arange(n), np.ones(n, np.int64) * 5)] * 4
    trace = from_epochs(rows, n_pages=n)
    # page 7 starts in the slow tier (K=4, row order); the sampler claims page 7 is very hot
    obs_rows = [(np.array([7]), np.array([1000]))] * 4
    observed = from_epochs(obs_rows, n_pages=n)
    cfg = SimConfig(fast_pages=4, sample_rate=1.0, migrate_limit=4)
    _, res = simulate(trace, cfg, observed=observed, keep_residency=True)
    assert res is not None
    fast = unpack(res, n)
    assert not fast[0][7]
    assert fast[-1][7]


def record_samples(monkeypatch: pytest.MonkeyPatch) -> list[np.ndarray]:
    pushed: list[np.ndarray] = []
    real = SimSampler.push

    def push(self: SimSampler, batch: np.ndarray) -> None:
        pushed.append(batch.copy())
        real(self, batch)

    monkeypatch.setattr(SimSampler, "push", push)
    return pushed


@pytest.mark.parametrize("period", [1, 3, 4])
def test_scan_mode_one_sample_per_slow_page_per_period(monkeypatch: pytest.MonkeyPatch, period: int) -> None:
    """Every page accessed every epoch, nothing migrates (static): each slow page yields exactly one
    sample, of weight 1, in each epoch it is armed ((e + page) % period == 0); fast pages none."""
    n, k, epochs = 40, 10, 12
    trace = from_epochs([(np.arange(n), np.full(n, 50))] * epochs, n_pages=n)
    pushed = record_samples(monkeypatch)
    simulate(trace, SimConfig(fast_pages=k, policy="static", sample_mode="scan", scan_period=period))
    assert len(pushed) == epochs
    for e, b in enumerate(pushed):
        assert (b["weight"] == 1).all() and (b["node"] == 1).all()
        want = [p for p in range(k, n) if (e + p) % period == 0]
        assert sorted(b["page"].tolist()) == want


def test_scan_mode_armed_page_waits_for_its_access(monkeypatch: pytest.MonkeyPatch) -> None:
    """An armed page stays armed until accessed, and then yields one sample until its next arming."""
    n, epochs, period = 8, 9, 4
    rows = [(np.arange(n), np.ones(n, np.int64))] + [(np.array([7]), np.array([3]))] * (epochs - 1)
    trace = from_epochs(rows, n_pages=n)
    pushed = record_samples(monkeypatch)
    simulate(trace, SimConfig(fast_pages=1, policy="static", sample_mode="scan", scan_period=period))
    seen = [e for e, b in enumerate(pushed) if 7 in b["page"].tolist()]
    # page 7 is armed at epochs 1, 5 (e + 7 = 0 mod 4) and accessed every epoch from then on
    assert seen == [1, 5]
    assert runner.SAMPLE_MODES == ("all", "hint", "scan")


def test_scan_period_must_be_positive() -> None:
    trace = from_epochs([(np.arange(4), np.ones(4, np.int64))], n_pages=4)
    with pytest.raises(InputError, match="--scan-period"):
        simulate(trace, SimConfig(fast_pages=2, sample_mode="scan", scan_period=0))
