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
from tierctl.kernel.procfs import KPF_THP, ProcFS, kpf, near_runs, pfn, present

PAGEMAP_GAP = 512  # pages this close are read together (8 bytes each) rather than one pread each
PAGEMAP_MAX_SPAN = 1 << 18  # pages per pread at most (2 MiB of entries)


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
        entries = self._pagemap(pid, sorted_addrs)
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

    def _pagemap(self, pid: int, sorted_addrs: np.ndarray) -> np.ndarray:
        """Page-table entries of sorted addresses (repeats allowed): one pread per span of nearby
        pages (PAGEMAP_GAP), not one per run: the victims of a demotion are scattered."""
        vpn = (sorted_addrs // np.uint64(self.page_size)).astype(np.int64)
        new = np.r_[True, vpn[1:] != vpn[:-1]]
        uniq = vpn[new]
        spans = near_runs(uniq, PAGEMAP_GAP, PAGEMAP_MAX_SPAN)
        reads = self.procfs.pagemap_ranges(
            pid, [(int(uniq[a]) * self.page_size, int(uniq[b - 1] - uniq[a]) + 1) for a, b in spans]
        )
        out = np.empty(uniq.size, dtype=np.uint64)
        for (a, b), span in zip(spans, reads, strict=True):
            out[a:b] = span[uniq[a:b] - uniq[a]]
        return out[np.cumsum(new) - 1]
