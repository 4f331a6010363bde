"""Plain-text tables for terminal output."""

from __future__ import annotations

from collections.abc import Sequence


def render(
    headers: Sequence[str], rows: Sequence[Sequence[object]], *, right: Sequence[bool] | None = None
) -> str:
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    align = right if right is not None else [i > 0 for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        parts = [c.rjust(w) if a else c.ljust(w) for c, w, a in zip(row, widths, align, strict=True)]
        lines.append("  ".join(parts).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(c: object) -> str:
    if isinstance(c, float):
        return f"{c:.3f}"
    return str(c)
