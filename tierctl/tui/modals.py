"""Dialogs: every override is confirmed here before it reaches the service; the help screen."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from tierctl import fmt
from tierctl.errors import TierctlError
from tierctl.tui.keys import help_rows
from tierctl.tui.rowinfo import quota_bound


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


def check_amount(text: str, where: str) -> str:
    """ "" when ``text`` is empty or an amount the service takes (bytes, ``512M``, ``4G``, ``25%``),
    else the reason it is not."""
    t = text.strip()
    if not t or t.isdigit():
        return ""
    try:
        fmt.parse_amount(t, where)
    except TierctlError as e:
        return str(e)
    return ""


def quota_now(info: Mapping[str, Any] | None, override: Mapping[str, Any] | None) -> Text:
    """What is in force: the detail's ``quota`` ({"fast_min", "fast_max", "source", "active",
    "why_inactive"}) when the service reports it, else the override (an older service)."""
    q = info if isinstance(info, Mapping) else override
    if not q or (q.get("fast_min") is None and q.get("fast_max") is None):
        return Text("now: no quota")
    t = Text(f"now: min {quota_bound(q, 'fast_min')} max {quota_bound(q, 'fast_max')}")
    source = q.get("source") if isinstance(info, Mapping) else "override"
    if source:
        t.append(f" (from the {source})", "dim")
    if isinstance(info, Mapping) and info.get("active") is False:
        t.append(f"\nnot in force: {info.get('why_inactive') or 'inactive'}", "bold yellow")
    return t


class QuotaScreen(ModalScreen[Quota | None]):
    """Fast-tier min / max of a named cgroup; Enter applies, Esc cancels, both empty removes the override.

    The fields hold the override when one is set (selected: typing replaces it); without one they are
    empty and show what is in force (the profile's values) greyed. A value the service would not take
    keeps the dialog open with the reason under its field."""

    BINDINGS: ClassVar = [Binding("escape", "cancel", "cancel", show=False)]

    def __init__(
        self,
        path: str,
        current: Mapping[str, Any] | None,
        info: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.path = path
        self.current = current or {}  # the override, if any
        self.info = info  # the cgroup detail's "quota", if the service reports it

    def _placeholder(self, key: str) -> str:
        info = self.info if isinstance(self.info, Mapping) else {}
        if info.get(f"{key}_amount", info.get(key)) is not None and info.get("source") not in (
            None,
            "override",
        ):
            return f"{quota_bound(info, key)} ({info.get('source')})"
        return "none"

    def compose(self) -> ComposeResult:
        cur = self.current
        with Vertical(classes="dialog"):
            yield Label(Text.assemble("Fast-tier quota of ", (self.path, "bold")), classes="question")
            yield Label(quota_now(self.info, cur or None), classes="hint", id="quota-now")
            yield Label("bytes, 512M, 4G or 25% of the fast tier; empty = none", classes="hint")
            for key, name in (("fast_min", "min"), ("fast_max", "max")):
                with Horizontal(classes="field"):
                    yield Label(name, classes="field-label")
                    yield Input(_s(cur.get(key)), placeholder=self._placeholder(key), id=key)
                yield Label("", classes="field-error", id=f"{key}-error")
            with Horizontal(classes="buttons"):
                yield Button("Apply (enter)", id="apply", variant="primary")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        first = self.query_one("#fast_min", Input)
        first.focus()
        first.select_all()  # typing replaces what is there

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id:
            self.query_one(f"#{event.input.id}-error", Label).update("")

    def _result(self) -> Quota | None:
        """The values, or None (and the reasons shown under the fields) when one is not an amount."""
        bad = False
        for key in ("fast_min", "fast_max"):
            why = check_amount(self.query_one(f"#{key}", Input).value, key)
            self.query_one(f"#{key}-error", Label).update(Text(why, "bold red"))
            bad = bad or bool(why)
        if bad:
            return None
        return (
            parse_amount(self.query_one("#fast_min", Input).value),
            parse_amount(self.query_one("#fast_max", Input).value),
        )

    def _apply(self) -> None:
        result = self._result()
        if result is not None:
            self.dismiss(result)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._apply()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "apply":
            self._apply()
        else:
            self.dismiss(None)

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

    BINDINGS: ClassVar = [
        Binding("escape,q,question_mark", "close", "close", show=False),
        Binding("j,down", "scroll(1)", "down", show=False),
        Binding("k,up", "scroll(-1)", "up", show=False),
        Binding("pagedown,space", "scroll(10)", "page down", show=False),
        Binding("pageup", "scroll(-10)", "page up", show=False),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog help"):
            yield Static("tierctl tui — keys (j / k scroll, esc closes)", classes="question")
            with VerticalScroll(id="help-scroll"):
                yield Static(help_table(), id="help-table")

    def action_close(self) -> None:
        self.dismiss(None)

    def action_scroll(self, lines: int) -> None:
        box = self.query_one("#help-scroll", VerticalScroll)
        box.scroll_to(y=box.scroll_y + lines, animate=False)
