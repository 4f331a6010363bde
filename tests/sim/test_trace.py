"""Trace files (.npz): validation, load/save round trip, errors that name the array and the file."""

from __future__ import annotations

import gc
import warnings
from pathlib import Path

import numpy as np
import pytest

from tierctl.errors import InputError
from tierctl.sim.trace import REQUIRED, Trace, check_observed, from_epochs, load_trace, validate_trace


def _arrays(**over: object) -> dict[str, np.ndarray]:
    """A valid 3-epoch trace over 5 pages, with arrays replaced (or removed, with None)."""
    arrays: dict[str, np.ndarray] = {
        "page_size": np.int64(4096),
        "n_pages": np.int64(5),
        "epoch_s": np.float64(0.5),
        "offsets": np.array([0, 2, 2, 5], dtype=np.int64),
        "page": np.array([0, 4, 1, 2, 4], dtype=np.int64),
        "count": np.array([3, 1, 2, 7, 1], dtype=np.int64),
    }
    for k, v in over.items():
        if v is None:
            arrays.pop(k)
        else:
            arrays[k] = np.asarray(v)
    return arrays


def _bad(match: str, **over: object) -> InputError:
    with pytest.raises(InputError, match=match) as exc:
        validate_trace(_arrays(**over), "t.npz")
    assert exc.value.where == "t.npz"
    assert str(exc.value).startswith("t.npz: ")
    return exc.value


# ---- valid traces -----------------------------------------------------------------------------
def test_validate_valid_trace() -> None:
    t = validate_trace(_arrays())
    assert (t.page_size, t.n_pages, t.epoch_s) == (4096, 5, 0.5)
    assert isinstance(t.page_size, int) and isinstance(t.n_pages, int) and isinstance(t.epoch_s, float)
    assert t.n_epochs == 3
    assert t.offsets.tolist() == [0, 2, 2, 5]
    assert t.page.dtype == np.int64 and t.count.dtype == np.int64
    assert [p.tolist() for p, _ in map(t.epoch, range(3))] == [[0, 4], [], [1, 2, 4]]
    assert t.epoch(2)[1].tolist() == [2, 7, 1]
    assert t.cgroup is None and t.cgroup_names is None


def test_validate_accepts_other_integer_dtypes_and_one_element_scalars() -> None:
    t = validate_trace(
        _arrays(
            n_pages=np.array([5], dtype=np.int32),
            epoch_s=np.int64(2),
            page=np.array([0, 4, 1, 2, 4], dtype=np.uint16),
            count=np.array([3, 1, 2, 7, 1], dtype=np.int32),
        )
    )
    assert t.n_pages == 5
    assert t.epoch_s == 2.0
    assert t.page.dtype == np.int64
    assert t.count.dtype == np.int64


def test_owners_without_and_with_cgroups() -> None:
    t = validate_trace(_arrays())
    owner, names = t.owners()
    assert owner.tolist() == [0] * 5
    assert names == ("all",)
    t = validate_trace(_arrays(cgroup=np.array([0, 2, 2, 1, 0])))
    owner, names = t.owners()
    assert owner.tolist() == [0, 2, 2, 1, 0]
    assert names == ("cgroup0", "cgroup1", "cgroup2")


def test_save_load_round_trip(tmp_path: Path) -> None:
    t = validate_trace(_arrays())
    path = tmp_path / "trace.npz"
    t.save(path)
    u = load_trace(path)
    assert (u.page_size, u.n_pages, u.epoch_s) == (t.page_size, t.n_pages, t.epoch_s)
    for name in ("offsets", "page", "count"):
        np.testing.assert_array_equal(getattr(u, name), getattr(t, name))
    assert u.cgroup is None and u.cgroup_names is None


def test_save_load_round_trip_with_cgroups(tmp_path: Path) -> None:
    t = validate_trace(
        _arrays(cgroup=np.array([1, 0, 0, 1, 1]), cgroup_names=np.array(["db", "web"])),
    )
    assert t.cgroup_names == ("db", "web")
    path = tmp_path / "cg.npz"
    t.save(str(path))
    u = load_trace(str(path))
    assert u.cgroup is not None
    assert u.cgroup.tolist() == [1, 0, 0, 1, 1]
    assert u.cgroup_names == ("db", "web")
    assert u.owners()[1] == ("db", "web")
    with np.load(path) as z:
        assert set(z.files) == {*REQUIRED, "cgroup", "cgroup_names"}


