"""Workload shapes and random shapes: valid, reproducible, at the intended density, rates behind draws."""

from __future__ import annotations

import numpy as np
import pytest

from tierctl.errors import InputError
from tierctl.sim.rates import DENSITIES, Piecewise, Workload
from tierctl.sim.shapes import SHAPES, random_workload
from tierctl.sim.trace import validate_trace
from tierctl.sim.workloads import make_workload

SCALE, EPOCHS = 0.0625, 40  # 4 Ki pages


def arrays(wl: Workload) -> dict[str, object]:
    return dict(wl.trace.arrays())


def check_valid(wl: Workload) -> None:
    t = wl.trace
    validate_trace(arrays(wl), wl.name)  # type: ignore[arg-type]
    assert 0 < wl.fast_pages < t.n_pages and wl.rates is not None
    assert abs(wl.fast_pages - t.n_pages / 4) <= 1
    for e in range(t.n_epochs):
        page = t.epoch(e)[0]
        assert np.all(np.diff(page) > 0)  # unique pages in first-touch (page id) order
        r = wl.rates(e)
        assert r.shape == (t.n_pages,) and np.isfinite(r).all() and (r >= 0).all()
        assert (r[page] > 0).all()  # nothing is drawn at rate 0


def per_live_page(wl: Workload) -> float:
    """Mean accesses per live page (rate > 0) per epoch."""
    assert wl.rates is not None
    live = sum(int((wl.rates(e) > 0).sum()) for e in range(wl.trace.n_epochs))
    return float(wl.trace.count.sum()) / live


@pytest.mark.parametrize("name", list(SHAPES))
def test_shape_is_valid_reproducible_and_has_its_density(name: str) -> None:
    a = make_workload(name, seed=3, scale=SCALE, epochs=EPOCHS, density="sparse")
    b = make_workload(name, seed=3, scale=SCALE, epochs=EPOCHS, density="sparse")
    c = make_workload(name, seed=4, scale=SCALE, epochs=EPOCHS, density="sparse")
    check_valid(a)
    assert a.trace.n_epochs == EPOCHS and a.density == "sparse"
    assert np.array_equal(a.trace.page, b.trace.page) and np.array_equal(a.trace.count, b.trace.count)
    assert np.array_equal(a.rates(7), b.rates(7))  # type: ignore[misc]
    assert not (a.trace.page.shape == c.trace.page.shape and np.array_equal(a.trace.count, c.trace.count))
    for density, target in DENSITIES.items():
        wl = (
            a
            if density == "sparse"
            else make_workload(name, seed=3, scale=SCALE, epochs=EPOCHS, density=density)
        )
        got = per_live_page(wl)
        assert target / 1.5 <= got <= target * 1.5, (density, got)
        # at p = 0.01: <= 0.05, ~0.3, ~1.3 samples per page per epoch
        assert 0.01 * target / 1.5 <= 0.01 * got <= 0.01 * target * 1.5


@pytest.mark.parametrize("name", list(SHAPES))
def test_rates_are_behind_the_draws(name: str) -> None:
    wl = make_workload(name, seed=1, scale=SCALE, epochs=EPOCHS, density="dense")
    assert wl.rates is not None
    t = wl.trace
    want = np.zeros(t.n_pages)
    got = np.zeros(t.n_pages)
    for e in range(t.n_epochs):
        r = wl.rates(e)
        page, count = t.epoch(e)
        # per epoch: the total count is a Poisson draw around the total rate
        assert abs(count.sum() - r.sum()) <= 6 * np.sqrt(r.sum()) + 1
        want += r
        np.add.at(got, page, count)
    # per page over the run: counts track rates closely
    assert np.corrcoef(want, got)[0, 1] > 0.99
    assert abs(got.sum() / want.sum() - 1) < 0.01


def test_multi_tenant_burst_has_cgroups() -> None:
    wl = make_workload("burst", scale=SCALE, epochs=EPOCHS)
    assert wl.trace.cgroup_names == ("steady", "bursty", "batch")
    assert wl.trace.cgroup is not None and set(np.unique(wl.trace.cgroup)) == {0, 1, 2}
    assert wl.rates is not None
    bursty = wl.trace.cgroup == 1
    assert wl.rates(30)[bursty].sum() > 5 * wl.rates(10)[bursty].sum()  # epochs 25..39 burst


def test_fast_phase_moves_faster_than_the_limit() -> None:
    wl = make_workload("fast-phase", scale=SCALE, epochs=EPOCHS)
    assert wl.rates is not None
    k = wl.fast_pages
    hot = [set(np.argsort(wl.rates(e))[-k // 2 :]) for e in (0, 5)]
    # a whole new K/2 region every 5 epochs (> 5 x a limit of 10 % of K); a few background pages aside
    assert len(hot[0] & hot[1]) < 0.05 * k / 2


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("density", list(DENSITIES))
def test_random_workload_is_valid_reproducible_and_dense_as_asked(seed: int, density: str) -> None:
    a = random_workload(seed, density, scale=SCALE, epochs=EPOCHS)
    b = random_workload(seed, density, scale=SCALE, epochs=EPOCHS)
    check_valid(a)
    assert np.array_equal(a.trace.count, b.trace.count) and a.description == b.description
    assert DENSITIES[density] / 1.5 <= per_live_page(a) <= DENSITIES[density] * 1.5


def test_random_workloads_differ_in_shape() -> None:
    desc = {random_workload(s, "sparse", scale=0.01, epochs=4).description for s in range(12)}
    assert len(desc) >= 6


def test_piecewise_holds_each_vector_from_its_start() -> None:
    v = [np.full(3, float(i)) for i in range(3)]
    pw = Piecewise([0, 4, 9], [2, 0, 2], v)
    assert [float(pw(e)[0]) for e in (0, 3, 4, 8, 9, 100)] == [2, 2, 0, 0, 2, 2]
    cyc = Piecewise.cycle(v, 5, 30)
    assert [float(cyc(e)[0]) for e in (0, 4, 5, 10, 15, 29)] == [0, 0, 1, 2, 0, 2]
    with pytest.raises(ValueError):
        Piecewise([1], [0], v)


def test_density_errors_name_the_option() -> None:
    with pytest.raises(InputError, match="--density"):
        make_workload("sliding", density="thick")
    with pytest.raises(InputError, match="--density"):
        make_workload("zipf-shift", density="sparse")
    with pytest.raises(InputError, match="did you mean 'sliding'"):
        make_workload("slidng")
