"""Bits of /proc/PID/pagemap entries and /proc/kpageflags words, and their vectorised decoders.

Pure functions over numpy arrays of the uint64 words :class:`tierctl.kernel.procfs.ProcFS` reads;
``unique_frames`` and ``near_runs`` turn page frame numbers into the spans one read can cover.
Field meanings: Documentation/admin-guide/mm/pagemap.rst and include/uapi/linux/kernel-page-flags.h.
"""

from __future__ import annotations

import numpy as np

from tierctl.errors import InputError

# --- /proc/PID/pagemap entry bits (pagemap.rst) ---------------------------------------------
PM_PFN_MASK = (1 << 55) - 1  # bits 0-54: PFN if present, swap type (0-4) + offset (5-54) if swapped
PM_SOFT_DIRTY = 55
PM_EXCLUSIVE = 56  # page mapped exactly once (since 4.2)
PM_UFFD_WP = 57
PM_FILE_OR_SHARED = 61  # file page or shared anonymous page (since 3.5)
PM_SWAPPED = 62
PM_PRESENT = 63

# --- /proc/kpageflags bits (include/uapi/linux/kernel-page-flags.h) -------------------------
KPF_LOCKED = 0
KPF_REFERENCED = 2
KPF_DIRTY = 4
KPF_LRU = 5
KPF_ACTIVE = 6
KPF_SLAB = 7
KPF_BUDDY = 10
KPF_MMAP = 11
KPF_ANON = 12
KPF_SWAPBACKED = 14
KPF_COMPOUND_HEAD = 15
KPF_COMPOUND_TAIL = 16
KPF_HUGE = 17  # hugetlbfs page
KPF_UNEVICTABLE = 18
KPF_NOPAGE = 20  # no page frame at this pfn
KPF_KSM = 21
KPF_THP = 22  # transparent huge page (head and tails)
KPF_ZERO_PAGE = 24
KPF_IDLE = 25


# --- vectorised pagemap decoders -------------------------------------------------------------
def _bit(entries: np.ndarray, bit: int) -> np.ndarray:
    return ((np.asarray(entries, dtype=np.uint64) >> np.uint64(bit)) & np.uint64(1)) == 1


def present(entries: np.ndarray) -> np.ndarray:
    """Bool per entry: the page is in RAM (bit 63)."""
    return _bit(entries, PM_PRESENT)


def swapped(entries: np.ndarray) -> np.ndarray:
    """Bool per entry: the page is in swap (bit 62)."""
    return _bit(entries, PM_SWAPPED)


def file_or_shared(entries: np.ndarray) -> np.ndarray:
    """Bool per entry: a file page or a shared anonymous page (bit 61)."""
    return _bit(entries, PM_FILE_OR_SHARED)


def exclusive(entries: np.ndarray) -> np.ndarray:
    """Bool per entry: the page is mapped only here (bit 56)."""
    return _bit(entries, PM_EXCLUSIVE)


def soft_dirty(entries: np.ndarray) -> np.ndarray:
    """Bool per entry: written since soft-dirty bits were last cleared (bit 55)."""
    return _bit(entries, PM_SOFT_DIRTY)


def pfn(entries: np.ndarray) -> np.ndarray:
    """Page frame number (bits 0-54) of present pages, 0 elsewhere.

    The kernel reports 0 for every page to readers without CAP_SYS_ADMIN.
    """
    e = np.asarray(entries, dtype=np.uint64)
    return np.where(present(e), e & np.uint64(PM_PFN_MASK), np.uint64(0))


def swap_type(entries: np.ndarray) -> np.ndarray:
    """Swap device index (bits 0-4) of swapped pages, 0 elsewhere."""
    e = np.asarray(entries, dtype=np.uint64)
    return np.where(swapped(e), e & np.uint64(0x1F), np.uint64(0))


def swap_offset(entries: np.ndarray) -> np.ndarray:
    """Offset in the swap device (bits 5-54) of swapped pages, 0 elsewhere."""
    e = np.asarray(entries, dtype=np.uint64)
    return np.where(swapped(e), (e & np.uint64(PM_PFN_MASK)) >> np.uint64(5), np.uint64(0))


def kpf(flags: np.ndarray, bit: int) -> np.ndarray:
    """Bool per entry of /proc/kpageflags words: ``bit`` (a ``KPF_*`` constant) is set."""
    return _bit(flags, bit)


def near_runs(keys: np.ndarray, max_gap: int, max_span: int) -> list[tuple[int, int]]:
    """Index ranges [start, stop) of sorted unique ``keys`` (page or frame numbers) where each key is
    less than ``max_gap`` after the previous one and a range spans at most ``max_span`` keys' worth of
    numbers: what one read can cover. Vectorised except for splitting spans longer than ``max_span``."""
    if keys.size == 0:
        return []
    k = keys.astype(np.int64)
    breaks = np.flatnonzero(np.diff(k) >= max_gap) + 1
    starts = np.r_[0, breaks]
    stops = np.r_[breaks, k.size]
    out = []
    for s0, s1 in zip(starts.tolist(), stops.tolist(), strict=True):
        while k[s1 - 1] - k[s0] >= max_span:  # a long span: cut it where it reaches max_span
            cut = int(np.searchsorted(k[s0:s1], k[s0] + max_span, side="left")) + s0
            out.append((s0, cut))
            s0 = cut
        out.append((s0, s1))
    return out


def unique_frames(pfns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique page frames of ``pfns`` (uint64) and each input's index among them, so that
    ``uniq[inverse]`` is ``pfns``; both empty for an empty input. InputError (where ``pfns``) unless
    a 1-d array of integers >= 0."""
    arr = np.asarray(pfns)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "ui"):
        raise InputError(f"must be a 1-d integer array, got {arr.dtype}{list(arr.shape)}", "pfns")
    if arr.size == 0:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
    if arr.dtype.kind == "i" and int(arr.min()) < 0:
        raise InputError("page frame numbers must be >= 0", "pfns")
    # a stable argsort, not np.unique(return_inverse=True): its quicksort argsort segfaulted in the
    # TCG guest (numpy 2.4)
    keys = arr.astype(np.uint64)
    order = np.argsort(keys, kind="stable")
    ranked = keys[order]
    new_run = np.r_[True, ranked[1:] != ranked[:-1]]
    inverse = np.empty(keys.shape[0], dtype=np.int64)
    inverse[order] = np.cumsum(new_run) - 1
    return ranked[new_run], inverse


def check_page_range(start_addr: int, n_pages: int, page_size: int) -> None:
    """InputError (where ``start_addr`` or ``n_pages``) unless ``start_addr`` is an address >= 0
    aligned to ``page_size`` and ``n_pages`` an int >= 0."""
    if isinstance(start_addr, bool) or not isinstance(start_addr, int) or start_addr < 0:
        raise InputError(f"must be an address >= 0, got {start_addr!r}", "start_addr")
    if start_addr % page_size:
        raise InputError(f"{start_addr:#x} is not aligned to {page_size} bytes", "start_addr")
    if isinstance(n_pages, bool) or not isinstance(n_pages, int) or n_pages < 0:
        raise InputError(f"must be >= 0, got {n_pages!r}", "n_pages")
