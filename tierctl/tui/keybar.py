"""The footer: the keys that apply where the focus is, fitted to the width — when it is short the
least wanted keys give way first (``keys.Key.rank``: help, quit, ``/`` filter and pause stay at 80
columns). A click on a key runs it."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import events
from textual.dom import DOMNode
from textual.screen import Screen
from textual.widgets import Static

from tierctl.tui.freshness import drop_ranks
from tierctl.tui.keys import footer_rank, shown_keys

SEP = 2


@dataclass(frozen=True)
class Shown:
    key: str
    label: str
    action: str
    node: DOMNode
    rank: int
    enabled: bool = True

    @property
    def width(self) -> int:
        return Text(f"{self.key} {self.label}").cell_len


def fit(items: list[Shown], width: int) -> list[Shown]:
    """The items in order, without the highest ranks while they do not fit in ``width``."""
    return drop_ranks(items, width, lambda i: i.width, lambda i: i.rank, SEP)


class KeyBar(Static):
    """The keys of the screen it is on (its active bindings that are shown)."""

    def __init__(self, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self._spans: list[tuple[int, int, Shown]] = []

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)

    def _bindings_changed(self, _screen: Screen[object]) -> None:
        self.refresh()

    def items(self) -> list[Shown]:
        seen: set[str] = set()
        out = []
        for ab in self.screen.active_bindings.values():
            b = ab.binding
            if not b.show or b.action in seen:
                continue
            seen.add(b.action)
            shown = shown_keys(b.action) or self.app.get_key_display(b)
            out.append(
                Shown(shown.split()[0], b.description, b.action, ab.node, footer_rank(b.action), ab.enabled)
            )
        return out

    def render(self) -> Text:
        items = fit(self.items(), max(self.size.width - 2, 10))
        t = Text(" ")
        self._spans = []
        for i, item in enumerate(items):
            if i:
                t.append(" " * SEP)
            start = t.cell_len
            style = "bold" if item.enabled else "dim"
            t.append(item.key, f"{style} cyan").append(f" {item.label}")
            self._spans.append((start, t.cell_len, item))
        return t

    async def on_click(self, event: events.Click) -> None:
        for start, end, item in self._spans:
            if start <= event.x < end:
                event.stop()
                await self.app.run_action(item.action, item.node)
                return
