"""The cgroup detail's pressure panel: memory by kind and node, PSI, working set, memory.events, the
ladder's state and last actions for the cgroup; one plain line while the ladder does not run."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.text import Text
from textual.widgets import Static

from tierctl.tui.model import fmt_bytes, fmt_time
from tierctl.tui.pressure_model import (
    EVENTS,
    active,
    cgroup_pressure,
    dict_of,
    kind_sizes,
    whole,
    working_set,
)
from tierctl.tui.pressure_pieces import (
    LABEL,
    STATE_STYLE,
    Fit,
    action_line,
    actions_for,
    flow,
    kind_bar,
    kind_legend,
    label,
    ladder_text,
    psi_lines,
    wset_bar,
)


def cgroup_text(pressure: Mapping[str, Any] | None, path: str, width: int) -> Text:
    """Everything the ladder reports about one cgroup, at ``width`` columns."""
    if not active(pressure):
        return ladder_text(pressure)
    assert pressure is not None
    cg = cgroup_pressure(pressure, path)
    if cg is None:
        return _unreported(pressure, path)
    t = _state_line(cg, pressure.get("mode") == "dry-run")
    for part in (
        _wset_lines(cg, working_set(pressure, path), width),
        _kinds_lines(dict_of(cg.get("kinds")), width),
        _nodes_line(dict_of(cg.get("nodes")), width),
        psi_lines(cg, width, "this cgroup"),
        _events_line(cg, width),
        *_asked(dict_of(dict_of(pressure.get("notified")).get(path))),
        _last_lines(actions_for(pressure, path)),
    ):
        t.append("\n").append_text(part)
    return t


def _unreported(pressure: Mapping[str, Any], path: str) -> Text:
    t = ladder_text(pressure).append("\n")
    t.append("no [pressure] report for this cgroup (no profile's [pressure] table matches it)", "dim")
    ws = working_set(pressure, path)
    if ws is not None:
        t.append("\n").append_text(label("wset")).append(fmt_bytes(ws))
    return t


def _state_line(cg: Mapping[str, Any], dry_run: bool) -> Text:
    state = str(cg.get("state") or "?")
    t = Text("state ", "bold").append(state, STATE_STYLE.get(state, "bold"))
    t.append(f"  priority {cg.get('priority', '-')}  protect {fmt_bytes(whole(cg.get('protect')) or 0)}")
    killable = cg.get("killable")
    t.append("  killable ").append("yes" if killable else "no", "bold red" if killable else "")
    if dry_run:
        t.append("  dry-run", "bold magenta")
    return t


def _wset_lines(cg: Mapping[str, Any], ws: int | None, width: int) -> Text:
    """The working set against the charge, and the bar of both with the protected bytes."""
    current = whole(cg.get("current"))
    t = Text().append_text(label("wset"))
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
    return t


def _kinds_lines(kinds: Mapping[str, Any], width: int) -> Text:
    t = Text().append_text(label("kinds"))
    if kind_sizes(kinds):
        t.append_text(kind_bar(kinds, width - LABEL))
        t.append("\n" + " " * LABEL).append_text(kind_legend(kinds, width))
    else:
        t.append("n/a: memory.stat not read", "dim")
    return t


def _nodes_line(nodes: Mapping[Any, Any], width: int) -> Text:
    items = [
        Text(f"node {n} ").append(fmt_bytes(nodes[n]), "bold")
        for n in sorted(nodes, key=lambda n: (len(str(n)), str(n)))
    ]
    shown = flow(items, width) if items else Text("n/a", "dim")
    return Text().append_text(label("nodes")).append_text(shown)


def _events_line(cg: Mapping[str, Any], width: int) -> Text:
    """memory.events (high: throttled at memory.high; max, oom, oom_kill: at the limit), refaults."""
    ev = dict_of(cg.get("events"))
    items = []
    for k in EVENTS:
        v = whole(ev.get(k))
        if v is not None:
            bad = "yellow" if k == "high" else "bold red" if k in ("max", "oom", "oom_kill") else ""
            items.append(Text(f"{k} ").append(str(v), bad if v else ""))
    if whole(cg.get("refaults")) is not None:
        items.append(Text(f"refaults {whole(cg.get('refaults'))}"))
    shown = flow(items, width) if items else Text("n/a", "dim")
    return Text().append_text(label("events")).append_text(shown)


def _asked(notified: Mapping[str, Any]) -> list[Text]:
    """The ladder's request to shed memory, when it asked this cgroup."""
    if not notified:
        return []
    asked = f"shed {fmt_bytes(notified.get('bytes'))} by {fmt_time(notified.get('deadline'))}"
    return [Text().append_text(label("asked")).append(asked, "bold magenta")]


def _last_lines(acts: list[dict[str, Any]]) -> Text:
    t = Text().append_text(label("last"))
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
