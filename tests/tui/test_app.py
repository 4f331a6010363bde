"""Pilot tests: every key and action of the TUI on a synthetic service (and one on the simulator)."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from textual.command import CommandPalette
from textual.pilot import Pilot
from textual.widgets import Input, TabbedContent

from tests.tui.synthetic import SyntheticService
from tierctl.api.server import ApiServer, Limits
from tierctl.tui.app import TierctlApp
from tierctl.tui.detail import DetailScreen
from tierctl.tui.events_view import EventsView
from tierctl.tui.keys import APP_KEYS, DETAIL_KEYS, TABLE_KEYS
from tierctl.tui.modals import ConfirmScreen, HelpScreen, PinScreen, QuotaScreen
from tierctl.tui.source import LocalSource, SocketSource
from tierctl.tui.table import CgroupTable

from .conftest import WALL, drive, run_app, screen_text, settle

Synth = tuple[SyntheticService, LocalSource]


def table(app: TierctlApp) -> CgroupTable:
    return app.query_one(CgroupTable)


def notes(app: TierctlApp) -> list[str]:
    return [str(n.message) for n in app._notifications]


async def start(app: TierctlApp, pilot: Pilot[None], src: LocalSource, cycles: int = 2) -> None:
    await drive(app, src, cycles)
    await settle(app, pilot)


# ---- overrides ------------------------------------------------------------------------------------


@pytest.mark.parametrize("key,tier", [("f", "fast"), ("s", "slow")])
def test_pin_is_chosen_in_a_dialog_and_shows_in_the_table(synthetic: Synth, key: str, tier: str) -> None:
    svc, src = synthetic

    async def body(app: TierctlApp, pilot: Pilot[None]) -> None:
        await start(app, pilot, src)
        path = table(app).selected_path
        assert path is not None
        await pilot.press("p")
        assert isinstance(app.screen, PinScreen) and app.screen.path == path
        await pilot.press(key)
        await settle(app, pilot)
        assert svc.pins == {path: tier}
        assert table(app).get_cell(path, "override").plain == tier
        assert f"pinned {path} to {tier}" in notes(app)

    run_app(src, body)


def test_pin_auto_unpins_and_escape_cancels(synthetic: Synth) -> None:
    svc, src = synthetic

    async def body(app: TierctlApp, pilot: Pilot[None]) -> None:
        await start(app, pilot, src)
        path = table(app).selected_path
        assert path is not None
        svc.pin(path, "fast")
        await pilot.press("p", "escape")
        await settle(app, pilot)
        assert svc.pins == {path: "fast"} and not isinstance(app.screen, PinScreen)
        await pilot.press("p", "a")
        await settle(app, pilot)
        assert svc.pins == {} and table(app).get_cell(path, "override").plain == "auto"

    run_app(src, body)


def test_pin_with_the_mouse(synthetic: Synth) -> None:
    svc, src = synthetic

    async def body(app: TierctlApp, pilot: Pilot[None]) -> None:
        await start(app, pilot, src)
        path = table(app).selected_path
        await pilot.press("p")
        await pilot.click("#slow")
        await settle(app, pilot)
        assert svc.pins == {path: "slow"}

    run_app(src, body)


def test_quota_dialog_sets_and_removes_the_quota(synthetic: Synth) -> None:
    svc, src = synthetic

    async def body(app: TierctlApp, pilot: Pilot[None]) -> None:
        await start(app, pilot, src)
        path = table(app).selected_path
        assert path is not None
        await pilot.press("f")
        assert isinstance(app.screen, QuotaScreen)
        await pilot.press(*"512M", "tab", *"2G", "enter")
        await settle(app, pilot)
        assert svc.quotas == {path: {"fast_min": "512M", "fast_max": "2G"}}
        await pilot.press("enter")  # open the detail: the quota is shown there
        await settle(app, pilot)
        assert "quota min 512M max 2G" in screen_text(app)
        await pilot.press("f")
        screen = app.screen
        assert isinstance(screen, QuotaScreen)
        assert screen.query_one("#fast_min", Input).value == "512M"  # the current quota is offered
        screen.query_one("#fast_min", Input).value = ""
        screen.query_one("#fast_max", Input).value = ""
        await pilot.click("#apply")
        await settle(app, pilot)
        assert svc.quotas == {}
        await pilot.press("f", "1", "escape")
        await settle(app, pilot)
        assert svc.quotas == {} and isinstance(app.screen, DetailScreen)

    run_app(src, body)


def test_quota_in_bytes_is_sent_as_an_integer(synthetic: Synth) -> None:
    svc, src = synthetic

    async def body(app: TierctlApp, pilot: Pilot[None]) -> None:
        await start(app, pilot, src)
        path = table(app).selected_path
        await pilot.press("f", "tab", *"4096", "enter")
        await settle(app, pilot)
        assert svc.quotas == {path: {"fast_min": None, "fast_max": 4096}}

    run_app(src, body)


def test_pause_and_resume_are_confirmed_and_shown(synthetic: Synth) -> None:
    svc, src = synthetic

    async def body(app: TierctlApp, pilot: Pilot[None]) -> None:
        await start(app, pilot, src)
        await pilot.press("space")
        assert isinstance(app.screen, ConfirmScreen) and "Pause" in app.screen.question
        await pilot.press("n")
        await settle(app, pilot)
        assert not svc.paused
        await pilot.press("space", "y")
        await settle(app, pilot)
        top = screen_text(app).splitlines()
        assert svc.paused and "⏸ PAUSED" in top[0] and "⇡- ⇣- paused" in top[0]
        assert "space resume" in top[-1] and "space pause" not in top[-1]  # the footer's action reversed
        await pilot.press("1")
        await settle(app, pilot)
        text = screen_text(app)
        assert "controller  ⏸ PAUSED  paused: no pages move" in text and "promoted   paused" in text
        await pilot.press("space")
        assert isinstance(app.screen, ConfirmScreen) and "Resume" in app.screen.question
        await pilot.click("#yes")
        await settle(app, pilot)
        top = screen_text(app).splitlines()
        assert not svc.paused and "running" in top[0] and "space pause" in top[-1]

    run_app(src, body)


def test_migrate_now_for_the_selected_cgroup_or_all(synthetic: Synth) -> None:
    svc, src = synthetic

    async def body(app: TierctlApp, pilot: Pilot[None]) -> None:
        await start(app, pilot, src)
        path = table(app).selected_path
        await pilot.press("m")
        assert isinstance(app.screen, ConfirmScreen) and path in app.screen.question
        await pilot.press("y")
        await settle(app, pilot)
        assert svc.cycles == 3 and f"migrated cgroup {path}" in notes(app)
        assert "c3" in screen_text(app).splitlines()[0]
        await pilot.press("1", "m")
        assert isinstance(app.screen, ConfirmScreen) and "every cgroup" in app.screen.question
        await pilot.press("enter")
        await settle(app, pilot)
        assert svc.cycles == 4

    run_app(src, body)


def test_reload_is_confirmed(synthetic: Synth) -> None:
    svc, src = synthetic

    async def body(app: TierctlApp, pilot: Pilot[None]) -> None:
        await start(app, pilot, src)
        await pilot.press("r", "n")
        await settle(app, pilot)
        assert [e["kind"] for e in svc.events].count("reloaded") == 0
        await pilot.press("r", "y")
        await settle(app, pilot)
        assert [e["kind"] for e in svc.events].count("reloaded") == 1
        await pilot.press("3")
        await settle(app, pilot)
        assert "reloaded" in screen_text(app)

    run_app(src, body)


def test_refused_actions_are_notifications_not_crashes() -> None:
    svc = SyntheticService(5, wall=lambda: WALL, mutable=False)
    src = LocalSource(svc, period_s=None)

    async def body(app: TierctlApp, pilot: Pilot[None]) -> None:
        await start(app, pilot, src)
        for keys in (("p", "f"), ("space", "y"), ("m", "y"), ("r", "y"), ("f", "enter")):
            await pilot.press(*keys)
            await settle(app, pilot)
        refused = [n for n in app._notifications if n.title == "refused: no permission"]
        assert len(refused) == 5 and all(n.severity == "error" for n in refused)
        assert "pin needs root or the tierctl mutators group" in str(refused[0].message)
        assert svc.pins == {} and not svc.paused and app.is_running

    run_app(src, body)


def test_invalid_quota_keeps_the_dialog_open_with_the_reason(synthetic: Synth) -> None:
    svc, src = synthetic

    async def body(app: TierctlApp, pilot: Pilot[None]) -> None:
        await start(app, pilot, src)
        await pilot.press("f", *"lots", "enter")
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, QuotaScreen) and svc.quotas == {}  # still open, nothing sent
        text = screen_text(app)
        assert "fast_min: expected bytes (e.g. 512M, 2G)" in text and "got 'lots'" in text
        screen.query_one("#fast_min", Input).value = ""
        await pilot.press(*"1G", "enter")  # corrected: the reason goes, the quota is set
        await settle(app, pilot)
        assert app.screen is app.screen_stack[0] and svc.quotas[table(app).selected_path or ""] == {
            "fast_min": "1G",
            "fast_max": None,
        }

    run_app(src, body)


def test_actions_without_a_selection_warn(synthetic: Synth) -> None:
    _, src = synthetic

    async def body(app: TierctlApp, pilot: Pilot[None]) -> None:
        await start(app, pilot, src)
        await pilot.press("slash", *"zzz", "enter", "p", "f")
        await settle(app, pilot)
        assert notes(app).count("select a cgroup to pin") == 1
        assert notes(app).count("select a cgroup to set its quota") == 1
        assert app.screen is app.screen_stack[0]

    run_app(src, body)


# ---- daemon gone -----------------------------------------------------------------------------------


@pytest.fixture
def sockdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="tt-", dir="/tmp") as d:
        yield Path(d)


def test_daemon_gone_is_shown_actions_refused_and_reconnects(sockdir: Path) -> None:
    path = sockdir / "s.sock"
    svc = SyntheticService(4, wall=lambda: WALL)
    svc.cycle()
    limits = Limits(service_timeout=5.0)

    def server() -> ApiServer:
        return ApiServer(
            svc, path, limits=limits, credentials=lambda s: (os.getpid(), 0, 0), socket_group=None
        )

    srv = server().start()
    src = SocketSource(path, timeout=2.0)

    async def body(app: TierctlApp, pilot: Pilot[None]) -> None:
        await app.collect()
        await settle(app, pilot)
        assert "running" in screen_text(app).splitlines()[0]
        srv.stop()
        await app.collect()
        await settle(app, pilot)
        top = screen_text(app)
        assert "daemon gone, reconnecting…" in top.splitlines()[0]
        assert "000.service" in top  # the last frame stays on screen
        await pilot.press("space", "y")
        await settle(app, pilot)
        assert any("daemon not running" in m for m in notes(app))
        assert any(n.title == "refused: daemon unavailable" for n in app._notifications)
        with server():
            await app.collect()
            await settle(app, pilot)
            assert "running" in screen_text(app).splitlines()[0]
            assert "reconnected to the daemon" in notes(app)
            await pilot.press("space", "y")
            await settle(app, pilot)
            assert svc.paused
        src.stop()

    run_app(src, body)


# ---- the table ------------------------------------------------------------------------------------


def test_sort_keys_cycle_columns_and_reverse(synthetic: Synth) -> None:
    svc, src = synthetic

    async def body(app: TierctlApp, pilot: Pilot[None]) -> None:
        await start(app, pilot, src)
        t = table(app)

        def order() -> list[str]:
            return [str(t.coordinate_to_cell_key((r, 0)).row_key.value) for r in range(t.row_count)]

        fast = {c["path"]: c["fast_bytes"] for c in svc.cgroups()}
        assert order() == sorted(fast, key=lambda p: (-fast[p], p))
        assert "sort fast ▼" in str(t.border_title)
        await pilot.press("s", "s", "s", "s")  # slow, hot, hit, cgroup
        assert t.sort_by == "path" and order() == sorted(fast)
        await pilot.press("S")
        assert order() == sorted(fast, reverse=True) and "sort cgroup ▲" in str(t.border_title)
        await pilot.click(CgroupTable, offset=(t.size.width - 12, 1))  # the "hot" header
        hot = {c["path"]: c["hot_bytes"] for c in svc.cgroups()}
        assert t.sort_by == "hot" and order() == sorted(hot, key=lambda p: (-hot[p], p))
        await pilot.click(CgroupTable, offset=(t.size.width - 12, 1))
        assert t.reverse and order() == sorted(hot, key=lambda p: (hot[p], p))

    run_app(src, body)


def test_filter_narrows_and_escape_clears(synthetic: Synth) -> None:
    _, src = synthetic

    async def body(app: TierctlApp, pilot: Pilot[None]) -> None:
        await start(app, pilot, src)
        await pilot.press("slash")
        assert app.focused is app.query_one("#filter", Input)
        await pilot.press(*"batch")
        assert table(app).row_count == 4  # 12 cgroups, every third has the batch profile
        await pilot.press("enter")
        assert app.focused is table(app) and app.query_one("#filter", Input).display
        await drive(app, src, 1)
        assert table(app).row_count == 4  # the filter holds across updates
        await pilot.press("escape")
        assert table(app).row_count == 12 and not app.query_one("#filter", Input).display
        await pilot.press("slash", *"latency", "escape")  # Esc while typing clears too
        assert table(app).row_count == 12 and app.focused is table(app)

    run_app(src, body)


def test_live_updates_keep_selection_and_scroll() -> None:
    svc = SyntheticService(60, seed=3, wall=lambda: WALL)
    src = LocalSource(svc, period_s=None)

    async def body(app: TierctlApp, pilot: Pilot[None]) -> None:
        await start(app, pilot, src)
        t = table(app)
        await pilot.press("s", "s", "s", "s")  # by path: the order stays put while numbers change
        await pilot.press(*["j"] * 30, "k")
        await settle(app, pilot)
        chosen, y = t.selected_path, t.scroll_y
        assert t.cursor_row == 29 and y > 0
        before = t.get_cell(chosen, "fast").plain
        svc.paths.append("/synth.slice/zzz-new.service")  # a new cgroup appears at the end
        svc.prof.append("-")
        for arr in ("fast", "slow", "hot"):
            setattr(svc, arr, np.append(getattr(svc, arr), 100))
        await drive(app, src, 5)
        await settle(app, pilot)
        assert t.row_count == 61 and t.selected_path == chosen and t.scroll_y == y
        assert t.get_cell(chosen, "fast").plain != before  # the numbers did change
        await pilot.press("s")  # by profile: rows move, the selection follows its cgroup
        assert t.selected_path == chosen

    run_app(src, body)


def test_enter_opens_detail_escape_returns_and_click_opens(synthetic: Synth) -> None:
    _, src = synthetic

    async def body(app: TierctlApp, pilot: Pilot[None]) -> None:
        await start(app, pilot, src)
        await pilot.press("j", "enter")
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, DetailScreen) and screen.path == table(app).selected_path
        text = screen_text(app)
        for part in (
            "heat histogram by tier",
            "address-space heat",
            "processes: pages per node",
            "recent migrations of this cgroup",
            "profile ",
            "worker0",
        ):
            assert part in text, part
        await drive(app, src, 1)  # the detail updates live
        assert screen.detail is not None and "cycle=3" not in text
        await pilot.press("escape")
        assert app.screen is app.screen_stack[0]
        row = table(app).cursor_row
        await pilot.click(CgroupTable, offset=(4, 2 + row))  # click the selected row: opens it
        await settle(app, pilot)
        assert isinstance(app.screen, DetailScreen)

    run_app(src, body)


def test_the_detail_screen_shows_the_summary_line_once_composed(synthetic: Synth) -> None:
    """The screen says when its widgets exist (DetailScreen.Composed): its summary line is there
    before the next collection."""
    svc, src = synthetic

    async def body(app: TierctlApp, pilot: Pilot[None]) -> None:
        await start(app, pilot, src)
        screen = DetailScreen(svc.paths[0])
        await app.push_screen(screen)  # no collection follows
        await pilot.pause()
        assert "synthetic" in screen_text(app) and app.screen is screen

    run_app(src, body)


def test_pin_from_the_detail_screen(synthetic: Synth) -> None:
    svc, src = synthetic

    async def body(app: TierctlApp, pilot: Pilot[None]) -> None:
        await start(app, pilot, src)
        await pilot.press("enter")
        await settle(app, pilot)
        path = app.screen.path  # type: ignore[attr-defined]
        await pilot.press("p", "f")
        await settle(app, pilot)
        assert svc.pins == {path: "fast"} and "pin fast" in screen_text(app)

    run_app(src, body)


# ---- navigation, help, palette, quit ---------------------------------------------------------------


def test_tabs_and_jk(synthetic: Synth) -> None:
    _, src = synthetic

    async def body(app: TierctlApp, pilot: Pilot[None]) -> None:
        await start(app, pilot, src)
        tabs = app.query_one(TabbedContent)
        for key, tab in (("1", "overview"), ("3", "events"), ("2", "cgroups")):
            await pilot.press(key)
            assert tabs.active == tab
        await pilot.press("j", "j", "down", "k")
        assert table(app).cursor_row == 2
        await pilot.press("up")
        assert table(app).cursor_row == 1
        await pilot.press("G")
        assert table(app).cursor_row == 11
        await pilot.press("g")
        assert table(app).cursor_row == 0
        await pilot.press("end", "pageup", "home")
        assert table(app).cursor_row == 0

    run_app(src, body)


def test_overview_shows_tiers_rates_controller_and_samplers(synthetic: Synth) -> None:
    _, src = synthetic

    async def body(app: TierctlApp, pilot: Pilot[None]) -> None:
        await start(app, pilot, src, cycles=4)
        await pilot.press("1")
        await settle(app, pilot)
        text = screen_text(app)
        for part in (
            "node 0 fast",
            "node 1 slow",
            "free / 1.0G",
            "promoted",
            "demoted",
            "controller running",
            "samplers",
            "synthetic",
            "unavailable",
        ):
            assert part in text, part
        assert app.rates.promoted[-1] > 0

    run_app(src, body)


def test_help_lists_every_key(synthetic: Synth) -> None:
    _, src = synthetic

    async def body(app: TierctlApp, pilot: Pilot[None]) -> None:
        await start(app, pilot, src)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.resize_terminal(140, 50)
        await settle(app, pilot)
        text = screen_text(app)
        for k in (*APP_KEYS, *TABLE_KEYS, *DETAIL_KEYS):
            assert k.help in text, k.help
        bound = {b.action for b in app.BINDINGS} | {b.action for b in CgroupTable.BINDINGS}  # type: ignore[union-attr]
        assert bound <= {k.action for k in (*APP_KEYS, *TABLE_KEYS)}
        await pilot.press("escape")
        assert app.screen is app.screen_stack[0]

    run_app(src, body)


def test_command_palette_runs_actions_and_opens_cgroups(synthetic: Synth) -> None:
    svc, src = synthetic

    async def body(app: TierctlApp, pilot: Pilot[None]) -> None:
        await start(app, pilot, src)
        await pilot.press("colon")
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"show events")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await settle(app, pilot)
        assert app.query_one(TabbedContent).active == "events"
        target = svc.paths[7]
        await pilot.press("ctrl+p", *f"open {target}")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await settle(app, pilot)
        assert isinstance(app.screen, DetailScreen) and app.screen.path == target
        await pilot.press("escape", "colon", *"pause or resume")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await settle(app, pilot)
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await settle(app, pilot)
        assert svc.paused

    run_app(src, body)


def test_q_quits(synthetic: Synth) -> None:
    _, src = synthetic

    async def body(app: TierctlApp, pilot: Pilot[None]) -> None:
        await start(app, pilot, src)
        await pilot.press("q")
        await pilot.pause()
        assert not app.is_running

    app = TierctlApp(src, refresh_s=None, start_source=False)

    async def main() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await body(app, pilot)

    asyncio.run(main())
    assert app.return_code == 0


def test_timer_collects_and_source_cycles_by_itself() -> None:
    svc = SyntheticService(3, wall=lambda: WALL)
    src = LocalSource(svc, period_s=0.02)
    app = TierctlApp(src, refresh_s=0.05)

    async def main() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            for _ in range(200):
                await pilot.pause(0.02)
                if app.frames >= 3 and svc.cycles >= 3:
                    break
            assert app.frames >= 3 and svc.cycles >= 3

    asyncio.run(main())
    stopped = svc.cycles
    time.sleep(0.1)
    assert svc.cycles == stopped  # the app stopped the source's thread on exit


def test_sim_machine_pin_moves_memory(sim: tuple[object, LocalSource]) -> None:
    _, src = sim
    db = "/system.slice/postgresql@16-main.service"

    async def body(app: TierctlApp, pilot: Pilot[None]) -> None:
        await start(app, pilot, src, cycles=10)
        assert table(app).select_path(db)
        slow_before = table(app).get_cell(db, "slow").plain
        await pilot.press("p", "f")
        await settle(app, pilot)
        await drive(app, src, 10)
        await settle(app, pilot)
        assert table(app).get_cell(db, "override").plain.rstrip("…!") == "fast"
        assert table(app).get_cell(db, "slow").plain != slow_before  # the pin moved pages
        await pilot.press("3")  # the log renders what it was given while hidden
        await settle(app, pilot)
        log = app.query_one(EventsView).plain_lines()
        assert any(f"pin        cgroup={db} tier=fast" in line for line in log), log
        assert any("migrated x" in line for line in log), log  # runs of migrations: one line each

    run_app(src, body)
