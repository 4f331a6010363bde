"""Pure helpers of the TUI: number formatting, rate history, the cgroup table's rows, sort and filter.

No Textual here, so every rule (what a column shows, how rows sort, what a filter keeps) is testable
without a terminal.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from tierctl.fmt import fmt_bytes as fmt_bytes  # re-exported: the views format bytes from here
from tierctl.tui.layout import TEXT_SORTS  # the table's columns and layout: tierctl.tui.layout
from tierctl.tui.source import Frame

SPARK_POINTS = 60


def fmt_ratio(r: Any) -> str:
    return f"{100 * r:.1f}%" if isinstance(r, int | float) and not isinstance(r, bool) else "-"


def fmt_time(t: Any) -> str:
    if not isinstance(t, int | float):
        return "--:--:--"
    return time.strftime("%H:%M:%S", time.localtime(t))


def _fmt_value(k: str, v: Any) -> str:
    if k == "cgroups" and isinstance(v, dict):  # a migration's share per cgroup: "name +up/-down"
        return ", ".join(
            f"{str(path).rsplit('/', 1)[-1]} +{c.get('promoted', 0)}/-{c.get('demoted', 0)}"
            for path, c in v.items()
            if isinstance(c, dict)
        )
    return str(v)


def fmt_event(e: dict[str, Any]) -> str:
    rest = " ".join(f"{k}={_fmt_value(k, v)}" for k, v in e.items() if k not in ("seq", "time", "kind"))
    return f"{fmt_time(e.get('time'))} #{e.get('seq', '?'):<5} {e.get('kind', '?'):<10} {rest}".rstrip()


# ---- nodes and tiers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeUse:
    node: int
    tier: str  # "fast" | "slow"
    capacity: int  # bytes
    free: int
    managed: int  # bytes of managed cgroups on this node

    @property
    def used(self) -> int:
        return max(self.capacity - self.free, 0)


def node_use(topology: dict[str, Any], cgroups: list[dict[str, Any]]) -> list[NodeUse]:
    """Per node: capacity, free and the managed cgroups' bytes; tier rank 0 is the fast tier."""
    page = int(topology.get("page_size") or 4096)
    nodes = [n for n in topology.get("nodes", []) if isinstance(n, dict)]
    if not nodes:
        return []
    top = min(int(n.get("tier", 0)) for n in nodes)
    managed: dict[str, int] = collections.Counter()
    for c in cgroups:
        for node, b in (c.get("bytes_per_node") or {}).items():
            managed[str(node)] += int(b)
    return [
        NodeUse(
            node=int(n["id"]),
            tier="fast" if int(n.get("tier", 0)) == top else "slow",
            capacity=int(n.get("capacity_pages") or 0) * page,
            free=int(n.get("free_pages") or 0) * page,
            managed=managed.get(str(n["id"]), 0),
        )
        for n in nodes
    ]


def tier_totals(nodes: list[NodeUse]) -> dict[str, tuple[int, int]]:
    """tier -> (used bytes, capacity bytes)."""
    out: dict[str, tuple[int, int]] = {}
    for n in nodes:
        u, c = out.get(n.tier, (0, 0))
        out[n.tier] = (u + n.used, c + n.capacity)
    return out


# ---- promotion / demotion rates ------------------------------------------------------------------


