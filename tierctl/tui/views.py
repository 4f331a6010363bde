"""The main screen's views. Each gets its data from the App (``show(...)``) and never asks for it."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Sparkline, Static

from tierctl.tui.freshness import LOUD, PAUSED_BANNER, WARN, Piece, age_piece, alerts, assemble, is_paused
from tierctl.tui.freshness import no_sampler as no_sampler_running
from tierctl.tui.model import FrameContext, NodeUse, Rates, fmt_bytes, tier_totals
from tierctl.tui.pressure_pieces import Fit
from tierctl.tui.source import Frame

BAR = 24  # the least width of a node's bar; it grows with the width
NODE_FIXED = 50  # the rest of a node's line: "node 0 fast [" … "] 63.7M used  324.0K free / 64.0M"


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
    """One line above everything: source, connection, controller state (a banner while paused), loud
    states, rates (shown as paused while paused), the data's age, cycle and tier use; fitted to the
    width (tierctl.tui.freshness.assemble)."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self._args: tuple[Any, ...] | None = None

    def show(
        self,
        label: str,
        frame: Frame | None,
        nodes: list[NodeUse],
        rates: Rates,
        age: float | None = None,
        refresh_s: float | None = None,
    ) -> None:
        self._args = (label, frame, nodes, rates, age, refresh_s)
        self._draw()

    def on_resize(self) -> None:
        self._draw()

    def _draw(self) -> None:
        if self._args is None:
            return
        width = (self.content_size.width or 78) if self.is_mounted else 78
        self.update(assemble(summary_pieces(*self._args), width))


def summary_pieces(
    label: str,
    frame: Frame | None,
    nodes: list[NodeUse],
    rates: Rates,
    age: float | None,
    refresh_s: float | None,
) -> list[Piece]:
    out = [Piece(Text(label, "bold cyan"), 0)]
    if frame is None:
        return [*out, Piece(Text("connecting…", "yellow"), 0)]
    long_age, short_age = age_piece(age, refresh_s)
    if not frame.connected:
        out.append(Piece(Text(frame.message, "bold red"), 0))
        if age is not None:
            out.append(Piece(Text("last data ").append_text(short_age), 2, short_age))
        return out
    st = frame.status
    paused = is_paused(st)
    state = str(st.get("state", "?"))
    if paused:
        out.append(Piece(Text(f" {PAUSED_BANNER} ", WARN), 0))
    else:
        out.append(Piece(Text(state, {"running": "bold green"}.get(state, "bold magenta")), 0))
    out += [Piece(Text(f" {a} ", LOUD), 0) for a in alerts(st, nodes)]
    cycle = st.get("cycle", "?")
    out.append(Piece(Text(f"cycle {cycle}"), 4, Text(f"c{cycle}")))
    for tier, (u, c) in sorted(tier_totals(nodes).items()):
        pct = f"{tier} {100 * u / c if c else 0:.0f}%"
        out.append(Piece(Text(f"{pct} of {fmt_bytes(c)}"), 3, Text(pct)))
    if paused:
        out.append(Piece(Text("⇡- ⇣- paused", "yellow"), 1))
    else:
        p, d = rates.promoted[-1], rates.demoted[-1]
        out.append(Piece(Text(f"⇡{p:.0f} ⇣{d:.0f} pg{rates.unit}"), 1, Text(f"⇡{p:.0f} ⇣{d:.0f}")))
    out.append(Piece(long_age, 2, short_age))
    if frame.message:
        out.append(Piece(Text(frame.message, "red"), 0))
    return out


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
        self.query_one("#nodes", Static).update(Fit(lambda w: nodes_text(frame.status, nodes, w)))
        paused = is_paused(frame.status)
        for name, series in (("promoted", rates.promoted), ("demoted", rates.demoted)):
            self.query_one(f"#{name}", Sparkline).data = list(series)
            figure = (
                Text(f"{'paused':>8}", "yellow") if paused else Text(f"{series[-1]:>8.0f} pg{rates.unit}")
            )
            self.query_one(f"#{name}-label", Static).update(Text(f"{name:<8} ").append_text(figure))
        self.query_one("#controller", Static).update(controller_text(frame.status))
        self.query_one("#samplers", Static).update(samplers_text(frame.status))


def nodes_text(status: dict[str, Any], nodes: list[NodeUse], width: int) -> Text:
    """The loud states, then each node with a bar as wide as the line allows, then the tiers."""
    t = Text()
    for a in alerts(status, nodes):
        t.append(f" {a} ", LOUD).append("  ")
    if t:
        t.rstrip()
        t.append("\n")
    if not nodes:
        t.append("no topology", "bold yellow")
    bar_width = max(BAR, width - NODE_FIXED)
    for n in nodes:
        t.append(f"node {n.node} ", "bold").append(f"{n.tier:<4} ", "cyan" if n.tier == "fast" else "blue")
        t.append_text(bar(n.used, n.managed, n.capacity, bar_width))
        t.append(f" {fmt_bytes(n.used):>7} used {fmt_bytes(n.free):>7} free / {fmt_bytes(n.capacity)}\n")
    for tier, (u, c) in sorted(tier_totals(nodes).items()):
        pct = f"{100 * u / c:.0f}%" if c else "-"
        t.append(f"{tier} tier: {fmt_bytes(u)} of {fmt_bytes(c)} used ({pct})  ")
    t.append("\n█ managed cgroups  ▒ other  · free", "dim")
    return t


def controller_text(st: dict[str, Any]) -> Text:
    state = str(st.get("state", "?"))
    t = Text("controller ", "bold")
    if is_paused(st):
        t.append(f" {PAUSED_BANNER} ", WARN).append(
            " paused: no pages move; sampling continues (space resumes)"
        )
    else:
        t.append(state, {"running": "bold green"}.get(state, "bold magenta"))
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
    """Every sampler; not one running is a loud state, a single one unavailable a warning."""
    none = no_sampler_running(st)
    t = Text("samplers", "bold")
    if none:
        t.append("  ").append(" no sampler running: the controller sees no accesses ", LOUD)
    for s in st.get("samplers") or []:
        state = str(s.get("state", "?"))
        ok = state in ("running", "active")
        h = s.get("health") or {}
        style = "green" if ok else "bold red" if none else "yellow"
        t.append(f"\n  {s.get('name', '?'):<10} ").append(f"{state:<12}", style)
        if ok:
            t.append(f"samples {h.get('samples', 0)}  dropped {h.get('dropped', 0)}")
        if s.get("reason"):
            t.append(f"  {s['reason']}", "bold red" if none else "")
    return t
