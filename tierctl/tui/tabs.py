"""The main screen's tabs, declared once: the app composes them, ``keys`` binds their number keys
and the help screen lists them, and every frame reaches the views in them that show frames.

A new view over data the frame already carries is a widget with ``show_frame(ctx)`` (its own
module) and one ``Tab`` here (plus its style in tierctl.tcss, if it needs one).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from textual.widget import Widget

from tierctl.tui.model import FrameContext


@runtime_checkable
class ShowsFrames(Protocol):
    def show_frame(self, ctx: FrameContext) -> None: ...


@dataclass(frozen=True)
class Tab:
    id: str
    title: str
    key: str  # its number key
    help: str  # for the help screen
    widgets: Callable[[], Iterable[Widget]]  # the tab's content, made when the app composes
    focus: str | None = None  # selector of the widget that takes the focus when the tab is shown


# the tabs' widgets are imported when the app composes: tierctl.tui.keys builds the number keys from
# this table, and the widgets' modules import their own keys from there


def _overview() -> Iterable[Widget]:
    from tierctl.tui.views import Overview

    yield Overview(id="overview-view")


def _cgroups() -> Iterable[Widget]:
    from textual.widgets import Input

    from tierctl.tui.table import CgroupTable

    yield CgroupTable(id="table")
    yield Input(placeholder="filter: path, profile or pin (enter keeps, esc clears)", id="filter")


def _events() -> Iterable[Widget]:
    from tierctl.tui.events_view import EventsView

    yield EventsView(id="events-view")


def _pressure() -> Iterable[Widget]:
    from tierctl.tui.pressure_view import PressureView

    yield PressureView(id="pressure-view")


TABS: tuple[Tab, ...] = (
    Tab("overview", "Overview", "1", "overview: tiers, rates, controller, samplers", _overview),
    Tab("cgroups", "Cgroups", "2", "cgroups table", _cgroups, focus="#table"),
    Tab("events", "Events", "3", "events log (e: one kind only)", _events, focus="#events-view"),
    Tab("pressure", "Pressure", "4", "memory pressure: machine, ladder, cgroups by PSI", _pressure),
)
DEFAULT_TAB = "cgroups"


def tab(tab_id: str) -> Tab | None:
    return next((t for t in TABS if t.id == tab_id), None)
