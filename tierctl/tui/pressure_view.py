"""The Pressure tab: the machine against its target and the system PSI, the ladder's actions, the
cgroups by pressure (the detail's panel: tierctl.tui.pressure_panel).

Bars and sparklines are drawn at the width the box gets (``Fit``); the rules are in pressure_model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from tierctl.tui.model import FrameContext, fmt_bytes, fmt_time
from tierctl.tui.pressure_model import active, dict_of, fmt_pct, num, psi_full, psi_some, whole, working_set
from tierctl.tui.pressure_pieces import (
    LABEL,
    RUNGS,
    STATE_STYLE,
    Fit,
    action_line,
    actions_for,
    label,
    ladder_text,
    psi_lines,
    target_bar,
)


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
        self.show(ctx.frame.pressure)

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