class Rates:
    """Pages promoted and demoted between consecutive frames, per second of daemon uptime when it
    advanced, else per cycle; a counter going backwards (a restarted daemon) starts afresh."""

    def __init__(self, points: int = SPARK_POINTS) -> None:
        self.promoted: collections.deque[float] = collections.deque([0.0] * points, maxlen=points)
        self.demoted: collections.deque[float] = collections.deque([0.0] * points, maxlen=points)
        self.unit = "/cycle"
        self._last: tuple[int, int, float, int] | None = None

    def push(self, status: dict[str, Any]) -> None:
        moved = status.get("moved") or {}
        try:
            now = (
                int(moved.get("promoted", 0)),
                int(moved.get("demoted", 0)),
                float(status.get("uptime_s") or 0.0),
                int(status.get("cycle") or 0),
            )
        except (TypeError, ValueError):
            return
        last, self._last = self._last, now
        if last is None or now[0] < last[0] or now[1] < last[1] or now[3] < last[3]:
            return
        dt, dc = now[2] - last[2], now[3] - last[3]
        if dc == 0 and now[:2] == last[:2]:
            return  # nothing new since the previous frame
        div, self.unit = (dt, "/s") if dt > 0 else (max(dc, 1), "/cycle")
        self.promoted.append((now[0] - last[0]) / div)
        self.demoted.append((now[1] - last[1]) / div)


# ---- the cgroup table ----------------------------------------------------------------------------


def _num(v: Any) -> float:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else -1.0


SORT_KEYS: Mapping[str, Callable[[dict[str, Any]], Any]] = MappingProxyType(
    {
        "fast": lambda c: _num(c.get("fast_bytes")),
        "slow": lambda c: _num(c.get("slow_bytes")),
        "hot": lambda c: _num(c.get("hot_bytes")),
        "hit": lambda c: _num(c.get("est_fast_hit_ratio")),
        "psi": lambda c: _num(c.get("psi_some")),  # the pressure keys: pressure_model.merge
        "wset": lambda c: _num(c.get("working_set")),
        "state": lambda c: str(c.get("ladder_state") or ""),
        "path": lambda c: str(c.get("path", "")),
        "pod": lambda c: _pod(c),
        "profile": lambda c: str(c.get("profile") or ""),
    }
)


def _pod(c: dict[str, Any]) -> str:
    from tierctl.tui.rowinfo import pod_label

    return pod_label(c)


def row_cells(c: dict[str, Any]) -> tuple[str, ...]:
    """The cells of COLUMNS (tierctl.tui.layout) for one cgroup row."""
    return (
        str(c.get("path", "?")),
        _pod(c) or "-",
        str(c.get("profile") or "-"),
        str(c.get("override") or "auto"),
        fmt_bytes(c.get("fast_bytes")),
        fmt_bytes(c.get("slow_bytes")),
        fmt_bytes(c.get("hot_bytes")),
        fmt_ratio(c.get("est_fast_hit_ratio")),
    )


def visible_rows(
    cgroups: list[dict[str, Any]], *, sort: str, reverse: bool, needle: str
) -> list[dict[str, Any]]:
    """The rows the table shows: filtered by ``needle`` (substring of path, pod, profile or pin, any case)
    and sorted by ``sort`` — numbers largest first, text A to Z, unless ``reverse``; ties by path."""
    n = needle.lower()
    rows = [
        c
        for c in cgroups
        if not n
        or any(n in str(c.get(k) or "").lower() for k in ("path", "profile", "override"))
        or n in _pod(c).lower()
    ]
    rows.sort(key=lambda c: str(c.get("path", "")))
    numeric = sort not in TEXT_SORTS
    rows.sort(key=SORT_KEYS[sort], reverse=numeric != reverse)
    return rows


# ---- detail ----------------------------------------------------------------------------------------

BLOCKS = " ▁▂▃▄▅▆▇█"


def blocks(values: list[float], top: float) -> str:
    """One block character per value, scaled to ``top``; a non-zero value never renders empty."""
    out = []
    for v in values:
        if v <= 0 or top <= 0:
            out.append(BLOCKS[0])
        else:
            out.append(BLOCKS[max(1, min(8, round(8 * v / top)))])
    return "".join(out)


def edge_label(x: float) -> str:
    if x >= 1e6:
        return f"{x / 1e6:g}M"
    if x >= 1e3:
        return f"{x / 1e3:g}k"
    return f"{x:g}"


@dataclass(frozen=True)
class FrameContext:
    """What a view may show: the latest frame and what the app derived from it."""

    frame: Frame
    nodes: list[NodeUse]
    rates: Rates
