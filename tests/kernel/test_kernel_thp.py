"""THP units for the mover from pagemap + kpageflags: right for scattered pages, and in few reads."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tierctl.kernel import procfs
from tierctl.kernel.procfs import KPF_THP, ProcFS, near_runs
from tierctl.kernel.thp import KpageflagsHugeResolver

PAGE = 4096
PRESENT = np.uint64(1 << 63)
N_VPN = 1 << 16  # 256 MiB of address space
THP_VPN = 4096  # a 2 MiB huge page at vpn 4096..4607, frames 8192..8703


@pytest.fixture
def fs(tmp_path: Path) -> ProcFS:
    vpn = np.arange(N_VPN, dtype=np.uint64)
    frames = vpn + np.uint64(4096)  # page vpn sits in frame vpn + 4096 (so the THP is 2 MiB aligned)
    entries = PRESENT | frames
    entries[7] = 0  # one page not present
    (tmp_path / "9").mkdir()
    (tmp_path / "9" / "pagemap").write_bytes(entries.astype("<u8").tobytes())
    flags = np.zeros(N_VPN + 8192, dtype=np.uint64)
    flags[THP_VPN + 4096 : THP_VPN + 4096 + 512] = np.uint64(1 << KPF_THP)
    (tmp_path / "kpageflags").write_bytes(flags.astype("<u8").tobytes())
    return ProcFS(tmp_path, page_size=PAGE)


def test_near_runs_joins_keys_closer_than_the_gap_and_cuts_long_spans() -> None:
    k = np.array([0, 1, 5, 600, 601, 2000])
    assert near_runs(k, 512, 1 << 20) == [(0, 3), (3, 5), (5, 6)]
    assert near_runs(k, 2, 1 << 20) == [(0, 2), (2, 3), (3, 5), (5, 6)]
    assert near_runs(np.arange(0, 100, 10), 512, 25) == [(0, 3), (3, 6), (6, 9), (9, 10)]
    assert near_runs(np.zeros(0, np.int64), 512, 10) == []


def test_scattered_pages_resolve_in_a_few_reads(fs: ProcFS, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    vpn = rng.choice(N_VPN, 5000, replace=False).astype(np.uint64)
    vpn = np.r_[vpn, vpn[:10], THP_VPN + 3, THP_VPN + 500, 7]  # repeats, two THP subpages, an absent page
    addrs = vpn * np.uint64(PAGE)
    reads: list[int] = []
    real = os.pread

    def counting(fd: int, n: int, off: int) -> bytes:
        reads.append(n)
        return real(fd, n, off)

    monkeypatch.setattr(procfs.os, "pread", counting)
    unit, size = KpageflagsHugeResolver(fs).units(9, addrs)
    assert len(reads) <= 4  # one span of pagemap, one of kpageflags (was one read per page each)
    in_thp = (vpn >= THP_VPN) & (vpn < THP_VPN + 512)
    assert (unit[in_thp] == np.uint64(THP_VPN * PAGE)).all() and (size[in_thp] == 512).all()
    assert (unit[~in_thp] == addrs[~in_thp]).all() and (size[~in_thp] == 1).all()
