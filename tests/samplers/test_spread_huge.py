"""A fault on a huge page counts for every base page of it."""

from __future__ import annotations

import numpy as np

from tierctl.errors import NoSuchProcessError
from tierctl.samplers.base import RAW_SAMPLE_DTYPE
from tierctl.samplers.huge import spread_huge

HUGE_AT = 0x40000000  # pid 7 has a THP at [1 GiB, 1 GiB + 2 MiB)


def units(pid: int, addrs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if pid == 9:
        raise NoSuchProcessError("gone", f"pid {pid}")
    inside = (pid == 7) & (addrs >= HUGE_AT) & (addrs < HUGE_AT + (2 << 20))
    return np.where(inside, np.uint64(HUGE_AT), addrs), np.where(inside, 512, 1)


def rows(*spec: tuple[int, int, int]) -> np.ndarray:
    out = np.zeros(len(spec), RAW_SAMPLE_DTYPE)
    for i, (pid, vpn, count) in enumerate(spec):
        out[i] = (100 + pid, pid, 0, vpn, count)
    return out


def test_a_fault_on_a_thp_becomes_one_row_per_base_page() -> None:
    head = HUGE_AT >> 12
    got = spread_huge(rows((7, head + 37, 3), (7, 5, 1), (8, head + 1, 2)), units)
    assert got.dtype == RAW_SAMPLE_DTYPE
    huge = got[(got["pid"] == 7) & (got["vpn"] >= head) & (got["vpn"] < head + 512)]
    assert sorted(huge["vpn"].tolist()) == list(range(head, head + 512))
    assert (huge["count"] == 3).all() and (huge["cgroup"] == 107).all()
    # base pages and other processes' pages are untouched
    rest = got[~np.isin(np.arange(got.shape[0]), np.flatnonzero((got["pid"] == 7) & (got["vpn"] >= head)))]
    assert sorted(zip(rest["pid"].tolist(), rest["vpn"].tolist(), strict=True)) == [(7, 5), (8, head + 1)]
    assert got.shape[0] == 512 + 2


def test_gone_processes_and_empty_batches_pass_through() -> None:
    r = rows((9, 1, 1))
    assert spread_huge(r, units).tolist() == r.tolist()
    assert spread_huge(rows(), units).shape == (0,)
