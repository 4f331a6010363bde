"""The Textual app: collects frames from a Source on a timer and passes them down to the views.

Collection runs in a worker thread (a socket call never freezes the UI) and does not depend on which
view is visible; views receive data (``show``) and report the operator's intent with messages. Every
override is confirmed in a dialog, runs in a worker, and a refusal becomes a notification.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from importlib import resources
from types import MappingProxyType
from typing import Any, ClassVar, TypeVar

from textual import on
from textual.app import App, ComposeResult
from textual.css.query import NoMatches
from textual.widget import Widget
from textual.widgets import Input, TabbedContent, TabPane

from tierctl.api.protocol import error_kind
from tierctl.errors import TierctlError
from tierctl.tui.commands import TierctlCommands
from tierctl.tui.detail import DetailScreen
from tierctl.tui.freshness import is_paused
from tierctl.tui.keybar import KeyBar
from tierctl.tui.keys import APP_KEYS, TABLE_KEYS, bindings
from tierctl.tui.modals import ConfirmScreen, HelpScreen, PinScreen, Quota, QuotaScreen
from tierctl.tui.model import FrameContext, NodeUse, Rates, node_use
from tierctl.tui.rowinfo import result_message
from tierctl.tui.source import Frame, Source
from tierctl.tui.table import CgroupTable
from tierctl.tui.tabs import DEFAULT_TAB, TABS, ShowsFrames, tab
from tierctl.tui.views import Summary

W = TypeVar("W", bound=Widget)


class TierctlApp(App[None]):
    CSS_PATH = str(resources.files("tierctl.tui") / "tierctl.tcss")  # package data, as installed
    TITLE = "tierctl"
    BINDINGS: ClassVar = bindings(APP_KEYS) + bindings(
        tuple(k for k in TABLE_KEYS if k.action in ("filter", "clear_filter"))
    )
    COMMANDS: ClassVar = {TierctlCommands}

    def __init__(
        self,
        source: Source,
        *,
        refresh_s: float | None = 1.0,
        start_source: bool = True,
        quit_after: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``refresh_s=None``: no timer, the caller collects (``await app.collect()``; tests).
        ``quit_after``: exit after drawing that many frames from the source (scripted smoke runs);
        the return code is 1 if a view update failed, else 0. ``clock``: seconds, for the data's age
        (tests fix it)."""
        super().__init__()
        self.source = source
        self.refresh_s = refresh_s
        self.quit_after = quit_after
        self.start_source = start_source
        self.frame: Frame | None = None
        self.nodes: list[NodeUse] = []
        self.rates = Rates()
        self.frames = 0
        self._collecting = False
        self._again = False
        self._detail: DetailScreen | None = None  # made on first use, then reused
        self._was_connected = True
        self.problems: list[str] = []  # view updates that failed (tests assert there are none)
        self.clock = clock
        self.last_frame_at: float | None = None  # clock() when the last frame from the source arrived
        self.paused = False
        self._last_shown: Frame | None = None

    def compose(self) -> ComposeResult:
        yield Summary(id="summary")
        with TabbedContent(initial=DEFAULT_TAB, id="tabs"):
            for t in TABS:
                with TabPane(f"{t.title} [{t.key}]", id=t.id):
                    yield from t.widgets()
        yield KeyBar(id="keybar")

    def on_mount(self) -> None:
        self.main_view(Input, "#filter").display = False
        self.main_view(Summary).show(self.source.label, None, [], self.rates, None, self.refresh_s)
        self.main_view(CgroupTable).focus()
        if self.start_source:
            self.source.start()
        if self.refresh_s is not None:
            self.set_interval(self.refresh_s, self._tick)
            self.set_interval(0.5, self.show_summary)  # the data's age goes on counting
            self._tick()

    def on_unmount(self) -> None:
        if self.start_source:
            self.source.stop()

    # ---- collection: data flows down --------------------------------------------------------------
    def _tick(self) -> None:
        if not self._collecting:  # a slow daemon: skip the tick rather than queue collections
            self.run_worker(self.collect(), group="collect")

    def main_view(self, kind: type[W], selector: str | None = None) -> W:
        """A widget of the main screen, whichever screen is on top."""
        main = self.screen_stack[0]
        return main.query_one(selector, kind) if selector else main.query_one(kind)

    def _detail_screen(self) -> DetailScreen | None:
        """The open detail screen (also under a dialog), if any."""
        return next((s for s in reversed(self.screen_stack) if isinstance(s, DetailScreen)), None)

    async def collect(self) -> None:
        """Poll the source once (in a thread) and show the frame everywhere; called while a collection
        runs (an override just succeeded), it runs once more right after."""
        if self._collecting:
            self._again = True
            return
        self._collecting = True
        try:
            d = self._detail_screen()
            try:
                frame = await asyncio.to_thread(self.source.poll, d.path if d else None)
            except Exception as e:  # a bug in a source must not take the UI down
                frame = Frame(connected=False, message=f"collection failed: {type(e).__name__}: {e}")
            try:
                self.apply(frame)
            except Exception as e:  # an unexpected shape from a newer daemon must not crash the UI
                msg = f"view update failed: {type(e).__name__}: {e}"
                self.problems.append(msg)
                self.notify(msg, severity="error")
        finally:
            self._collecting = False
        if self._again:
            self._again = False
            self.run_worker(self.collect(), group="collect")

    def apply(self, frame: Frame) -> None:
        if frame.connected:
            if not self._was_connected:
                self.notify("reconnected to the daemon", title="tierctl")
            self.frame = frame
            self.frames += 1
            self.last_frame_at = self.clock()
            if is_paused(frame.status) != self.paused:
                self.paused = not self.paused
                self.refresh_bindings()  # the footer offers resume instead of pause
            self.nodes = node_use(frame.topology, frame.cgroups)
            self.rates.push(frame.status)
            ctx = FrameContext(frame, self.nodes, self.rates)
            for pane in self.screen_stack[0].query(TabPane):
                for view in pane.query("*"):
                    if isinstance(view, ShowsFrames):
                        view.show_frame(ctx)
            d = self._detail_screen()
            if d is not None:
                d.show(frame.detail, frame.detail_error, frame.status.get("overrides") or {}, frame.pressure)
        self._was_connected = frame.connected
        self._last_shown = frame
        self.show_summary()
        if self.quit_after is not None and self.frames >= self.quit_after:
            self.exit(return_code=1 if self.problems else 0)

    def show_summary(self) -> None:
        frame = self._last_shown
        if frame is None:
            return
        age = None if self.last_frame_at is None else max(self.clock() - self.last_frame_at, 0.0)
        args = (self.source.label, frame, self.nodes, self.rates, age, self.refresh_s)
        self.main_view(Summary).show(*args)
        d = self._detail_screen()
        if d is not None:
            with contextlib.suppress(NoMatches):  # not composed yet: it says when (DetailScreen.Composed)
                d.query_one(Summary).show(*args)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """space pauses a running controller and resumes a paused one: the footer shows which."""
        if action == "pause":
            return not self.paused
        if action == "resume":
            return self.paused
        return True

    # ---- what the operator points at --------------------------------------------------------------
    def current_path(self) -> str | None:
        d = self._detail_screen()
        return d.path if d is not None else self.main_view(CgroupTable).selected_path

    def cgroup_paths(self) -> list[str]:
        return [str(c.get("path")) for c in (self.frame.cgroups if self.frame else [])]

    def _cgroup(self, path: str) -> dict[str, Any]:
        for c in self.frame.cgroups if self.frame else []:
            if c.get("path") == path:
                return c
        return {}

    def _overrides(self) -> dict[str, Any]:
        return (self.frame.status.get("overrides") or {}) if self.frame else {}

    @on(CgroupTable.Opened)
    def _opened(self, event: CgroupTable.Opened) -> None:
        self.open_detail(event.path)

    @on(DetailScreen.Composed)
    def _detail_composed(self, event: DetailScreen.Composed) -> None:
        self.show_summary()

    def open_detail(self, path: str) -> None:
        while len(self.screen_stack) > 1:
            self.pop_screen()
        self.main_view(CgroupTable).select_path(path)
        if self._detail is None:
            self._detail = DetailScreen(path)
            self.install_screen(self._detail, name="detail")
        else:
            self._detail.retarget(path)
        self.push_screen("detail")
        self.run_worker(self.collect(), group="collect")

    # ---- navigation -------------------------------------------------------------------------------
    def action_tab(self, tab_id: str) -> None:
        t = tab(tab_id)
        if t is None:
            return
        while len(self.screen_stack) > 1:
            self.pop_screen()
        self.main_view(TabbedContent).active = t.id
        if t.focus:
            self.main_view(Widget, t.focus).focus()

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_filter(self) -> None:
        self.action_tab("cgroups")
        box = self.main_view(Input, "#filter")
        box.display = True
        box.focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.main_view(CgroupTable).set_filter(event.value)

    @on(Input.Submitted, "#filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        box = self.main_view(Input, "#filter")
        box.display = bool(box.value)
        self.main_view(CgroupTable).focus()

    def action_clear_filter(self) -> None:
        box = self.main_view(Input, "#filter")
        box.value = ""
        box.display = False
        self.main_view(CgroupTable).set_filter("")
        self.main_view(CgroupTable).focus()

    # ---- overrides: confirmed, run in a worker, refusals notified -----------------------------------
    def _need_path(self, what: str) -> str | None:
        path = self.current_path()
        if path is None:
            self.notify(f"select a cgroup to {what}", severity="warning")
        return path

    def action_pin(self) -> None:
        path = self._need_path("pin")
        if path is None:
            return
        current = str(self._cgroup(path).get("override") or "auto")

        def chosen(tier: str | None) -> None:
            if tier is not None:
                self.perform("pin", f"pinned {path} to {tier}", path=path, tier=tier)

        self.push_screen(PinScreen(path, current), chosen)

    def action_quota(self) -> None:
        path = self._need_path("set its quota")
        if path is None:
            return
        self.run_worker(self._quota_dialog(path), group="act")

    async def _quota_dialog(self, path: str) -> None:
        """The dialog shows what is in force: the detail's ``quota`` (profile or override) when the
        service reports it, else the override alone."""
        current = (self._overrides().get("quotas") or {}).get(path)
        try:
            detail = await asyncio.to_thread(self.source.cgroup_detail, path)
            info = detail.get("quota")
        except Exception:  # an older or gone daemon: the override alone
            info = None

        def chosen(q: Quota | None) -> None:
            if q is not None:
                lo, hi = q
                text = "removed" if lo is None and hi is None else f"min {lo or '-'} max {hi or '-'}"
                self.perform("set_quota", f"quota of {path}: {text}", path=path, fast_min=lo, fast_max=hi)

        self.push_screen(QuotaScreen(path, current, info if isinstance(info, dict) else None), chosen)

    def action_migrate(self) -> None:
        on_overview = self._detail_screen() is None and self.main_view(TabbedContent).active == "overview"
        path = None if on_overview else self.current_path()
        what = f"cgroup {path}" if path else "every cgroup"
        self._confirm(f"Migrate now: {what}?", "migrate_now", f"migrated {what}", path=path)

    def action_toggle_pause(self) -> None:
        if self.paused:
            self.action_resume()
        else:
            self.action_pause()

    def action_pause(self) -> None:
        self._confirm("Pause the controller (sampling continues)?", "pause", "controller paused")

    def action_resume(self) -> None:
        self._confirm("Resume the controller?", "resume", "controller resumed")

    def action_reload(self) -> None:
        self._confirm("Reload the profiles (all or nothing)?", "reload", "profiles reloaded")

    def _confirm(self, question: str, action: str, done: str, **args: Any) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self.perform(action, done, **args)

        self.push_screen(ConfirmScreen(question), answered)

    def perform(self, action: str, done: str, **args: Any) -> None:
        self.run_worker(self._perform(action, done, args), group="act")

    async def _perform(self, action: str, done: str, args: dict[str, Any]) -> None:
        try:
            result = await asyncio.to_thread(self.source.act, action, **args)
        except TierctlError as e:
            self.notify(str(e), title=refusal_title(e), severity="error", timeout=8)
            return
        except Exception as e:  # never a crash: show it and carry on
            self.notify(f"{type(e).__name__}: {e}", title="failed", severity="error", timeout=8)
            return
        message, title, severity = result_message(result, done)
        self.notify(message, title=title, severity=severity)  # type: ignore[arg-type]
        await self.collect()


REFUSALS = MappingProxyType(
    {
        "permission": "refused: no permission",
        "unavailable": "refused: daemon unavailable",
        "input": "refused: invalid",
    }
)


def refusal_title(e: TierctlError) -> str:
    return REFUSALS.get(error_kind(e), "refused")  # the socket API's own classification of errors
