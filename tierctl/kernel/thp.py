"""Which addresses are backed by transparent huge pages, and where each huge page starts.

First choice, PAGEMAP_SCAN (an ioctl on /proc/PID/pagemap, Linux 6.7+, no root needed): the
kernel returns the address ranges its page tables map with PMD-sized huge pages, a few
24-byte records per span instead of 8 bytes per page plus a kpageflags read per frame (in the
TCG guest the kpageflags way cost ~8 % of a 256 MiB move of 4 KiB pages; the scan ~1 %). A
PMD-mapped huge page is naturally aligned, so its head is ``addr & ~(huge_bytes - 1)``. It does
not see huge pages mapped by PTEs (a THP partly mprotected, mTHP): those stay base-page units;
the kernel moves the whole folio on the first of them and the mover re-queries the others.

Fallback (kernels without the ioctl, fake trees in tests): pagemap gives each page's frame
number (root only), kpageflags the frame's THP bit. A THP folio of ``huge_pages`` base pages
is naturally aligned in physical memory, so a subpage's head frame is
``pfn & ~(huge_pages - 1)`` and its head address ``addr - (pfn - head) * page_size``. Without
the privileges to read frames, every address stays its own unit (moves stay correct: the
kernel moves the whole folio on the first subpage; only the per-page accounting is coarser),
and ``reason`` says why.
"""

from __future__ import annotations

import itertools

import numpy as np

from tierctl.errors import PermissionDeniedError
from tierctl.kernel.procfs import (
    KPF_THP,
    PagemapScanUnsupportedError,
    ProcFS,
    kpf,
    near_runs,
    pfn,
    present,
)

PAGEMAP_GAP = 512  # pages this close are read together (8 bytes each) rather than one pread each
PAGEMAP_MAX_SPAN = 1 << 18  # pages per pread at most (2 MiB of entries)
SCAN_MAX_SPAN = 1 << 26  # pages per PAGEMAP_SCAN call at most (256 GiB of address space)


class KpageflagsHugeResolver:
    """THP units by PAGEMAP_SCAN when the kernel has it (``method`` = "pagemap-scan"), else by
    pagemap frames + kpageflags ("kpageflags", root only)."""

    def __init__(
        self, procfs: ProcFS, *, page_size: int = 4096, huge_pages: int = 512, scan: bool = True
    ) -> None:
        self.procfs = procfs
        self.page_size = page_size
        self.huge_pages = huge_pages
        self.reason: str | None = None  # set when THP detection is off
        self.method = "pagemap-scan" if scan else "kpageflags"

    def units(self, pid: int, addrs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        addrs = np.asarray(addrs, dtype=np.uint64)
        n = addrs.shape[0]
        if self.reason is not None or n == 0:
            return addrs, np.ones(n, dtype=np.int64)
        ascending = n == 1 or bool((addrs[1:] >= addrs[:-1]).all())
        order = None if ascending else np.argsort(addrs, kind="stable")
        sorted_addrs = addrs if order is None else addrs[order]
        if self.method == "pagemap-scan":
            try:
                return self._scan_units(pid, addrs, sorted_addrs)
            except PagemapScanUnsupportedError:
                self.method = "kpageflags"  # no PAGEMAP_SCAN here (or not a real pagemap file)
        if order is None:
            order = np.arange(n)
        ones = np.ones(n, dtype=np.int64)
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

    def _scan_units(
        self, pid: int, addrs: np.ndarray, sorted_addrs: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Units from the huge ranges PAGEMAP_SCAN reports over spans of nearby addresses."""
        ps = self.page_size
        # spans of addresses less than PAGEMAP_GAP pages apart, at most SCAN_MAX_SPAN pages each
        cuts = np.flatnonzero(np.diff(sorted_addrs) >= np.uint64(PAGEMAP_GAP * ps)) + 1
        ranges = []
        for a, b in itertools.pairwise([0, *cuts.tolist(), sorted_addrs.shape[0]]):
            lo, hi = int(sorted_addrs[a]) // ps * ps, (int(sorted_addrs[b - 1]) // ps + 1) * ps
            ranges += [(x, min(x + SCAN_MAX_SPAN * ps, hi)) for x in range(lo, hi, SCAN_MAX_SPAN * ps)]
        starts, ends = self.procfs.pagemap_scan(pid, ranges, huge_only=True)
        ones = np.ones(addrs.shape[0], dtype=np.int64)
        if starts.shape[0] == 0:
            return addrs, ones
        i = np.searchsorted(starts, addrs, side="right") - 1
        huge = (i >= 0) & (addrs < ends[np.maximum(i, 0)])
        head = addrs & ~np.uint64(self.huge_pages * self.page_size - 1)
        return np.where(huge, head, addrs), np.where(huge, self.huge_pages, ones)

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
