"""The events log (tab 3): newest last, wrapped to the width, runs of migrations summarised, filtered
by kind with ``e`` (a dialog listing the kinds seen; ``/`` filters the cgroups table, not this)."""

from __future__ import annotations

import collections
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList, Static
from textual.widgets.option_list import Option

from tierctl.tui.events_model import entries, entry_text, kinds
from tierctl.tui.keys import EVENT_KEYS, bindings
from tierctl.tui.model import FrameContext

KEEP = 1000  # events kept


class EventsView(VerticalScroll):
    """The daemon's events (the last KEEP); follows the newest while scrolled to the end."""

    BINDINGS: ClassVar = bindings(EVENT_KEYS)

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.events: collections.deque[dict[str, Any]] = collections.deque(maxlen=KEEP)
        self.kind: str | None = None
        self.text = Text()

    def compose(self) -> ComposeResult:
        yield Static(id="events-text")

    def on_mount(self) -> None:
        self._title()

    def show_frame(self, ctx: FrameContext) -> None:
        """Only the events new since the last frame are added."""
        self.add(ctx.frame.events)

    def add(self, events: list[dict[str, Any]]) -> None:
        if not events:
            return
        self.events.extend(events)
        self._draw()

    def set_kind(self, kind: str | None) -> None:
        self.kind = kind
        self._draw()

    def plain_lines(self) -> list[str]:
        """The log as text, one entry a line (tests)."""
        return self.text.plain.splitlines()

    def _draw(self) -> None:
        follow = self.scroll_y >= self.max_scroll_y - 1
        lines = [entry_text(g) for g in entries(self.events, self.kind)]
        self.text = Text("\n").join(lines) if lines else Text("no events yet", "dim")
        self.query_one("#events-text", Static).update(self.text)
        self._title()
        if follow:
            self.call_after_refresh(self.scroll_end, animate=False)

    def _title(self) -> None:
        what = f"kind {self.kind}" if self.kind else "all kinds"
        self.border_title = f"events · {what} (e: by kind)"

    def action_filter_kind(self) -> None:
        def chosen(kind: str | bool | None) -> None:
            if kind is not False:
                self.set_kind(kind if isinstance(kind, str) else None)

        self.app.push_screen(KindScreen(kinds(self.events), self.kind), chosen)


ALL = "\x00all"


class KindScreen(ModalScreen[str | None | bool]):
    """Pick the kind of events to show (or all); Esc keeps the current one (answers False)."""

    BINDINGS: ClassVar = [Binding("escape", "cancel", "cancel", show=False)]

    def __init__(self, counts: dict[str, int], current: str | None) -> None:
        super().__init__()
        self.counts = counts
        self.current = current

    def compose(self) -> ComposeResult:
        total = sum(self.counts.values())
        options = [Option(f"all kinds ({total})", id=ALL)]
        options += [Option(f"{k} ({n})", id=k) for k, n in self.counts.items()]
        with Vertical(classes="dialog"):
            yield Label("Show events of which kind? (enter picks, esc keeps)", classes="question")
            yield OptionList(*options, id="kinds")

    def on_mount(self) -> None:
        ol = self.query_one(OptionList)
        ids = [ALL, *self.counts]
        ol.highlighted = ids.index(self.current) if self.current in ids else 0
        ol.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        oid = event.option.id
        self.dismiss(None if oid == ALL else oid)

    def action_cancel(self) -> None:
        self.dismiss(False)
