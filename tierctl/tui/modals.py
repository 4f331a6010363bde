"""Dialogs: every override is confirmed here before it reaches the service; the help screen."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from tierctl.tui.keys import help_rows


class ConfirmScreen(ModalScreen[bool]):
    """Yes / no for one named action (``y``/Enter yes, ``n``/Esc no)."""

    BINDINGS: ClassVar = [
        Binding("y,enter", "answer(True)", "yes", show=False),
        Binding("n,escape", "answer(False)", "no", show=False),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question, classes="question")
            with Horizontal(classes="buttons"):
                yield Button("Yes (y)", id="yes", variant="primary")
                yield Button("No (n)", id="no")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class PinScreen(ModalScreen[str | None]):
    """Pin a named cgroup: ``f`` fast, ``s`` slow, ``a`` auto, Esc cancels. The choice is the consent."""

    BINDINGS: ClassVar = [
        Binding("f", "choose('fast')", "fast", show=False),
        Binding("s", "choose('slow')", "slow", show=False),
        Binding("a", "choose('auto')", "auto", show=False),
        Binding("n,escape", "choose(None)", "cancel", show=False),
    ]

    def __init__(self, path: str, current: str) -> None:
        super().__init__()
        self.path = path
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(Text.assemble("Pin ", (self.path, "bold"), " to which tier?"), classes="question")
            yield Label(f"now: {self.current}", classes="hint")
            with Horizontal(classes="buttons"):
                yield Button("fast (f)", id="fast", variant="primary")
                yield Button("slow (s)", id="slow", variant="primary")
                yield Button("auto (a)", id="auto")
                yield Button("cancel", id="cancel")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None if event.button.id == "cancel" else event.button.id)

    def action_choose(self, tier: str | None) -> None:
        self.dismiss(tier)


Quota = tuple[str | int | None, str | int | None]


def parse_amount(text: str) -> str | int | None:
    """Empty = no limit; digits = bytes; anything else (``4G``, ``25%``) goes to the service to judge."""
    t = text.strip()
    if not t:
        return None
    return int(t) if t.isdigit() else t


class QuotaScreen(ModalScreen[Quota | None]):
    """Fast-tier min / max of a named cgroup; Enter applies, Esc cancels, both empty removes the quota."""

    BINDINGS: ClassVar = [Binding("escape", "cancel", "cancel", show=False)]

    def __init__(self, path: str, current: dict[str, object] | None) -> None:
        super().__init__()
        self.path = path
        self.current = current or {}

    def compose(self) -> ComposeResult:
        cur = self.current
        with Vertical(classes="dialog"):
            yield Label(Text.assemble("Fast-tier quota of ", (self.path, "bold")), classes="question")
            yield Label("bytes, 512M, 4G or 25% of the fast tier; empty = none", classes="hint")
            with Horizontal(classes="field"):
                yield Label("min", classes="field-label")
                yield Input(_s(cur.get("fast_min")), placeholder="none", id="fast_min")
            with Horizontal(classes="field"):
                yield Label("max", classes="field-label")
                yield Input(_s(cur.get("fast_max")), placeholder="none", id="fast_max")
            with Horizontal(classes="buttons"):
                yield Button("Apply (enter)", id="apply", variant="primary")
                yield Button("Cancel (esc)", id="cancel")

    def _result(self) -> Quota:
        return (
            parse_amount(self.query_one("#fast_min", Input).value),
            parse_amount(self.query_one("#fast_max", Input).value),
        )

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(self._result())

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(self._result() if event.button.id == "apply" else None)

    def action_cancel(self) -> None:
        self.dismiss(None)


def help_table() -> Table:
    t = Table(box=None, expand=True, show_edge=False, pad_edge=False)
    t.add_column("where", style="dim", no_wrap=True)
    t.add_column("key", style="bold cyan", no_wrap=True)
    t.add_column("what", ratio=1)
    for row in help_rows():
        t.add_row(*row)
    return t


def _s(v: object) -> str:
    return "" if v is None else str(v)


class HelpScreen(ModalScreen[None]):
    """Every key, from the same table the bindings are made of."""

    BINDINGS: ClassVar = [Binding("escape,q,question_mark", "close", "close", show=False)]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog help"):
            yield Static("tierctl tui — keys (esc closes)", classes="question")
            with VerticalScroll(id="help-scroll"):
                yield Static(help_table(), id="help-table")

    def action_close(self) -> None:
        self.dismiss(None)
