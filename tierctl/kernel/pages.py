"""A process's resident pages, as address arrays for the mover."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tierctl.errors import InputError
from tierctl.kernel.procfs import ProcFS, Vma, exclusive, present

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
    parts = []
    overlaps = False
    for v in movable_vmas(procfs, pid):
        lo, hi = v.start, v.end
        if within is not None:
            lo, hi = max(lo, within.start // page_size * page_size), min(hi, within.end)
            if lo >= hi:
                continue
        overlaps = True
        n = -(-(hi - lo) // page_size)
        entries = procfs.pagemap(pid, lo, n)
        keep = present(entries) & exclusive(entries) if exclusive_only else present(entries)
        idx = np.flatnonzero(keep)
        parts.append(np.uint64(lo) + idx.astype(np.uint64) * np.uint64(page_size))
    if within is not None and not overlaps:
        raise InputError(
            f"{within.start:#x}-{within.end:#x} overlaps no mapping of the process", f"pid {pid}"
        )
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint64)
