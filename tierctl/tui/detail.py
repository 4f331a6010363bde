"""The cgroup detail screen (Enter on a row): memory pressure, heat by tier, address-space strip,
processes, migrations."""

from __future__ import annotations

import math
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Static

from tierctl import fmt
from tierctl.tui.keybar import KeyBar
from tierctl.tui.keys import DETAIL_KEYS, bindings
from tierctl.tui.model import blocks, edge_label, fmt_bytes, fmt_ratio, fmt_time
from tierctl.tui.pressure_panel import PressurePanel
from tierctl.tui.pressure_pieces import Fit
from tierctl.tui.rowinfo import outcome_of, outcome_text, pod_label, quota_bound
from tierctl.tui.views import Summary

LABEL = 5  # "fast ", "heat ": the label before a histogram row or the strip
# the heat strip's palette, cold to hot: a colour and a glyph each (readable without colour)
HEAT = (
    ("grey35", "·"),
    ("blue", "░"),
    ("cyan", "▒"),
    ("green", "▓"),
    ("yellow", "▓"),
    ("dark_orange", "█"),
    ("red", "█"),
)


class DetailScreen(Screen[None]):
    BINDINGS = bindings(DETAIL_KEYS)

    class Composed(Message):
        """The screen's widgets exist: the app may show its summary line in it."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self.detail: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        yield Summary(id="summary")
        with VerticalScroll(id="detail"):
            yield Static(Text(f"{self.path}  (loading…)", "bold"), id="head")
            yield PressurePanel(id="pressure", classes="box")
            yield Static(id="histogram", classes="box")
            yield Static(id="strip", classes="box")
            yield DataTable(id="procs", cursor_type="row", zebra_stripes=True)
            yield Static(id="migrations", classes="box")
        yield KeyBar(id="keybar")

    def retarget(self, path: str) -> None:
        """Show another cgroup (the screen is made once and reused: opening it stays cheap)."""
        self.path = path
        self.detail = None
        if not self.is_mounted:
            return
        self.query_one("#head", Static).update(Text(f"{path}  (loading…)", "bold"))
        for box in ("#pressure", "#histogram", "#strip", "#migrations"):
            self.query_one(box, Static).update("")
        self.query_one("#procs", DataTable).clear()
        self.query_one("#detail", VerticalScroll).scroll_home(animate=False)

    def on_mount(self) -> None:
        self.query_one("#pressure", Static).border_title = "memory pressure"
        self.query_one("#histogram", Static).border_title = "heat histogram by tier (pages)"
        self.query_one("#strip", Static).border_title = "address-space heat"
        procs = self.query_one("#procs", DataTable)
        procs.border_title = "processes: pages per node"
        # the Service's migration events count pages for the whole machine, not per cgroup (yet)
        self.query_one("#migrations", Static).border_title = "recent migrations of this cgroup"
        self.post_message(self.Composed())  # the app fills the summary line it could not before

    def show(
        self,
        detail: dict[str, Any] | None,
        error: str,
        overrides: dict[str, Any],
        pressure: dict[str, Any] | None = None,
    ) -> None:
        """``pressure``: the Service's pressure_status() of the same frame (docs/pressure.md)."""
        head = self.query_one("#head", Static)
        if detail is None:
            head.update(Text(f"{self.path}: {error or 'no data'}", "bold red"))
            return
        self.detail = detail
        head.update(head_text(detail, overrides))
        self.query_one("#pressure", PressurePanel).show(pressure, self.path)
        self.query_one("#histogram", Static).update(Fit(lambda w: histogram_text(detail, w)))
        self.query_one("#strip", Static).update(Fit(lambda w: strip_text(detail.get("heat_strip"), w)))
        self._procs(detail.get("processes") or [])
        self.query_one("#migrations", Static).update(migrations_text(detail.get("recent_migrations") or []))

    def _procs(self, procs: list[dict[str, Any]]) -> None:
        table = self.query_one("#procs", DataTable)
        nodes = sorted({int(n) for p in procs for n in (p.get("pages_per_node") or {})}) or [0, 1]
        want = ["pid", "comm", *(f"node {n}" for n in nodes)]
        if [str(c.label) for c in table.columns.values()] != want:
            table.clear(columns=True)
            table.add_columns(*want)
        row = table.cursor_row
        table.clear()
        for p in procs:
            per = p.get("pages_per_node") or {}
            table.add_row(
                Text(str(p.get("pid", "?")), justify="right"),
                str(p.get("comm", "?")),
                *(Text(str(per.get(str(n), 0)), justify="right") for n in nodes),
            )
        if procs:
            table.move_cursor(row=min(row, len(procs) - 1), scroll=False)

    def action_back(self) -> None:
        self.dismiss(None)


def head_text(d: dict[str, Any], overrides: dict[str, Any]) -> Text:
    """The path, its pod, profile, pin and the quota in force (the detail's ``quota`` when the service
    reports it — the profile's or the override's, and whether it is in force — else the override)."""
    path = str(d.get("path", "?"))
    t = Text(path, "bold")
    pod = pod_label(d)
    if pod:
        t.append("  pod ", "dim").append(pod, "bold magenta")
        qos = (d.get("pod") or {}).get("qos")
        if qos:
            t.append(f" ({qos})", "dim")
    t.append(f"\nprofile {d.get('profile') or '-'}  pin {d.get('override') or 'auto'}")
    t.append_text(quota_text(d.get("quota"), (overrides.get("quotas") or {}).get(path)))
    t.append(
        f"\nfast {fmt_bytes(d.get('fast_bytes'))}  slow {fmt_bytes(d.get('slow_bytes'))}  "
        f"hot {fmt_bytes(d.get('hot_bytes'))}  est. fast hit {fmt_ratio(d.get('est_fast_hit_ratio'))}"
    )
    t.append("\nlast action ", "bold").append_text(outcome_text(outcome_of(d)))
    return t


