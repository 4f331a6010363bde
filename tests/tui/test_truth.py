"""Issue 16, the TUI: the screen tells the truth — freshness, loud states, outcomes, pods, layouts that
use the width and hold at 80x24, the sorted column, row colours, events by kind, the quota dialog."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.command import CommandPalette
from textual.pilot import Pilot
from textual.widgets import Input, TabbedContent

from tests.tui.synthetic import SyntheticService
from tierctl.tui.app import TierctlApp
from tierctl.tui.detail import DetailScreen
from tierctl.tui.events_view import EventsView, KindScreen
from tierctl.tui.layout import plan_columns
from tierctl.tui.modals import HelpScreen, QuotaScreen
from tierctl.tui.source import GONE, NEVER, LocalSource, SocketSource
from tierctl.tui.table import CgroupTable, elide_middle

from .conftest import WALL, drive, screen_text, settle

Clock = list[float]


def app_with(
    svc: SyntheticService, size: tuple[int, int] = (80, 24)
) -> tuple[TierctlApp, LocalSource, Clock]:
    now = [100.0]
    src = LocalSource(svc, period_s=None, label="synthetic")
    return TierctlApp(src, refresh_s=None, start_source=False, clock=lambda: now[0]), src, now


async def started(app: TierctlApp, pilot: Pilot[None], src: LocalSource, cycles: int = 2) -> None:
    await drive(app, src, cycles)
    await settle(app, pilot)


def run(app: TierctlApp, body, size: tuple[int, int] = (80, 24)) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            await body(pilot)
            assert app.problems == []

    asyncio.run(main())


def top(app: TierctlApp) -> str:
    return screen_text(app).splitlines()[0]


def footer(app: TierctlApp) -> str:
    return screen_text(app).splitlines()[-1]


# ---- 1. freshness -----------------------------------------------------------------------------------


def test_the_data_age_shows_and_turns_stale() -> None:
    app, src, now = app_with(SyntheticService(4, wall=lambda: WALL))

    async def body(pilot: Pilot[None]) -> None:
        await started(app, pilot, src)
        now[0] += 0.4
        app.show_summary()
        await settle(app, pilot)
        assert "0.4s ago" in top(app) and "STALE" not in top(app)
        now[0] += 12
        app.show_summary()
        await settle(app, pilot)
        assert "STALE 12s ago" in top(app)
        await app.collect()
        await settle(app, pilot)
        assert "STALE" not in top(app) and "0.0s ago" in top(app)

    run(app, body)


def test_never_reached_is_not_gone(tmp_path: Path) -> None:
    src = SocketSource(tmp_path / "nothing.sock", timeout=0.5)
    frame = src.poll()
    assert not frame.connected and frame.message.startswith(NEVER) and GONE not in frame.message
    assert str(tmp_path / "nothing.sock") in frame.message


# ---- 2. loud states ---------------------------------------------------------------------------------


def test_no_sampler_and_one_tier_are_loud() -> None:
    app, src, _ = app_with(SyntheticService(3, wall=lambda: WALL, samplers=False, one_tier=True))

    async def body(pilot: Pilot[None]) -> None:
        await started(app, pilot, src)
        line = top(app)
        assert "no sampler running" in line and "one tier only" in line
        await pilot.press("1")
        await settle(app, pilot)
        text = screen_text(app)
        assert "no sampler running: the controller sees no accesses" in text
        summary = app.query_one("#summary")
        styles = {str(s.style) for s in summary.render().spans}  # type: ignore[union-attr]
        assert any("on ansi_red" in st for st in styles)  # coloured, not dim grey

    run(app, body)


# ---- 3. layouts ----------------------------------------------------------------------------------------


def test_columns_grow_to_their_content() -> None:
    natural = {"path": 40, "profile": 13, "pod": 0}
    wide = plan_columns(158, True, natural=natural)
    assert wide["profile"] == 13 and wide["path"] == 40  # full names; no run of blanks in the path
    narrow = plan_columns(78, False, natural=natural)
    assert narrow["path"] >= 20 and list(narrow) == [
        "path",
        "profile",
        "override",
        "fast",
        "slow",
        "hot",
        "hit",
    ]
    pods = plan_columns(158, False, natural={**natural, "pod": 16}, pods=True)
    assert pods["pod"] == 16 and list(pods)[:3] == ["path", "pod", "profile"]


def test_paths_keep_their_slice() -> None:
    p = "/system.slice/postgresql@16-main.service"
    assert elide_middle(p, 40) == p
    assert elide_middle(p, 34) == "/system/postgresql@16-main.service"
    assert elide_middle(p, 20) == "/system/…ain.service"


def test_80x24_holds_footer_rates_help_events() -> None:
    app, src, _ = app_with(SyntheticService(30, wall=lambda: WALL))

    async def body(pilot: Pilot[None]) -> None:
        await started(app, pilot, src, cycles=3)
        assert "/ filter" in footer(app) and "? help" in footer(app) and "space pause" in footer(app)
        assert "⇡" in top(app) and "ago" in top(app)
        await pilot.press("question_mark")
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, HelpScreen)
        box = screen.query_one("#help-scroll")
        await pilot.press("j", "j", "j")
        assert box.scroll_y == 3
        await pilot.press("k")
        assert box.scroll_y == 2
        await pilot.press("escape", "3")
        await settle(app, pilot)
        lines = screen_text(app).splitlines()
        body_lines = [ln for ln in lines if ln.startswith("│")]
        assert all(len(ln) <= 80 for ln in lines) and any("+" in ln for ln in body_lines)
        assert any("migrated x3" in ln for ln in body_lines)  # one line for the run, with the count

    run(app, body)


# ---- 4. sort mark, row colours, events by kind -------------------------------------------------------------


def test_sorted_column_is_marked_and_rows_coloured() -> None:
    svc = SyntheticService(6, wall=lambda: WALL, outcomes=True)
    app, src, _ = app_with(svc)

    async def body(pilot: Pilot[None]) -> None:
        await started(app, pilot, src)
        t = app.query_one(CgroupTable)
        assert t.columns[next(k for k in t.columns if k.value == "fast")].label.plain == "fast ▼"
        await pilot.press("S")
        assert t.columns[next(k for k in t.columns if k.value == "fast")].label.plain == "fast ▲"
        await pilot.press("s")
        assert t.columns[next(k for k in t.columns if k.value == "slow")].label.plain == "slow ▲"
        assert t.columns[next(k for k in t.columns if k.value == "fast")].label.plain == "fast"
        path = svc.paths[1]
        svc.pin(path, "fast")
        svc.set_outcome(path, "stuck", waiting_for="room in the fast tier")
        svc.pin(svc.paths[2], "slow")
        await drive(app, src, 1)
        await settle(app, pilot)
        assert t.get_cell(path, "override").plain == "fast!"  # an action stuck: marked
        assert str(t.get_cell(path, "path").style) == "red"
        assert str(t.get_cell(svc.paths[2], "path").style) == "cyan"  # pinned

    run(app, body)


def test_events_filter_by_kind_with_e() -> None:
    svc = SyntheticService(4, wall=lambda: WALL)
    app, src, _ = app_with(svc)

    async def body(pilot: Pilot[None]) -> None:
        await started(app, pilot, src, cycles=3)
        svc.pin(svc.paths[0], "fast")
        await drive(app, src, 2)
        await pilot.press("3")
        await settle(app, pilot)
        log = app.query_one(EventsView)
        assert [ln.split()[2] for ln in log.plain_lines()] == ["migrated", "pin", "migrated"]
        await pilot.press("e")
        await settle(app, pilot)
        assert isinstance(app.screen, KindScreen)
        await pilot.press("down", "down", "enter")  # all, migrated, pin
        await settle(app, pilot)
        assert log.kind == "pin" and [ln.split()[2] for ln in log.plain_lines()] == ["pin"]
        assert "kind pin" in str(log.border_title)
        await pilot.press("e", "home", "enter")
        await settle(app, pilot)
        assert log.kind is None and app.query_one(TabbedContent).active == "events"

    run(app, body)


# ---- 5. dialogs ------------------------------------------------------------------------------------------


def test_quota_dialog_shows_the_profile_and_typing_replaces() -> None:
    svc = SyntheticService(3, wall=lambda: WALL)
    app, src, _ = app_with(svc)
    latency = svc.paths[0]  # profile latency: 4G / 60 %

    async def body(pilot: Pilot[None]) -> None:
        await started(app, pilot, src)
        assert app.query_one(CgroupTable).select_path(latency)
        await pilot.press("f")
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, QuotaScreen)
        text = screen_text(app)
        assert "now: min 4G max 60% (from the profile)" in text
        assert screen.query_one("#fast_min", Input).placeholder == "4G (profile)"
        assert screen.query_one("#fast_max", Input).placeholder == "60% (profile)"
        await pilot.press(*"10%", "tab", *"20%", "enter")
        await settle(app, pilot)
        assert svc.quotas[latency] == {"fast_min": "10%", "fast_max": "20%"}
        await pilot.press("f")
        await settle(app, pilot)
        assert app.screen.query_one("#fast_min", Input).value == "10%"
        await pilot.press(*"20M", "enter")  # fast typing into the pre-filled field replaces it
        await settle(app, pilot)
        assert svc.quotas[latency]["fast_min"] == "20M"

    run(app, body)


def test_palette_entries_show_their_keys() -> None:
    app, src, _ = app_with(SyntheticService(3, wall=lambda: WALL))

    async def body(pilot: Pilot[None]) -> None:
        await started(app, pilot, src)
        await pilot.press("colon")
        await pilot.pause(0.3)
        assert isinstance(app.screen, CommandPalette)
        text = screen_text(app)
        assert "key p · fast, slow or auto" in text and "key space · stop / restart moving pages" in text

    run(app, body, size=(120, 40))


# ---- 6. outcomes ------------------------------------------------------------------------------------------


def test_outcomes_in_the_notification_the_detail_the_table_and_the_log() -> None:
    svc = SyntheticService(4, wall=lambda: WALL, outcomes=True)
    app, src, _ = app_with(svc)

    async def body(pilot: Pilot[None]) -> None:
        await started(app, pilot, src)
        path = app.query_one(CgroupTable).selected_path
        assert path is not None
        await pilot.press("p", "f")
        await settle(app, pilot)
        (note,) = [n for n in app._notifications if path in str(n.message)]
        assert note.title == "in progress" and note.severity == "warning"
        assert "waiting for room in the fast tier" in str(note.message) and "done" not in note.title
        assert app.query_one(CgroupTable).get_cell(path, "override").plain == "fast…"
        await pilot.press("enter")
        await settle(app, pilot)
        assert isinstance(app.screen, DetailScreen)
        words = " ".join(screen_text(app).split())  # the line wraps at 80 columns
        assert (
            "last action pin fast: in progress · waiting for room in the fast tier · 0 pages moved" in words
        )
        svc.set_outcome(path, "done", waiting_for=None, moved_pages=512)
        await drive(app, src, 1)
        await settle(app, pilot)
        assert "pin fast: done · 512 pages moved" in " ".join(screen_text(app).split())
        await pilot.press("escape", "3")
        await settle(app, pilot)
        log = app.query_one(EventsView).plain_lines()
        assert [ln for ln in log if "outcome" in ln and "state=done" in ln]
        await pilot.press("2", "p", "s")  # to slow: done at once
        await settle(app, pilot)
        assert any(n.title == "done" and "to slow" in str(n.message) for n in app._notifications)

    run(app, body)


@pytest.mark.parametrize("size", [(80, 24), (160, 45)])
def test_pods_are_named_in_the_table_and_the_detail(size: tuple[int, int]) -> None:
    svc = SyntheticService(4, wall=lambda: WALL, pods=True)
    app, src, _ = app_with(svc)

    async def body(pilot: Pilot[None]) -> None:
        await started(app, pilot, src)
        t = app.query_one(CgroupTable)
        assert "pod" in t.keys
        assert t.get_cell(svc.paths[0], "pod").plain == "shop/web-0"
        assert t.get_cell(svc.paths[2], "pod").plain == "pod:00000002"
        assert t.get_cell(svc.paths[1], "pod").plain == "-"
        await pilot.press("slash", *"web-0", "enter")
        assert t.row_count == 1
        await pilot.press("enter")
        await settle(app, pilot)
        assert "pod shop/web-0 (burstable)" in screen_text(app)

    run(app, body, size=size)
