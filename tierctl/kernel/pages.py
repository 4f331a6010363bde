"""A process's resident pages, as address arrays for the mover."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tierctl.errors import InputError
from tierctl.kernel.procfs import PM_EXCLUSIVE, PM_PRESENT, ProcFS, Vma

PRESENT_BIT = 1 << PM_PRESENT
EXCLUSIVE_BIT = 1 << PM_EXCLUSIVE

# mappings move_pages cannot or must not touch
UNMOVABLE = ("[vsyscall]", "[vvar]", "[vdso]", "[vvar_vclock]", "[uprobes]")


@dataclass(frozen=True)
class AddressRange:
    start: int
    end: int

    @staticmethod
    def parse(text: str) -> AddressRange:
        """ "START-END" with hex (0x...) or decimal numbers; END is exclusive."""
        try:
            a, b = text.split("-", 1)
            start, end = int(a, 0), int(b, 0)
        except ValueError:
            raise InputError(
                f"expected START-END (e.g. 0x7f0000000000-0x7f0010000000), got {text!r}", "--range"
            ) from None
        if start < 0 or end <= start:
            raise InputError(f"empty or negative range {text!r}", "--range")
        return AddressRange(start, end)


def movable_vmas(procfs: ProcFS, pid: int) -> list[Vma]:
    return [v for v in procfs.maps(pid) if v.path not in UNMOVABLE]


def present_pages(
    procfs: ProcFS,
    pid: int,
    within: AddressRange | None = None,
    *,
    page_size: int = 4096,
    exclusive_only: bool = False,
) -> np.ndarray:
    """Addresses (uint64, ascending) of the resident pages of ``pid``'s movable mappings,
    restricted to ``within`` when given (which must overlap a mapping). ``exclusive_only``: only
    pages no other process maps (move_pages moves shared ones only with MPOL_MF_MOVE_ALL)."""
    ranges = []
    for v in movable_vmas(procfs, pid):
        lo, hi = v.start, v.end
        if within is not None:
            lo, hi = max(lo, within.start // page_size * page_size), min(hi, within.end)
            if lo >= hi:
                continue
        ranges.append((lo, -(-(hi - lo) // page_size)))
    if within is not None and not ranges:
        raise InputError(
            f"{within.start:#x}-{within.end:#x} overlaps no mapping of the process", f"pid {pid}"
        )
    if not ranges:
        return np.zeros(0, dtype=np.uint64)
    # one open of pagemap, one pread per mapping, one vectorised decode over all of them
    entries = np.concatenate(procfs.pagemap_ranges(pid, ranges))
    starts = np.array([lo for lo, _ in ranges], dtype=np.uint64)
    counts = np.array([n for _, n in ranges], dtype=np.int64)
    first = np.cumsum(counts) - counts  # offset of each mapping's first entry
    addr = np.repeat(starts - first.astype(np.uint64) * np.uint64(page_size), counts)
    addr += np.arange(entries.shape[0], dtype=np.uint64) * np.uint64(page_size)
    mask = np.uint64(PRESENT_BIT | (EXCLUSIVE_BIT if exclusive_only else 0))
    return addr[(entries & mask) == mask]
