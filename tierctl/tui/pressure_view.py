"""The pressure views: the Pressure tab (the machine against its target, system PSI, the ladder, the
cgroups by pressure) and the cgroup detail's pressure panel (memory by kind and node, PSI, working
set, memory.events, the ladder's state and last actions for the cgroup).

Bars and sparklines are drawn at the width the box gets (``Fit``); the rules are in pressure_model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

from rich.console import Console, ConsoleOptions, RenderResult
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from tierctl.tui.model import FrameContext, fmt_bytes, fmt_time
from tierctl.tui.pressure_model import (
    EVENTS,
    FILE_PARTS,
    active,
    cgroup_pressure,
    dict_of,
    fmt_pct,
    history,
    kind_sizes,
    ladder_line,
    num,
    psi_full,
    psi_some,
    scale,
    spark,
    split_cells,
    whole,
    working_set,
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


# ---- pieces --------------------------------------------------------------------------------------


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


# ---- the cgroup detail's panel --------------------------------------------------------------------


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


def cgroup_text(pressure: Mapping[str, Any] | None, path: str, width: int) -> Text:
    """Everything the ladder reports about one cgroup, at ``width`` columns."""
    if not active(pressure):
        return ladder_text(pressure)
    assert pressure is not None
    cg = cgroup_pressure(pressure, path)
    if cg is None:
        t = ladder_text(pressure).append("\n")
        t.append("no [pressure] report for this cgroup (no profile's [pressure] table matches it)", "dim")
        ws = working_set(pressure, path)
        if ws is not None:
            t.append("\n").append_text(label("wset")).append(fmt_bytes(ws))
        return t
    state = str(cg.get("state") or "?")
    t = Text("state ", "bold").append(state, STATE_STYLE.get(state, "bold"))
    t.append(f"  priority {cg.get('priority', '-')}  protect {fmt_bytes(whole(cg.get('protect')) or 0)}")
    killable = cg.get("killable")
    t.append("  killable ").append("yes" if killable else "no", "bold red" if killable else "")
    if pressure.get("mode") == "dry-run":
        t.append("  dry-run", "bold magenta")
    current = whole(cg.get("current"))
    ws = working_set(pressure, path)
    t.append("\n").append_text(label("wset"))
    if ws is None:
        t.append("no estimate yet", "dim")
    else:
        t.append(fmt_bytes(ws), "bold")
        if current:
            t.append(f" = {100 * ws / current:.0f}% of the charge")
    t.append(f"  charge {fmt_bytes(current)}")
    if current is not None:
        t.append("\n" + " " * LABEL).append_text(
            wset_bar(current, ws, whole(cg.get("protect")) or 0, width - LABEL)
        )
        t.append("\n" + " " * LABEL).append("█ working set ▒ charged above it ┃ protect", "dim")
    kinds = dict_of(cg.get("kinds"))
    t.append("\n").append_text(label("kinds"))
    if kind_sizes(kinds):
        t.append_text(kind_bar(kinds, width - LABEL))
        t.append("\n" + " " * LABEL).append_text(kind_legend(kinds, width))
    else:
        t.append("n/a: memory.stat not read", "dim")
    nodes = dict_of(cg.get("nodes"))
    t.append("\n").append_text(label("nodes"))
    items = [
        Text(f"node {n} ").append(fmt_bytes(nodes[n]), "bold")
        for n in sorted(nodes, key=lambda n: (len(str(n)), str(n)))
    ]
    t.append_text(flow(items, width) if items else Text("n/a", "dim"))
    t.append("\n").append_text(psi_lines(cg, width, "this cgroup"))
    ev = dict_of(cg.get("events"))
    items = []
    for k in EVENTS:
        v = whole(ev.get(k))
        if v is not None:  # high: throttled at memory.high; max, oom, oom_kill: at the limit
            bad = "yellow" if k == "high" else "bold red" if k in ("max", "oom", "oom_kill") else ""
            items.append(Text(f"{k} ").append(str(v), bad if v else ""))
    if whole(cg.get("refaults")) is not None:
        items.append(Text(f"refaults {whole(cg.get('refaults'))}"))
    t.append("\n").append_text(label("events")).append_text(
        flow(items, width) if items else Text("n/a", "dim")
    )
    n = dict_of(dict_of(pressure.get("notified")).get(path))
    if n:
        t.append("\n").append_text(label("asked")).append(
            f"shed {fmt_bytes(n.get('bytes'))} by {fmt_time(n.get('deadline'))}", "bold magenta"
        )
    acts = actions_for(pressure, path)
    t.append("\n").append_text(label("last"))
    if not acts:
        t.append("no action of the ladder's last cycle", "dim")
    for i, a in enumerate(acts[-4:]):
        if i:
            t.append("\n" + " " * LABEL)
        t.append_text(action_line(a, with_path=False))
    return t


class PressurePanel(Static):
    """The cgroup detail's pressure box (one plain line while the ladder does not run)."""

    def show(self, pressure: Mapping[str, Any] | None, path: str) -> None:
        self.set_class(not active(pressure), "inactive")
        self.update(Fit(lambda w: cgroup_text(pressure, path, w)))


