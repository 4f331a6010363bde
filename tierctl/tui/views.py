"""The main screen's views. Each gets its data from the App (``show(...)``) and never asks for it."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import RichLog, Sparkline, Static

from tierctl.tui.model import FrameContext, NodeUse, Rates, fmt_bytes, fmt_event, tier_totals
from tierctl.tui.source import Frame

BAR = 24


def bar(used: int, managed: int, capacity: int, width: int = BAR) -> Text:
    """``[███▒▒▒····]``: █ managed cgroups, ▒ other used memory, · free."""
    t = Text("[")
    if capacity <= 0:
        return t.append("·" * width, "dim").append("]")
    m = round(width * min(managed, used) / capacity)
    u = max(round(width * used / capacity), m)
    u = min(u, width)
    t.append("█" * m, "bold green")
    t.append("▒" * (u - m), "yellow")
    t.append("·" * (width - u), "dim")
    return t.append("]")


class Summary(Static):
    """One line above everything: source, connection, controller state, cycle, tier use, rates."""

    def show(self, label: str, frame: Frame | None, nodes: list[NodeUse], rates: Rates) -> None:
        t = Text(label, "bold cyan")
        if frame is None:
            self.update(t.append("  connecting…", "yellow"))
            return
        if not frame.connected:
            self.update(t.append(f"  {frame.message}", "bold red"))
            return
        st = frame.status
        state = str(st.get("state", "?"))
        style = {"running": "bold green", "paused": "bold yellow"}.get(state, "bold magenta")
        t.append("  ").append(state, style).append(f"  cycle {st.get('cycle', '?')}")
        for tier, (u, c) in sorted(tier_totals(nodes).items()):
            t.append(f"  {tier} {100 * u / c if c else 0:.0f}% of {fmt_bytes(c)}")
        t.append(f"  ⇡{rates.promoted[-1]:.0f} ⇣{rates.demoted[-1]:.0f} pg{rates.unit}")
        if frame.message:
            t.append(f"  {frame.message}", "red")
        self.update(t)


class Overview(VerticalScroll):
    """Nodes and tiers (capacity, used, free), promotion/demotion sparklines, controller, samplers."""

    def compose(self) -> ComposeResult:
        yield Static(id="nodes")
        with Horizontal(classes="spark-row"):
            yield Static("promoted", classes="spark-label", id="promoted-label")
            yield Sparkline([0.0], id="promoted", classes="spark")
        with Horizontal(classes="spark-row"):
            yield Static("demoted", classes="spark-label", id="demoted-label")
            yield Sparkline([0.0], id="demoted", classes="spark")
        with Vertical(id="controller-box"):
            yield Static(id="controller")
            yield Static(id="samplers")

    def show_frame(self, ctx: FrameContext) -> None:
        self.show(ctx.frame, ctx.nodes, ctx.rates)

    def show(self, frame: Frame, nodes: list[NodeUse], rates: Rates) -> None:
        t = Text()
        if not nodes:
            t.append("no topology", "dim")
        for n in nodes:
            t.append(f"node {n.node} ", "bold").append(
                f"{n.tier:<4} ", "cyan" if n.tier == "fast" else "blue"
            )
            t.append_text(bar(n.used, n.managed, n.capacity))
            t.append(f" {fmt_bytes(n.used):>7} used {fmt_bytes(n.free):>7} free / {fmt_bytes(n.capacity)}\n")
        for tier, (u, c) in sorted(tier_totals(nodes).items()):
            pct = f"{100 * u / c:.0f}%" if c else "-"
            t.append(f"{tier} tier: {fmt_bytes(u)} of {fmt_bytes(c)} used ({pct})  ")
        t.append("\n█ managed cgroups  ▒ other  · free", "dim")
        self.query_one("#nodes", Static).update(t)
        for name, series in (("promoted", rates.promoted), ("demoted", rates.demoted)):
            self.query_one(f"#{name}", Sparkline).data = list(series)
            self.query_one(f"#{name}-label", Static).update(f"{name:<8} {series[-1]:>8.0f} pg{rates.unit}")
        self.query_one("#controller", Static).update(controller_text(frame.status))
        self.query_one("#samplers", Static).update(samplers_text(frame.status))


def controller_text(st: dict[str, Any]) -> Text:
    state = str(st.get("state", "?"))
    style = {"running": "bold green", "paused": "bold yellow"}.get(state, "bold magenta")
    t = Text("controller ", "bold").append(state, style)
    last = st.get("last_cycle_s")
    t.append(f"  cycle {st.get('cycle', '?')}")
    if isinstance(last, int | float):
        t.append(f" ({1000 * last:.1f} ms)")
    t.append(f"  tracked {st.get('tracked_pages', '?')} pages")
    moved = st.get("moved") or {}
    t.append(f"\nmoved: {moved.get('promoted', 0)} promoted, {moved.get('demoted', 0)} demoted")
    ov = st.get("overrides") or {}
    pins = ov.get("pins") or {}
    t.append(f"  pins {len(pins)}  quotas {len(ov.get('quotas') or {})}")
    profiles = st.get("profiles") or []
    t.append(f"\nprofiles: {', '.join(map(str, profiles)) or '-'}")
    return t


def samplers_text(st: dict[str, Any]) -> Text:
    t = Text("samplers", "bold")
    for s in st.get("samplers") or []:
        state = str(s.get("state", "?"))
        ok = state in ("running", "active")
        h = s.get("health") or {}
        t.append(f"\n  {s.get('name', '?'):<10} ").append(f"{state:<12}", "green" if ok else "dim")
        if ok:
            t.append(f"samples {h.get('samples', 0)}  dropped {h.get('dropped', 0)}")
        if s.get("reason"):
            t.append(f"  {s['reason']}", "dim")
    return t


class EventsView(RichLog):
    """The daemon's events, newest last (kept: the last 1000)."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(max_lines=1000, wrap=False, markup=False, highlight=False, **kw)

    def show_frame(self, ctx: FrameContext) -> None:
        """Only the events new since the last frame are added."""
        self.add(ctx.frame.events)

    def add(self, events: list[dict[str, Any]]) -> None:
        for e in events:
            kind = str(e.get("kind", ""))
            style = {"migrated": "", "pin": "cyan", "quota": "cyan", "paused": "yellow"}.get(kind, "magenta")
            self.write(Text(fmt_event(e), style))
