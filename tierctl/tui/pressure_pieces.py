"""The pieces of the pressure views (tierctl.tui.pressure_view, tierctl.tui.pressure_panel): their
styles, the renderable drawn at the width it gets (``Fit``), bars, the PSI lines and the ladder's
actions; the rules are in pressure_model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

from rich.console import Console, ConsoleOptions, RenderResult
from rich.text import Text

from tierctl.tui.model import fmt_bytes
from tierctl.tui.pressure_model import (
    FILE_PARTS,
    dict_of,
    fmt_pct,
    history,
    kind_sizes,
    ladder_line,
    psi_full,
    psi_some,
    scale,
    spark,
    split_cells,
    whole,
)

LABEL = 7  # "kinds  ", "PSI    ": the panel's label column
LEVEL_STYLE: Mapping[str, str] = MappingProxyType(
    {"ok": "bold green", "dry": "bold magenta", "off": "bold yellow", "missing": "bold yellow"}
)
KIND_STYLE: Mapping[str, tuple[str, str]] = MappingProxyType(
    {  # glyph and colour of each kind in the bar and its legend (a glyph each: readable without colour)
        "anon": ("█", "green"),
        "file": ("▓", "blue"),
        "shmem": ("▒", "cyan"),
        "kernel": ("░", "magenta"),
        "sock": ("▞", "yellow"),
        "swap": ("▚", "red"),
        "zswap": ("▖", "dark_orange"),
    }
)
STATE_STYLE: Mapping[str, str] = MappingProxyType(
    {
        "ok": "green",
        "trimming": "yellow",
        "notified": "bold magenta",
        "killed": "bold red",
        "protected": "cyan",
    }
)
RUNGS = ("trim", "notify", "kill")  # the ladder's order
ACTION_STYLE: Mapping[str, str] = MappingProxyType(
    {"trim": "yellow", "notify": "magenta", "kill": "bold red"}
)


class Fit:
    """A renderable drawn at the width it is given (bars and sparklines fill the line)."""

    def __init__(self, draw: Callable[[int], Text]) -> None:
        self.draw = draw

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.draw(max(options.max_width, 20))


def ladder_text(pressure: Mapping[str, Any] | None) -> Text:
    line, level = ladder_line(pressure)
    return Text(line, LEVEL_STYLE[level])


def label(name: str) -> Text:
    return Text(f"{name:<{LABEL}}", "bold")


def target_bar(used: int, total: int, target: float, width: int) -> Text:
    """``[████████┃···]``: used memory (red above the target), ┃ the target, · free."""
    inner = max(width - 2, 1)
    u = scale(used, total, inner)
    mark = min(scale(target * total, total, inner), inner - 1)
    above = total > 0 and used > target * total
    t = Text("[")
    for i in range(inner):
        if i == mark:
            t.append("┃", "bold yellow")
        elif i < u:
            t.append("█", "bold red" if above else "green")
        else:
            t.append("·", "dim")
    return t.append("]")


def kind_bar(kinds: Mapping[str, Any], width: int) -> Text:
    """One line stacking the kinds in proportion to their bytes (kind_sizes), each its glyph and colour."""
    parts = kind_sizes(kinds)
    inner = max(width - 2, 1)
    cells = split_cells([b for _, b in parts], inner)
    t = Text("[")
    for (k, _), n in zip(parts, cells, strict=True):
        glyph, style = KIND_STYLE[k]
        t.append(glyph * n, style)
    rest = inner - sum(cells)
    return t.append("·" * rest, "dim").append("]")


def flow(items: Iterable[Text], width: int, indent: int = LABEL, sep: str = "  ") -> Text:
    """Items on lines of ``width``, continuation lines indented."""
    t, col = Text(), indent
    for item in items:
        if col > indent and col + len(sep) + len(item) > width:
            t.append("\n" + " " * indent)
            col = indent
        elif col > indent:
            t.append(sep)
            col += len(sep)
        t.append_text(item)
        col += len(item)
    return t


def kind_legend(kinds: Mapping[str, Any], width: int) -> Text:
    items = []
    for k, b in kind_sizes(kinds):
        glyph, style = KIND_STYLE[k]
        items.append(Text(glyph, style).append(f" {k} {fmt_bytes(b)}"))
    for k in FILE_PARTS:
        v = whole(kinds.get(k))
        if v is not None:
            items.append(Text(f"{k} {fmt_bytes(v)}", "dim"))
    return flow(items, width)


def psi_lines(entry: Mapping[str, Any] | None, width: int, what: str) -> Text:
    """``PSI    some 1.2%  full 0.0%  avg10`` and below it the sparkline of ``psi_history``."""
    t = label("PSI")
    if not isinstance(dict_of(entry).get("psi"), dict):
        return t.append(f"n/a: no memory pressure reading for {what}", "dim")
    some, full = psi_some(entry), psi_full(entry)
    t.append("some ").append(f"{fmt_pct(some)}%", "bold").append("  full ").append(
        f"{fmt_pct(full)}%", "bold"
    )
    t.append("  avg10", "dim")
    values = history(entry)
    if not values:
        return t.append("\n" + " " * LABEL).append("no history yet", "dim")
    line, _ = spark(values, width - LABEL)
    t.append(f" · last {len(line)} cycles, max {fmt_pct(max(values[-len(line) :]))}%", "dim")
    return t.append("\n" + " " * LABEL).append(line, "bold red" if (some or 0) >= 10 else "cyan")


def actions_for(pressure: Mapping[str, Any], path: str | None) -> list[dict[str, Any]]:
    acts = [a for a in pressure.get("last_actions") or [] if isinstance(a, dict)]
    return acts if path is None else [a for a in acts if a.get("cgroup") == path]


def action_line(a: Mapping[str, Any], with_path: bool) -> Text:
    kind = str(a.get("kind", "?"))
    t = Text(f"{kind:<6}", ACTION_STYLE.get(kind, ""))
    if with_path:
        t.append(f" {a.get('cgroup', '?')}")
    return t.append(f" {fmt_bytes(a.get('bytes'))}").append(f"  {a.get('reason', '')}".rstrip(), "dim")


def wset_bar(current: int, wset: int | None, protect: int, width: int) -> Text:
    """``[█████▒▒▒┃▒▒···]``: █ the working set, ▒ the charge above it, ┃ protected bytes."""
    inner = max(width - 2, 1)
    top = max(current, wset or 0, protect, 1)
    w = scale(wset or 0, top, inner)
    c = scale(current, top, inner)
    mark = min(scale(protect, top, inner), inner - 1) if protect > 0 else -1
    t = Text("[")
    for i in range(inner):
        if i == mark:
            t.append("┃", "bold cyan")
        elif i < min(w, c):
            t.append("█", "green")
        elif i < c:
            t.append("▒", "yellow")
        else:
            t.append("·", "dim")
    return t.append("]")