# ---- the Pressure tab ------------------------------------------------------------------------------


def machine_text(pressure: Mapping[str, Any] | None, width: int) -> Text:
    """The ladder's mode, the machine's memory against the target, the system PSI."""
    t = ladder_text(pressure)
    if not active(pressure):
        return t
    assert pressure is not None
    since = num(pressure.get("above_since"))
    status = (
        Text(f"ABOVE the target since {fmt_time(since)}", "bold red")
        if since
        else Text("under the target", "green")
    )
    m = dict_of(pressure.get("machine"))
    target = num(pressure.get("target_ratio")) or 0.0
    used, total = whole(m.get("used")), whole(m.get("total"))
    t.append("\n").append_text(label("memory"))
    if used is None or not total:
        t.append("not read yet  ", "dim").append_text(status)
    else:
        t.append(f"{fmt_bytes(used)} of {fmt_bytes(total)} used ")
        t.append(f"({100 * used / total:.1f}%)", "bold")
        t.append(f"  target {100 * target:.0f}% ({fmt_bytes(int(target * total))})")
        t.append("\n" + " " * LABEL).append_text(target_bar(used, total, target, width - LABEL))
        t.append("\n" + " " * LABEL).append("█ used ┃ target · available  ", "dim").append_text(status)
    return t.append("\n").append_text(psi_lines(m, width, "the machine"))


def ladder_actions_text(pressure: Mapping[str, Any]) -> Text:
    counts = dict_of(pressure.get("actions"))
    t = Text("actions ", "bold")
    rungs = sorted(counts, key=lambda k: (RUNGS.index(k) if k in RUNGS else len(RUNGS), k))
    t.append("  ".join(f"{k} {counts[k]}" for k in rungs) or "none yet", "" if counts else "dim")
    t.append(f"  · kernel OOM kills {pressure.get('oom_kills', '-')}")
    for path, n in sorted(dict_of(pressure.get("notified")).items()):
        n = dict_of(n)
        t.append("\nasked   ", "bold").append(f"{path} to shed {fmt_bytes(n.get('bytes'))} by ")
        t.append(fmt_time(n.get("deadline")), "bold magenta")
    acts = actions_for(pressure, None)
    t.append("\nlast cycle", "bold")
    if not acts:
        t.append(": no action", "dim")
    for a in acts:
        t.append("\n  ").append_text(action_line(a, with_path=True))
    return t


def cgroups_text(pressure: Mapping[str, Any], width: int) -> Text:
    """The cgroups the ladder reports, highest PSI some first (like below's pressure view)."""
    cgs = {p: dict_of(v) for p, v in dict_of(pressure.get("cgroups")).items()}
    if not cgs:
        return Text("the ladder reports no cgroup (none has a [pressure] policy, or an older daemon)", "dim")
    cols = f"{'state':<9} {'some':>5} {'full':>5} {'charge':>7} {'wset':>7} {'prio':>4}"
    pw = max(12, width - len(cols) - 1)
    t = Text(f"{'cgroup':<{pw}} {cols}", "bold")
    order = sorted(cgs, key=lambda p: (-(psi_some(cgs[p]) or -1.0), p))
    for p in order:
        c = cgs[p]
        state = str(c.get("state") or "-")
        shown = p if len(p) <= pw else "…" + p[len(p) - pw + 1 :]
        t.append(f"\n{shown:<{pw}} ").append(f"{state:<9}", STATE_STYLE.get(state, ""))
        t.append(f" {fmt_pct(psi_some(c)):>5} {fmt_pct(psi_full(c)):>5}")
        t.append(f" {fmt_bytes(c.get('current')):>7} {fmt_bytes(working_set(pressure, p)):>7}")
        t.append(f" {c.get('priority', '-')!s:>4}")
    return t


class PressureView(VerticalScroll):
    """The Pressure tab: the machine, the ladder and the cgroups by pressure."""

    def compose(self) -> ComposeResult:
        yield Static(id="pressure-machine", classes="box")
        yield Static(id="pressure-ladder", classes="box")
        yield Static(id="pressure-cgroups", classes="box")

    def on_mount(self) -> None:
        self.query_one("#pressure-machine", Static).border_title = "machine"
        self.query_one("#pressure-ladder", Static).border_title = "ladder"
        self.query_one("#pressure-cgroups", Static).border_title = "cgroups by pressure (PSI some avg10 %)"
        self.show(None)

    def show_frame(self, ctx: FrameContext) -> None:
        self.show(getattr(ctx.frame, "pressure", None))

    def show(self, pressure: Mapping[str, Any] | None) -> None:
        self.query_one("#pressure-machine", Static).update(Fit(lambda w: machine_text(pressure, w)))
        on = active(pressure)
        ladder = self.query_one("#pressure-ladder", Static)
        cgroups = self.query_one("#pressure-cgroups", Static)
        ladder.display = cgroups.display = on
        if on:
            assert pressure is not None
            ladder.update(ladder_actions_text(pressure))
            cgroups.update(Fit(lambda w: cgroups_text(pressure, w)))
