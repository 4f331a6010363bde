"""Every key of the TUI in one table: the App's bindings and the help screen are built from it."""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding

from tierctl.tui.tabs import TABS


@dataclass(frozen=True)
class Key:
    keys: str  # Textual key names, comma separated
    action: str
    label: str  # short, for the footer
    help: str  # for the help screen
    footer: bool = True
    shown: str = ""  # how the help screen and the footer write the keys (default: keys)
    rank: int = 5  # the footer drops the highest ranks first when the width is short


APP_KEYS: tuple[Key, ...] = (
    Key("question_mark", "help", "help", "this help: every key (j / k scroll it)", shown="?", rank=0),
    Key("q", "quit", "quit", "quit (the daemon keeps running)", rank=1),
    *(Key(t.key, f"tab('{t.id}')", t.id, t.help, footer=False) for t in TABS),
    Key("p", "pin", "pin", "pin the selected cgroup to fast / slow / auto (asks first)", rank=4),
    Key("f", "quota", "quota", "set the selected cgroup's fast-tier quota (min / max; asks first)", rank=6),
    Key(
        "m",
        "migrate",
        "migrate",
        "migrate now: the selected cgroup, or all from the overview (asks first)",
        rank=7,
    ),
    # one key, two actions: the footer offers the one that applies (TierctlApp.check_action)
    Key("space", "pause", "pause", "pause the controller (asks first)", rank=3),
    Key("space", "resume", "resume", "resume the paused controller (asks first)", rank=3),
    Key("r", "reload", "reload", "reload the profiles (asks first)", footer=False),
    Key("colon,ctrl+p", "command_palette", "commands", "command palette", shown=":", rank=9),
)

TABLE_KEYS: tuple[Key, ...] = (
    Key("j,down", "cursor_down", "down", "next cgroup", footer=False, shown="j ↓"),
    Key("k,up", "cursor_up", "up", "previous cgroup", footer=False, shown="k ↑"),
    Key("g,home", "scroll_top", "top", "first cgroup", footer=False, shown="g home"),
    Key("G,end", "scroll_bottom", "bottom", "last cgroup (pgup/pgdn: a page)", footer=False, shown="G end"),
    Key("enter", "select_cursor", "detail", "open the cgroup's detail (or click a row twice)", shown="⏎"),
    Key("s", "next_sort", "sort", "sort by the next column (or click a column header)", rank=8),
    Key("S", "reverse_sort", "reverse", "reverse the sort order", footer=False),
    Key("slash", "filter", "filter", "filter cgroups by path / profile / pin / pod", shown="/", rank=2),
    Key("escape", "clear_filter", "clear", "clear the filter", footer=False, shown="esc"),
)

DETAIL_KEYS: tuple[Key, ...] = (
    Key("escape", "back", "back", "back to the previous view", shown="esc", rank=0),
)

EVENT_KEYS: tuple[Key, ...] = (
    Key("e", "filter_kind", "kind", "events: show one kind only (a dialog; / filters cgroups)", rank=2),
)

MODAL_KEYS: tuple[tuple[str, str], ...] = (
    ("y / enter", "confirm (dialogs)"),
    ("n / esc", "cancel (dialogs)"),
    ("f s a", "fast / slow / auto in the pin dialog"),
    ("tab", "next field or button; the mouse works everywhere"),
)


def bindings(keys: tuple[Key, ...]) -> list[Binding]:
    return [Binding(k.keys, k.action, k.label, show=k.footer) for k in keys]


def help_rows() -> list[tuple[str, str, str]]:
    """(where, keys, what) for the help screen."""
    rows = [("global", k.shown or k.keys, k.help) for k in APP_KEYS]
    rows += [("cgroups", k.shown or k.keys, k.help) for k in TABLE_KEYS]
    rows += [("detail", k.shown or k.keys, k.help) for k in DETAIL_KEYS]
    rows += [("events", k.shown or k.keys, k.help) for k in EVENT_KEYS]
    rows += [("dialogs", keys, what) for keys, what in MODAL_KEYS]
    return rows


def shown_keys(action: str) -> str:
    """How the help writes the keys of ``action`` (the palette shows them), "" if it has none."""
    for k in (*APP_KEYS, *TABLE_KEYS, *DETAIL_KEYS, *EVENT_KEYS):
        if k.action == action:
            return k.shown or k.keys
    return ""


def footer_rank(action: str) -> int:
    for k in (*APP_KEYS, *TABLE_KEYS, *DETAIL_KEYS, *EVENT_KEYS):
        if k.action == action:
            return k.rank
    return 5
