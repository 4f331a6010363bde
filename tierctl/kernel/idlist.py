"""The kernel's id-list syntax ("0-3,8,10-11"), as in cpulist, nodelist and cpuset.mems."""

from __future__ import annotations

import re
from collections.abc import Iterable

from tierctl.errors import InputError, KernelError

_RANGE = re.compile(r"(\d+)(?:-(\d+))?")


def parse_list(text: str, where: str = "list") -> list[int]:
    """Kernel list syntax ("0-3,8,10-11", "" = empty) -> sorted unique ids.

    Raises KernelError (at ``where``) on anything else: a bad token or a reversed range.
    """
    text = text.strip()
    if not text:
        return []
    out: set[int] = set()
    for token in text.split(","):
        m = _RANGE.fullmatch(token.strip())
        if not m:
            raise KernelError(f"not a list of ids (like 0-3,8): {text!r}", where)
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise KernelError(f"reversed range {token.strip()!r} in {text!r}", where)
        out.update(range(lo, hi + 1))
    return sorted(out)


def format_list(ids: Iterable[int], where: str = "ids") -> str:
    """Ids as a kernel list: [0, 1, 3] -> "0-1,3" (sorted, duplicates folded)."""
    given = list(ids)
    for n in given:
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise InputError(f"not an id: {n!r}", where)
    vals = sorted(set(given))
    runs: list[str] = []
    i = 0
    while i < len(vals):
        j = i
        while j + 1 < len(vals) and vals[j + 1] == vals[j] + 1:
            j += 1
        runs.append(str(vals[i]) if i == j else f"{vals[i]}-{vals[j]}")
        i = j + 1
    return ",".join(runs)
