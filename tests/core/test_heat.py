"""HeatModel: ingest, decay, resize, log-scale bins, region sums, young-page estimate."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tierctl.core.heat import BINS_PER_OCTAVE, N_BINS, NEVER, HeatModel
from tierctl.core.samples import SAMPLE_DTYPE, empty_batch, make_batch
from tierctl.errors import InputError


def _model(heat: list[float], half_life: float = 4.0) -> HeatModel:
    h = HeatModel(len(heat), half_life=half_life)
    h.load(np.asarray(heat, dtype=np.float32))
    return h


# ---- construction -----------------------------------------------------------------------------
def test_new_model_is_cold_and_unseen() -> None:
    h = HeatModel(5)
    assert h.n_pages == 5
    assert h.heat.tolist() == [0.0] * 5
    assert h.last_seen.tolist() == [NEVER] * 5
    assert h.last_moved.tolist() == [NEVER] * 5
    assert h.heat.dtype == np.float32
    assert h.last_seen.dtype == np.int32
    assert h.nbytes == 5 * 12


@pytest.mark.parametrize("half_life", [0.0, -1.0])
def test_bad_half_life_raises(half_life: float) -> None:
    with pytest.raises(InputError, match="half_life"):
        HeatModel(3, half_life=half_life)


def test_negative_size_raises() -> None:
    with pytest.raises(InputError, match="n_pages must be >= 0"):
        HeatModel(-1)


# ---- ingest -----------------------------------------------------------------------------------
def test_ingest_aggregates_duplicate_pages_and_stamps_last_seen() -> None:
    h = HeatModel(6)
    batch = make_batch(np.array([3, 1, 3, 3, 5]), np.array([1.0, 2.0, 0.5, 4.0, 8.0], np.float32))
    assert h.ingest(batch, now=7) == 5
    assert h.heat.tolist() == [0.0, 2.0, 0.0, 5.5, 0.0, 8.0]
    assert h.last_seen.tolist() == [NEVER, 7, NEVER, 7, NEVER, 7]
    assert h.ingested_samples == 5
    assert h.dropped_samples == 0
    # a second batch adds to the heat and restamps only its own pages
    h.ingest(make_batch(np.array([1]), 1.0), now=8)
    assert h.heat.tolist() == [0.0, 3.0, 0.0, 5.5, 0.0, 8.0]
    assert h.last_seen.tolist() == [NEVER, 8, NEVER, 7, NEVER, 7]
    assert h.ingested_samples == 6


def test_ingest_drops_out_of_range_pages() -> None:
    h = HeatModel(4)
    batch = make_batch(np.array([-1, 2, 4, 100, 2]), np.array([9.0, 1.0, 9.0, 9.0, 3.0], np.float32))
    assert h.ingest(batch, now=1) == 2
    assert h.dropped_samples == 3
    assert h.ingested_samples == 2
    assert h.heat.tolist() == [0.0, 0.0, 4.0, 0.0]
    assert h.last_seen.tolist() == [NEVER, NEVER, 1, NEVER]
    # a dropped row does not set the unit, even when it is the lightest row of its batch
    h.ingest(make_batch(np.array([7, 0]), np.array([0.25, 2.0], np.float32)), now=2)
    assert h.unit == 2.0
    assert h.dropped_samples == 4


def test_ingest_wrong_dtype_raises() -> None:
    h = HeatModel(4)
    with pytest.raises(InputError, match="dtype") as exc:
        h.ingest(np.zeros(3, dtype=np.int64), now=0)
    assert exc.value.where == "samples"
    assert h.heat.tolist() == [0.0] * 4


def test_ingest_empty_batch_changes_nothing() -> None:
    h = HeatModel(3)
    h.ingest(make_batch(np.array([0]), 3.0), now=0)
    assert h.ingest(empty_batch(), now=1) == 0
    assert h.unit == 3.0
    assert h.last_seen.tolist() == [0, NEVER, NEVER]


def test_unit_is_min_weight_of_last_batch() -> None:
    h = HeatModel(10)
    h.ingest(make_batch(np.array([1, 2, 3]), np.array([100.0, 50.0, 75.0], np.float32)), now=0)
    assert h.unit == 50.0
    h.ingest(make_batch(np.array([4, 5]), np.array([200.0, 300.0], np.float32)), now=1)
    assert h.unit == 200.0


def test_sample_dtype_fields() -> None:
    assert SAMPLE_DTYPE.names == ("cgroup", "pid", "page", "node", "weight")
    b = make_batch(np.array([1, 2]), 2.5, cgroup=7, pid=np.array([3, 4]), node=1)
    assert b["cgroup"].tolist() == [7, 7]
    assert b["pid"].tolist() == [3, 4]
    assert b["node"].tolist() == [1, 1]
    assert b["weight"].tolist() == [2.5, 2.5]


# ---- decay ------------------------------------------------------------------------------------
@pytest.mark.parametrize("half_life", [1.0, 2.5, 4.0, 8.0])
def test_decay_halves_heat_after_half_life_cycles(half_life: float) -> None:
    h = _model([64.0, 1.0, 0.0], half_life=half_life)
    n = round(half_life * 2)  # whole cycles covering two half-lives
    for _ in range(n):
        h.decay()
    factor = 0.5 ** (n / half_life)
    np.testing.assert_allclose(h.heat, np.array([64.0, 1.0, 0.0]) * factor, rtol=1e-5)


def test_decay_by_fractional_cycles() -> None:
    h = _model([10.0], half_life=4.0)
    h.decay(4.0)
    np.testing.assert_allclose(h.heat, [5.0], rtol=1e-6)
    h.decay(2.0)
    np.testing.assert_allclose(h.heat, [5.0 / np.sqrt(2.0)], rtol=1e-6)


def test_decay_factor_value() -> None:
    assert HeatModel(1, half_life=2.0).decay_factor == pytest.approx(2**-0.5)


# ---- resize -----------------------------------------------------------------------------------
def test_resize_grow_keeps_values_and_new_pages_start_cold() -> None:
    h = HeatModel(3)
    h.ingest(make_batch(np.array([0, 2]), np.array([1.5, 2.5], np.float32)), now=4)
    h.note_moved(np.array([1]), now=3)
    h.resize(10)  # beyond the allocated capacity: reallocates
    assert h.n_pages == 10
    assert h.heat.tolist() == [1.5, 0.0, 2.5] + [0.0] * 7
    assert h.last_seen.tolist() == [4, NEVER, 4] + [NEVER] * 7
    assert h.last_moved.tolist() == [NEVER, 3] + [NEVER] * 8
    # the new pages are usable
    h.ingest(make_batch(np.array([9]), 1.0), now=5)
    assert h.heat[9] == 1.0


def test_resize_shrink_clears_and_regrow_starts_cold() -> None:
    h = HeatModel(6)
    h.ingest(make_batch(np.arange(6), 3.0), now=2)
    h.note_moved(np.arange(6), now=1)
    h.resize(2)
    assert h.n_pages == 2
    assert h.heat.tolist() == [3.0, 3.0]
    # grow back within the old capacity: the dropped pages must not come back with stale state
    h.resize(6)
    assert h.heat.tolist() == [3.0, 3.0, 0.0, 0.0, 0.0, 0.0]
    assert h.last_seen.tolist() == [2, 2] + [NEVER] * 4
    assert h.last_moved.tolist() == [1, 1] + [NEVER] * 4
    # samples for dropped pages are now out of range while shrunk
    h.resize(1)
    h.ingest(make_batch(np.array([1]), 1.0), now=3)
    assert h.dropped_samples == 1


def test_resize_negative_raises() -> None:
    with pytest.raises(InputError):
        HeatModel(2).resize(-3)


# ---- bins -------------------------------------------------------------------------------------
def test_bins_max_is_255_and_zero_is_0() -> None:
    h = _model([0.0, 100.0, 0.0, 37.0])
    b = h.bins()
    assert b.dtype == np.uint8
    assert b[1] == 255
    assert b[0] == 0 and b[2] == 0
    assert 0 < b[3] < 255


def test_bins_one_octave_is_eight_bins() -> None:
    h = _model([8.0, 4.0, 2.0, 1.0, 0.0])
    # The max sits at 256 before clipping into the top bin 255 (bin 255 = [max/2**(1/8), max]),
    # so a heat exactly one octave below the max is 8 bins below 256, and each further octave 8 lower.
    assert h.bins().tolist() == [255, 256 - BINS_PER_OCTAVE, 256 - 2 * BINS_PER_OCTAVE, 232, 0]


def test_bins_within_an_eighth_octave_of_max_share_the_top_bin() -> None:
    h = _model([100.0, 100.0 * 2 ** (-0.1 / BINS_PER_OCTAVE), 100.0 * 2 ** (-1.1 / BINS_PER_OCTAVE)])
    assert h.bins().tolist() == [255, 255, 254]


def test_bins_far_below_max_but_nonzero_is_bin_1() -> None:
    h = _model([1.0, 1e-12, 0.0])
    assert h.bins().tolist() == [255, 1, 0]


def test_bins_all_zero_and_empty() -> None:
    assert _model([0.0, 0.0]).bins().tolist() == [0, 0]
    assert HeatModel(0).bins().shape == (0,)


def test_bins_writes_into_out() -> None:
    h = _model([4.0, 2.0])
    out = np.full(2, 7, dtype=np.uint8)
    res = h.bins(out=out)
    assert res is out
    assert out.tolist() == [255, 248]


def test_bins_of_a_slice_against_a_given_max() -> None:
    h = _model([1.0, 8.0, 4.0, 0.0, 2.0])
    full = h.bins()
    assert full.tolist() == [232, 255, 248, 0, 240]
    # a block of pages binned against the global max equals the same slice of the full bins
    assert h.bins(start=1, stop=4, hmax=8.0).tolist() == full[1:4].tolist()
    # the default max is the max over all pages, not over the slice
    assert h.bins(start=2).tolist() == full[2:].tolist()
    # against a larger max everything lands one octave (8 bins) lower
    assert h.bins(hmax=16.0).tolist() == [224, 248, 240, 0, 232]
    out = np.zeros(2, dtype=np.uint8)
    assert h.bins(out, start=3, stop=5).tolist() == [0, 240]
    assert h.bin_floor(248, hmax=16.0) == pytest.approx(8.0)


def test_bin_floor_edges() -> None:
    h = _model([16.0, 1.0])
    assert h.bin_floor(0) == 0.0
    assert h.bin_floor(N_BINS) == pytest.approx(16.0)
    assert h.bin_floor(248) == pytest.approx(8.0)
    assert h.bin_floor(np.array([0, 240, 256])).tolist() == pytest.approx([0.0, 4.0, 16.0])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.floats(min_value=1e-6, max_value=1e6, allow_nan=False, allow_infinity=False),
        min_size=1,
        max_size=40,
    )
)
def test_bin_floor_is_consistent_with_bins(values: list[float]) -> None:
    h = _model(values)
    b = h.bins().astype(np.int64)
    heat = h.heat.astype(np.float64)
    lo = h.bin_floor(b)
    hi = h.bin_floor(b + 1)
    tol = 1e-5 * heat  # float32 log2 rounding at bin edges
    assert (b >= 1).all()
    # bin 1 also catches every heat further than 254/8 octaves below the max
    assert (lo[b > 1] <= heat[b > 1] + tol[b > 1]).all()
    far = heat < h.bin_floor(2) * (1 - 1e-5)
    assert (b[far] == 1).all()
    below_top = b < N_BINS - 1
    assert (heat[below_top] < hi[below_top] + tol[below_top]).all()
    # the top bin ends at the max itself
    assert heat.max() <= h.bin_floor(N_BINS) * (1 + 1e-6)


# ---- regions ----------------------------------------------------------------------------------
def test_region_heat_sums_per_512_pages_with_partial_last_region() -> None:
    h = HeatModel(1100)
    values = np.ones(1100, dtype=np.float32)
    values[511] = 10.0
    values[1099] = 5.0
    h.load(values)
    r = h.region_heat()
    assert r.dtype == np.float64
    assert r.tolist() == [521.0, 512.0, 80.0]


def test_region_heat_custom_size_and_edge_cases() -> None:
    h = _model([1.0, 2.0, 3.0, 4.0, 5.0])
    assert h.region_heat(2).tolist() == [3.0, 7.0, 5.0]
    assert h.region_heat(5).tolist() == [15.0]
    assert HeatModel(0).region_heat().shape == (0,)
    with pytest.raises(InputError, match="pages_per_region"):
        h.region_heat(0)


# ---- estimate ---------------------------------------------------------------------------------
def test_estimate_corrects_young_pages_only() -> None:
    h = _model([4.0, 4.0, 4.0, 4.0, 4.0], half_life=4.0)
    d = h.decay_factor
    h.note_new(np.array([1, 3]), now=10)
    h.note_new(np.array([4]), now=12)
    est = h.estimate(np.arange(5), now=12)
    assert est.dtype == np.float64
    np.testing.assert_allclose(
        est,
        [4.0, 4.0 / (1 - d**3), 4.0, 4.0 / (1 - d**3), 4.0 / (1 - d**1)],
        rtol=1e-12,
    )
    # a page not young is unchanged; an index subset in any order works
    np.testing.assert_allclose(h.estimate(np.array([4, 0]), now=13), [4.0 / (1 - d**2), 4.0], rtol=1e-12)


def test_estimate_without_young_pages_is_the_heat() -> None:
    h = _model([1.0, 2.0, 3.0])
    assert h.estimate(np.array([2, 0]), now=5).tolist() == [3.0, 1.0]
    h.note_new(np.zeros(0, np.int64), now=5)  # empty note: nothing recorded
    assert h.estimate(np.array([1]), now=5).tolist() == [2.0]


def test_estimate_clamps_negative_age() -> None:
    h = _model([3.0, 3.0])
    h.note_new(np.array([0]), now=9)
    d = h.decay_factor
    np.testing.assert_allclose(h.estimate(np.array([0]), now=7), [3.0 / (1 - d)], rtol=1e-12)


def test_estimate_forgets_pages_after_the_ring_is_full() -> None:
    h = _model([2.0] * 20, half_life=1.0)  # ring keeps max(2, ceil(4 * 1)) = 4 notes
    h.note_new(np.array([0]), now=0)
    for t in range(1, 5):
        h.note_new(np.array([t]), now=t)
    est = h.estimate(np.array([0, 1]), now=5)
    assert est[0] == 2.0
    assert est[1] == pytest.approx(2.0 / (1 - 0.5**5))


def test_remap_follows_pages_into_a_new_page_space() -> None:
    from tierctl.core.heat import NEVER

    h = HeatModel(4)
    h.load(np.array([1, 2, 3, 4]))
    h.last_seen[:] = [10, 11, 12, 13]
    h.note_moved(np.array([2]), 7)
    h.note_new(np.array([3]), 12)
    h.remap(np.array([2, -1, 0, 4]), 6)  # page 1 is gone, two new pages appear (1, 3, 5)
    assert h.n_pages == 6
    assert h.heat.tolist() == [3, 0, 1, 0, 4, 0]
    assert h.last_seen.tolist() == [12, NEVER, 10, NEVER, 13, NEVER]
    assert h.last_moved.tolist() == [7, NEVER, NEVER, NEVER, NEVER, NEVER]
    assert h.estimate(np.array([4]), 12)[0] > 4  # the young page moved with its correction
    with pytest.raises(InputError):
        h.remap(np.array([0, 0, 1, 2, 3, 4]), 6)  # two pages onto one


def test_a_sampler_that_knows_its_unit_sets_it() -> None:
    """DAMON rows carry nr_accesses: a row of weight 20 is 20 observations of weight 1, not one."""
    h = HeatModel(4)
    h.ingest(make_batch(np.array([0, 1]), np.array([20.0, 12.0])), now=1, unit=1.0)
    assert h.unit == 1.0
    h.ingest(make_batch(np.array([0]), np.array([20.0])), now=2)  # no unit given: the lightest row
    assert h.unit == 20.0
