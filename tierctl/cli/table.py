"""Plain-text tables for terminal output.

``render(headers, rows, right=..., max_width=N)``: columns two spaces apart, a dashed rule under the
headers, numbers right-aligned (every column but the first, unless ``right`` says otherwise). With
``max_width`` (e.g. ``shutil.get_terminal_size().columns``) a table wider than that wraps its widest
left-aligned (text) column at word boundaries, continuation lines indented under it, so that the table
fits; the column keeps at least ``MIN_WRAP`` characters (and its header's width), so a terminal too
narrow for the other columns gets a table that is as narrow as it can be, never a broken one.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

MIN_WRAP = 20  # a wrapped column keeps at least this many characters
GAP = "  "


def render(
    headers: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    right: Sequence[bool] | None = None,
    max_width: int | None = None,
) -> str:
    head = [str(h) for h in headers]
    body = [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
    align = list(right) if right is not None else [i > 0 for i in range(len(head))]
    lines_of = [[row] for row in body]  # each row as one or more printed lines
    if max_width is not None:
        col = _wrap_column(widths, align, max_width)
        if col is not None:
            room = max(MIN_WRAP, len(head[col]), max_width - _width(widths) + widths[col])
            lines_of = [_wrap_row(row, col, room) for row in body]
            widths[col] = max(len(line[col]) for rows_ in [[head], *lines_of] for line in rows_)
    out = [_line(head, widths, align), GAP.join("-" * w for w in widths)]
    out += [_line(line, widths, align) for rows_ in lines_of for line in rows_]
    return "\n".join(out)


def _width(widths: Sequence[int]) -> int:
    return sum(widths) + len(GAP) * (len(widths) - 1)


def _wrap_column(widths: Sequence[int], align: Sequence[bool], max_width: int) -> int | None:
    """The column to wrap: the widest left-aligned one, when the table is wider than ``max_width``."""
    if _width(widths) <= max_width:
        return None
    text = [i for i, a in enumerate(align) if not a]
    if not text:
        return None
    col = max(text, key=lambda i: widths[i])
    return col if widths[col] > MIN_WRAP else None


def _wrap_row(row: list[str], col: int, width: int) -> list[list[str]]:
    parts = textwrap.wrap(row[col], width, break_on_hyphens=False) or [""]
    first = [*row[:col], parts[0], *row[col + 1 :]]
    return [first] + [[""] * col + [p] + [""] * (len(row) - col - 1) for p in parts[1:]]


def _line(row: Sequence[str], widths: Sequence[int], align: Sequence[bool]) -> str:
    parts = [c.rjust(w) if a else c.ljust(w) for c, w, a in zip(row, widths, align, strict=True)]
    return GAP.join(parts).rstrip()


def _fmt(c: object) -> str:
    if isinstance(c, float):
        return f"{c:.3f}"
    return str(c)