def test_from_epochs_builds_offsets(tmp_path: Path) -> None:
    t = from_epochs(
        [
            (np.array([2, 0]), np.array([1, 5])),
            (np.zeros(0, np.int64), np.zeros(0, np.int64)),
            (np.array([3], np.int32), np.array([9], np.int32)),
        ],
        n_pages=4,
        page_size=8192,
        epoch_s=0.25,
        cgroup=np.array([0, 0, 1, 1]),
        cgroup_names=("a", "b"),
    )
    assert t.offsets.tolist() == [0, 2, 2, 3]
    assert t.offsets.dtype == np.int64
    assert t.page.tolist() == [2, 0, 3] and t.page.dtype == np.int64
    assert t.count.tolist() == [1, 5, 9] and t.count.dtype == np.int64
    assert (t.n_pages, t.page_size, t.epoch_s, t.n_epochs) == (4, 8192, 0.25, 3)
    # what from_epochs builds is a valid trace that survives a round trip
    t.save(tmp_path / "e.npz")
    u = load_trace(tmp_path / "e.npz")
    assert u.page.tolist() == [2, 0, 3]
    assert u.cgroup_names == ("a", "b")


def test_from_epochs_with_no_epochs() -> None:
    t = from_epochs([], n_pages=3)
    assert t.offsets.tolist() == [0]
    assert t.n_epochs == 0
    assert t.page.shape == (0,)


def test_head_keeps_first_epochs() -> None:
    t = validate_trace(_arrays(cgroup=np.array([0, 1, 1, 0, 0])))
    h = t.head(1)
    assert h.n_epochs == 1
    assert h.offsets.tolist() == [0, 2]
    assert h.page.tolist() == [0, 4]
    assert h.count.tolist() == [3, 1]
    assert (h.n_pages, h.page_size, h.epoch_s) == (5, 4096, 0.5)
    assert h.cgroup is not None and h.cgroup.tolist() == [0, 1, 1, 0, 0]
    h2 = t.head(2)
    assert h2.offsets.tolist() == [0, 2, 2]
    assert h2.page.tolist() == [0, 4]
    assert t.head(3).page.tolist() == t.page.tolist()
    assert t.head(0).n_epochs == 0
    # head copies the offsets: the original is untouched by changes to the head
    h.offsets[1] = 99
    assert t.offsets.tolist() == [0, 2, 2, 5]


# ---- one test per validation error ------------------------------------------------------------
@pytest.mark.parametrize("name", REQUIRED)
def test_missing_array(name: str) -> None:
    err = _bad(f"missing array '{name}'", **{name: None})
    assert err.exit_code == 2


def test_float_page_rejected() -> None:
    _bad(r"array 'page' must be an integer array, has dtype float64", page=np.array([0, 4, 1, 2, 4.0]))


def test_float_offsets_rejected() -> None:
    _bad(r"array 'offsets' must be an integer array, has dtype float", offsets=np.array([0.0, 2, 2, 5]))


def test_float_n_pages_rejected() -> None:
    _bad(r"array 'n_pages' must be int, has dtype float64", n_pages=np.float64(5.0))


def test_non_scalar_page_size_rejected() -> None:
    _bad(r"array 'page_size' must be a scalar", page_size=np.array([4096, 4096]))


def test_two_dimensional_count_rejected() -> None:
    _bad(r"array 'count' must be 1-D", count=np.ones((5, 1), dtype=np.int64))


def test_offsets_not_monotonic() -> None:
    _bad(
        r"array 'offsets' is not monotonic: offsets\[2\]=1 < offsets\[1\]=2",
        offsets=np.array([0, 2, 1, 5]),
    )


def test_offsets_not_starting_at_zero() -> None:
    _bad(r"array 'offsets' must start at 0, starts at 1", offsets=np.array([1, 2, 2, 5]))


def test_offsets_too_short() -> None:
    _bad(r"array 'offsets' needs at least 2 entries", offsets=np.array([0]))


def test_offsets_end_differs_from_page_length() -> None:
    _bad(r"array 'offsets' ends at 4 but 'page' has 5 rows", offsets=np.array([0, 2, 2, 4]))


def test_page_count_length_mismatch() -> None:
    _bad(r"arrays 'page' \(5\) and 'count' \(4\) differ in length", count=np.array([3, 1, 2, 7]))


@pytest.mark.parametrize(("value", "row"), [(-1, 3), (5, 3), (1 << 40, 3)])
def test_page_id_out_of_range(value: int, row: int) -> None:
    page = np.array([0, 4, 1, 2, 4])
    page[row] = value
    _bad(rf"array 'page' row {row}: page id {value} out of range 0..4", page=page)


@pytest.mark.parametrize("value", [0, -3])
def test_count_not_positive(value: int) -> None:
    _bad(rf"array 'count' row 1: count {value} must be > 0", count=np.array([3, value, 2, 7, 1]))


@pytest.mark.parametrize("value", [0, -2])
def test_n_pages_not_positive(value: int) -> None:
    # with no rows, the page-range check cannot fire first
    _bad(
        rf"array 'n_pages' must be > 0, got {value}",
        n_pages=np.int64(value),
        offsets=np.array([0, 0]),
        page=np.zeros(0, np.int64),
        count=np.zeros(0, np.int64),
    )


