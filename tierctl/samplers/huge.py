"""Fault samples on transparent huge pages stand for the whole folio.

A fault on a PMD-mapped THP (a first touch, or a NUMA hint fault on a slow-tier
huge page) happens once for all of its 512 base pages: the kernel maps, hints and
migrates the folio as one. Counted at the faulting 4 KiB page only, a hot THP
looks 512 times colder than the same memory in base pages, and its hot set is
never promoted. ``spread_huge`` gives every base page of the folio the fault's
count, which is what a fault on each of them would have reported.

Only for mapping-granular samplers (bpf-fault): an address-precise sample (PEBS,
IBS) already lands on the base page it touched.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tierctl.errors import NoSuchProcessError
from tierctl.samplers.base import RAW_SAMPLE_DTYPE

#: (pid, addresses) -> (unit start address, unit size in base pages) per address
Units = Callable[[int, np.ndarray], tuple[np.ndarray, np.ndarray]]


def spread_huge(rows: np.ndarray, units: Units, *, page_shift: int = 12) -> np.ndarray:
    """``rows`` with each row on a huge page replaced by one row per base page of that page."""
    if rows.shape[0] == 0:
        return rows
    shift = np.uint64(page_shift)
    parts = []
    for pid in np.unique(rows["pid"]):
        mine = rows[rows["pid"] == pid]
        try:
            head, size = units(int(pid), mine["vpn"] << shift)
        except NoSuchProcessError:
            parts.append(mine)  # gone: the rows will not match a tracked page anyway
            continue
        huge = size > 1
        parts.append(mine[~huge])
        if not huge.any():
            continue
        big, start, n = mine[huge], head[huge] >> shift, size[huge].astype(np.int64)
        expanded = np.repeat(big, n)
        offset = np.arange(expanded.shape[0]) - np.repeat(np.cumsum(n) - n, n)
        expanded["vpn"] = np.repeat(start, n) + offset.astype(np.uint64)
        parts.append(expanded)
    out = np.concatenate(parts) if parts else np.zeros(0, RAW_SAMPLE_DTYPE)
    return out.astype(RAW_SAMPLE_DTYPE, copy=False)
