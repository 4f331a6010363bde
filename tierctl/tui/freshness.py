"""How true the screen is (pure): the data's age, the paused state, and the loud states that must not
look like a quiet machine — no sampler running, one tier only, a daemon never reached or gone.

The summary line is assembled from pieces with a priority; when the width is short the least wanted
pieces first take their short form, then give way (the rates and the data's age stay at 80 columns).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from rich.text import Text

from tierctl.tui.model import NodeUse

T = TypeVar("T")

LIVE_SAMPLER = frozenset({"running", "active"})
STALE_AFTER_S = 5.0  # data older than this (and than three collections) is marked stale
LOUD = "bold white on red"
WARN = "bold black on yellow"
PAUSED_BANNER = "⏸ PAUSED"


def is_paused(status: Mapping[str, Any]) -> bool:
    ov = status.get("overrides") or {}
    return status.get("state") == "paused" or bool(isinstance(ov, Mapping) and ov.get("paused"))


def no_sampler(status: Mapping[str, Any]) -> bool:
    """Every sampler unavailable or stopped (or none at all) while the status lists samplers."""
    samplers = status.get("samplers")
    if not isinstance(samplers, list):
        return False
    return not any(isinstance(s, Mapping) and s.get("state") in LIVE_SAMPLER for s in samplers)


def one_tier(nodes: Sequence[NodeUse]) -> bool:
    """A topology with nodes but no slow tier (one node, or every node in the top tier)."""
    return bool(nodes) and not any(n.tier == "slow" for n in nodes)


def alerts(status: Mapping[str, Any], nodes: Sequence[NodeUse]) -> list[str]:
    out = []
    if no_sampler(status):
        out.append("no sampler running")
    if one_tier(nodes):
        out.append("one tier only")
    return out


def stale_after(refresh_s: float | None) -> float:
    return max(STALE_AFTER_S, 3 * (refresh_s or 0.0))


def fmt_age(age: float) -> str:
    if age < 10:
        return f"{age:.1f}s"
    if age < 120:
        return f"{age:.0f}s"
    return f"{age / 60:.0f}min"


def age_piece(age: float | None, refresh_s: float | None) -> tuple[Text, Text]:
    """(long, short) forms of the data's age: ``updated 0.4s ago``; warning-coloured when stale."""
    if age is None:
        return Text("no data yet", "yellow"), Text("no data", "yellow")
    stale = age > stale_after(refresh_s)
    style = WARN if stale else "dim"
    word = "STALE " if stale else ""
    return Text(f"{word}updated {fmt_age(age)} ago", style), Text(f"{word}{fmt_age(age)} ago", style)


@dataclass(frozen=True)
class Piece:
    text: Text
    rank: int  # 0: always shown; higher gives way first
    short: Text | None = None


def drop_ranks(
    items: Sequence[T], width: int, size: Callable[[T], int], rank: Callable[[T], int], sep: int
) -> list[T]:
    """``items`` in order, without the highest ranks (never rank 0) while they do not fit in ``width``
    (each ``size`` cells wide, ``sep`` cells between two)."""
    keep = list(items)
    for r in sorted({rank(i) for i in items if rank(i) > 0}, reverse=True):
        if sum(size(i) for i in keep) + sep * max(len(keep) - 1, 0) <= width:
            break
        keep = [i for i in keep if rank(i) != r]
    return keep


def assemble(pieces: Sequence[Piece], width: int, sep: str = "  ") -> Text:
    """The pieces in order, joined by ``sep``, fitted into ``width``: the highest ranks take their
    short form first, then give way, until the line fits."""
    cur = [(p.text, p) for p in pieces]

    def length(items: list[tuple[Text, Piece]]) -> int:
        return sum(t.cell_len for t, _ in items) + len(sep) * max(len(items) - 1, 0)

    ranks = sorted({p.rank for p in pieces if p.rank > 0}, reverse=True)
    for rank in ranks:  # first the short forms, least wanted first
        if length(cur) <= width:
            break
        cur = [(p.short if p.rank == rank and p.short is not None else t, p) for t, p in cur]
    # then the least wanted give way
    cur = drop_ranks(cur, width, lambda c: c[0].cell_len, lambda c: c[1].rank, len(sep))
    out = Text()
    for i, (t, _) in enumerate(cur):
        if i:
            out.append(sep)
        out.append_text(t)
    out.truncate(max(width, 1))
    return out