@pytest.mark.parametrize("value", [0, -4096, 3000, 4097])
def test_page_size_not_power_of_two(value: int) -> None:
    _bad(rf"array 'page_size' must be a positive power of two, got {value}", page_size=np.int64(value))


@pytest.mark.parametrize("value", [0.0, -1.0, np.inf, np.nan])
def test_epoch_s_not_positive_or_not_finite(value: float) -> None:
    _bad(r"array 'epoch_s' must be > 0", epoch_s=np.float64(value))


def test_epoch_s_string_rejected() -> None:
    _bad(r"array 'epoch_s' must be float", epoch_s=np.array("1.0"))


def test_cgroup_wrong_length() -> None:
    _bad(r"array 'cgroup' must have n_pages=5 entries, has 4", cgroup=np.array([0, 0, 1, 1]))


def test_cgroup_negative() -> None:
    _bad(r"array 'cgroup' has negative cgroup indices", cgroup=np.array([0, -1, 1, 1, 0]))


def test_cgroup_names_too_short() -> None:
    _bad(
        r"array 'cgroup_names' has 2 names but 'cgroup' uses index 2",
        cgroup=np.array([0, 1, 2, 1, 0]),
        cgroup_names=np.array(["a", "b"]),
    )


def test_cgroup_names_not_strings() -> None:
    _bad(r"array 'cgroup_names' must be a 1-D string array", cgroup_names=np.array([1, 2]))


# ---- load_trace -------------------------------------------------------------------------------
def test_load_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.npz"
    with pytest.raises(InputError, match="trace file not found") as exc:
        load_trace(path)
    assert str(path) in str(exc.value)
    assert exc.value.exit_code == 2


def test_load_text_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("this is not a trace\n")
    with pytest.raises(InputError, match=r"cannot read observed as \.npz") as exc:
        load_trace(path, what="observed")
    assert str(path) in str(exc.value)
    assert exc.value.exit_code == 2


def test_load_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.npz"
    path.write_bytes(b"")
    with pytest.raises(InputError, match=r"cannot read trace as \.npz") as exc:
        load_trace(path)
    assert str(path) in str(exc.value)


def _truncated_copy(tmp_path: Path) -> Path:
    good = tmp_path / "good.npz"
    validate_trace(_arrays()).save(good)
    path = tmp_path / "cut.npz"
    path.write_bytes(good.read_bytes()[:40])
    return path


def test_load_truncated_zip(tmp_path: Path) -> None:
    path = _truncated_copy(tmp_path)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        with pytest.raises(InputError, match=r"cannot read trace as \.npz") as exc:
            load_trace(path)
        gc.collect()
    assert str(path) in str(exc.value)
    assert exc.value.exit_code == 2


def test_load_truncated_zip_closes_the_file(tmp_path: Path) -> None:
    path = _truncated_copy(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(InputError):
            load_trace(path)
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []


def test_load_validates_contents(tmp_path: Path) -> None:
    path = tmp_path / "bad.npz"
    arrays = _arrays(count=None)
    np.savez(path, **arrays)
    with pytest.raises(InputError, match="missing array 'count'") as exc:
        load_trace(path)
    assert exc.value.where == str(path)


def test_load_npy_file_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "page.npy"
    np.save(path, np.arange(5))
    with pytest.raises(InputError, match=r"\.npz") as exc:
        load_trace(path)
    assert str(path) in str(exc.value)
    assert exc.value.exit_code == 2


# ---- check_observed ---------------------------------------------------------------------------
def test_check_observed_accepts_matching_shape() -> None:
    t = validate_trace(_arrays())
    obs = validate_trace(_arrays(page=np.array([0, 4, 1, 1, 1]), count=np.array([1, 1, 1, 1, 1])))
    check_observed(t, obs, "--observed")  # no error


def test_check_observed_n_pages_mismatch() -> None:
    t = validate_trace(_arrays())
    obs = validate_trace(_arrays(n_pages=np.int64(6)))
    with pytest.raises(InputError, match=r"observed n_pages=6 differs from the trace's 5") as exc:
        check_observed(t, obs, "--observed")
    assert exc.value.where == "--observed"


def test_check_observed_epoch_mismatch() -> None:
    t = validate_trace(_arrays())
    with pytest.raises(InputError, match=r"observed has 2 epochs, the trace 3"):
        check_observed(t, t.head(2), "obs.npz")


def test_trace_is_frozen() -> None:
    t = from_epochs([(np.array([0]), np.array([1]))], n_pages=1)
    with pytest.raises(AttributeError):
        t.n_pages = 2  # type: ignore[misc]
    assert isinstance(t, Trace)
