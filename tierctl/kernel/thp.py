"""Which addresses are backed by transparent huge pages, and where each huge page starts.

pagemap gives each page's frame number (root only), kpageflags the frame's THP
bit. A THP folio of ``huge_pages`` base pages is naturally aligned in physical
memory, so a subpage's head frame is ``pfn & ~(huge_pages - 1)`` and its head
address ``addr - (pfn - head) * page_size``. Without the privileges to read
frames, every address stays its own unit (moves stay correct: the kernel moves
the whole folio on the first subpage; only the per-page accounting is coarser),
and ``reason`` says why.
"""

from __future__ import annotations

import numpy as np

from tierctl.errors import PermissionDeniedError
from tierctl.kernel.procfs import KPF_THP, ProcFS, kpf, pfn, present


def contiguous_runs(addrs: np.ndarray, page_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(start index, length) of each run of consecutive page addresses."""
    if addrs.shape[0] == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    brk = np.flatnonzero(np.diff(addrs.astype(np.int64)) != page_size) + 1
    starts = np.r_[0, brk]
    return starts, np.diff(np.r_[starts, addrs.shape[0]])


class KpageflagsHugeResolver:
    def __init__(self, procfs: ProcFS, *, page_size: int = 4096, huge_pages: int = 512) -> None:
        self.procfs = procfs
        self.page_size = page_size
        self.huge_pages = huge_pages
        self.reason: str | None = None  # set when THP detection is off

    def units(self, pid: int, addrs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        addrs = np.asarray(addrs, dtype=np.uint64)
        ones = np.ones(addrs.shape[0], dtype=np.int64)
        if self.reason is not None or addrs.shape[0] == 0:
            return addrs, ones
        order = np.argsort(addrs, kind="stable")
        sorted_addrs = addrs[order]
        starts, lengths = contiguous_runs(sorted_addrs, self.page_size)
        entries = np.concatenate(
            [
                self.procfs.pagemap(pid, int(sorted_addrs[s]), int(n))
                for s, n in zip(starts, lengths, strict=True)
            ]
        )
        frames = pfn(entries)
        known = present(entries) & (frames > 0)
        if present(entries).any() and not known.any():
            self.reason = "page frame numbers need CAP_SYS_ADMIN: THP subpages are moved one by one"
            return addrs, ones
        try:
            flags = np.zeros(entries.shape[0], dtype=np.uint64)
            flags[known] = self.procfs.kpageflags(frames[known])
        except PermissionDeniedError as e:
            self.reason = f"no THP detection: {e}"
            return addrs, ones
        thp = known & kpf(flags, KPF_THP)
        head = frames & ~np.uint64(self.huge_pages - 1)
        unit_sorted = np.where(thp, sorted_addrs - (frames - head) * np.uint64(self.page_size), sorted_addrs)
        size_sorted = np.where(thp, self.huge_pages, 1)
        unit = np.empty_like(addrs)
        size = np.empty(addrs.shape[0], dtype=np.int64)
        unit[order] = unit_sorted
        size[order] = size_sorted
        return unit, size