def quota_text(info: Any, override: Any) -> Text:
    t = Text()
    q = info if isinstance(info, dict) else override if isinstance(override, dict) else None
    if not q or (q.get("fast_min") is None and q.get("fast_max") is None):
        return t.append("  quota none")
    t.append(f"  quota min {quota_bound(q, 'fast_min')} max {quota_bound(q, 'fast_max')}")
    source = q.get("source") if isinstance(info, dict) else "override"
    if source:
        t.append(f" ({source})", "dim")
    if isinstance(info, dict) and any(info.get(f"{k}_amount") is not None for k in ("fast_min", "fast_max")):
        t.append(f" = {fmt.fmt_amount(info.get('fast_min'))}..{fmt.fmt_amount(info.get('fast_max'))}", "dim")
    if isinstance(info, dict) and info.get("active") is False:
        t.append(f"  not in force: {info.get('why_inactive') or 'inactive'}", "bold yellow")
    return t


def histogram_text(d: dict[str, Any], width: int = 66) -> Text:
    """One row per tier, each bucket as wide as the line allows (``width``: the box's inside)."""
    h = d.get("heat_histogram") or {}
    fast = [float(x) for x in h.get("fast") or []]
    slow = [float(x) for x in h.get("slow") or []]
    n = max(len(fast), len(slow))
    if n == 0:
        return Text("n/a", "dim")
    totals = [f" {int(sum(v))}" for v in (fast, slow)]
    cell = max(1, (width - LABEL - max(len(x) for x in totals)) // n)
    top = max([*fast, *slow, 1.0])
    t = Text()
    for (name, vals, style), total in zip(
        (("fast", fast, "cyan"), ("slow", slow, "blue")), totals, strict=True
    ):
        t.append(f"{name} ", "bold").append(
            "".join(c * cell for c in blocks(vals, top)).ljust(n * cell), style
        )
        t.append(f"{total}\n")
    edges = d.get("heat_edges") or []
    if len(edges) == n + 1:
        t.append("heat " + axis([float(e) for e in edges[:-1]], cell), "dim")
    t.rstrip()
    return t


def axis(lows: list[float], cell: int) -> str:
    """Labels under the buckets whose lower edge is 0 or a power of ten, where they fit."""
    line = [" "] * (len(lows) * cell + 4)
    free_from = 0
    for i, v in enumerate(lows):
        pos = i * cell
        if pos < free_from or not (v <= 0 or abs(math.log10(v) - round(math.log10(v))) < 1e-6):
            continue
        label = edge_label(v)
        line[pos : pos + len(label)] = label
        free_from = pos + len(label) + 1
    return "".join(line).rstrip()


def heat_cell(v: float, top: float) -> tuple[str, str]:
    """(colour, glyph) of a heat ``v`` on the HEAT palette, 0..top cold to hot."""
    return HEAT[min(len(HEAT) - 1, int(len(HEAT) * v / top))] if top > 0 else HEAT[0]


def strip_text(strip: Any, width: int = 70) -> Text:
    """``heat_strip`` = {"heat": [per address bucket], "fast_fraction": [0..1 per bucket]}: the top row is
    the heat (colour and glyph, cold · ░ ▒ ▓ █ hot), the bottom row where the bucket lives (█ fast,
    ▄ mixed, ▁ slow); each bucket as wide as the line allows; a legend of the palette below."""
    if not isinstance(strip, dict) or not strip.get("heat"):
        return Text("n/a: the service does not report per-address heat yet", "dim")
    heat = [float(x) for x in strip["heat"]]
    frac = [float(x) for x in strip.get("fast_fraction") or [0.0] * len(heat)]
    cell = max(1, (width - LABEL) // len(heat))
    top = max([*heat, 1e-9])
    t = Text("heat ", "bold")
    for v in heat:
        style, glyph = heat_cell(v, top)
        t.append(glyph * cell, style)
    t.append("\ntier ", "bold")
    for f in frac:
        t.append(("█" if f >= 0.75 else "▄" if f >= 0.25 else "▁") * cell, "cyan" if f >= 0.5 else "blue")
    t.append("\n     heat: cold ", "dim")
    for style, glyph in HEAT:
        t.append(glyph, style)
    t.append(" hot", "dim").append("  tier: █ fast ▄ mixed ▁ slow  low → high address", "dim")
    return t


def migrations_text(events: list[dict[str, Any]], last: int = 4) -> Text:
    """The newest ``last`` migrations of the cgroup (the box fits at 80x24 under its neighbours)."""
    if not events:
        return Text("none yet", "dim")
    t = Text()
    for e in events[-last:]:
        t.append(
            f"{fmt_time(e.get('time'))} cycle {e.get('cycle', '?')}: "
            f"+{e.get('promoted', 0)} promoted  -{e.get('demoted', 0)} demoted\n"
        )
    t.rstrip()
    return t
