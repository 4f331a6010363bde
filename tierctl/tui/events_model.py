"""The events log's rules (pure): one line per event, except runs of ``migrated`` events, which collapse
into one line per run (at most GROUP cycles) with their count and summed pages; a filter by kind."""

from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from rich.text import Text

from tierctl.tui.model import fmt_event, fmt_time
from tierctl.tui.rowinfo import OUTCOME_STYLE

GROUP = 50  # migrated events per summary line at most
KIND_STYLE: Mapping[str, str] = MappingProxyType(
    {"migrated": "", "pin": "cyan", "quota": "cyan", "paused": "bold yellow", "resumed": "green"}
)


@dataclass
class Entry:
    """One line of the log: an event, or a run of ``migrated`` events (``count`` > 1)."""

    first: dict[str, Any]
    last: dict[str, Any]
    count: int = 1
    promoted: int = 0
    demoted: int = 0
    cgroups: dict[str, list[int]] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return str(self.first.get("kind", "?"))


def _num(v: Any) -> int:
    return int(v) if isinstance(v, int | float) and not isinstance(v, bool) else 0


def entries(events: Iterable[Mapping[str, Any]], kind: str | None = None) -> list[Entry]:
    """The log's lines, oldest first: events of ``kind`` (None: all), consecutive migrations merged."""
    out: list[Entry] = []
    for e in events:
        k = str(e.get("kind", "?"))
        if kind is not None and k != kind:
            continue
        e = dict(e)
        if k == "migrated" and out and out[-1].kind == "migrated" and out[-1].count < GROUP:
            g = out[-1]
            g.last, g.count = e, g.count + 1
        else:
            g = Entry(e, e)
            out.append(g)
        if k == "migrated":
            if g.count == 1:
                g.promoted = g.demoted = 0
            g.promoted += _num(e.get("promoted"))
            g.demoted += _num(e.get("demoted"))
            for path, c in (e.get("cgroups") or {}).items():
                if isinstance(c, Mapping):
                    up_down = g.cgroups.setdefault(str(path), [0, 0])
                    up_down[0] += _num(c.get("promoted"))
                    up_down[1] += _num(c.get("demoted"))
    return out


def kinds(events: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """How many events of each kind, most frequent first."""
    return dict(collections.Counter(str(e.get("kind", "?")) for e in events).most_common())


def entry_text(g: Entry) -> Text:
    if g.kind == "migrated" and g.count > 1:
        head = f"{fmt_time(g.last.get('time'))} #{g.first.get('seq', '?')}-{g.last.get('seq', '?')}"
        t = Text(f"{head} ", "")
        t.append(f"migrated x{g.count}", "bold")
        t.append(
            f" cycles {g.first.get('cycle', '?')}-{g.last.get('cycle', '?')}:"
            f" +{g.promoted}/-{g.demoted} pages"
        )
        if g.cgroups:
            t.append(
                "  " + ", ".join(f"{p.rsplit('/', 1)[-1]} +{u}/-{d}" for p, (u, d) in g.cgroups.items()),
                "dim",
            )
        return t
    if g.kind == "outcome":
        state = str(g.first.get("state", ""))
        return Text(fmt_event(g.first), OUTCOME_STYLE.get(state, "magenta"))
    return Text(fmt_event(g.first), KIND_STYLE.get(g.kind, "magenta"))
