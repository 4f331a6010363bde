"""Snapshots of the views on the simulated machine (multi-cgroup, seed 0, fixed clocks): the main views
(cgroups, detail, events, help, pressure) at 80x24, 160x45 and 200x60, the others at 80x24.

Update after an intended change with ``pytest tests/tui/test_snapshots.py --snapshot-update`` and look
at the SVGs (``tests/tui/__snapshots__``) before committing them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from textual.pilot import Pilot

from tierctl.tui.app import TierctlApp
from tierctl.tui.source import GONE, Frame, LocalSource

from .conftest import FixedTimings, drive, settle
from .fake_pressure import WithPressure

CYCLES = 40
DB = "/system.slice/postgresql@16-main.service"
Snap = Callable[..., bool]


SIZES = ((80, 24), (160, 45), (200, 60))


def sim_app(src: LocalSource) -> TierctlApp:
    return TierctlApp(src, refresh_s=None, start_source=False, clock=lambda: 100.0)


def played(src: LocalSource, *keys: str, cycles: int = CYCLES) -> Callable[[Pilot[None]], Any]:
    async def run_before(pilot: Pilot[None]) -> None:
        app = pilot.app
        assert isinstance(app, TierctlApp)
        await drive(app, src, cycles)
        await settle(app, pilot)
        for k in keys:
            await pilot.press(k)
            await settle(app, pilot)
        assert app.problems == []

    return run_before


MAIN_VIEWS = (
    ("cgroups", ()),
    ("events", ("3",)),
    ("detail", ("k", "k", "enter")),
    ("help", ("question_mark",)),
    ("pressure", ("4",)),
)
OTHER_VIEWS = (
    ("overview", ("1",)),
    ("pin_dialog", ("p",)),
    ("sorted_filtered", ("s", "s", "slash", "s", "y", "s", "enter")),
    ("paused", ("space", "y")),
)


@pytest.mark.parametrize(
    "name,keys,size",
    [pytest.param(n, k, sz, id=f"{n}-{sz[0]}x{sz[1]}") for n, k in MAIN_VIEWS for sz in SIZES]
    + [pytest.param(n, k, SIZES[0], id=n) for n, k in OTHER_VIEWS],
)
def test_view(
    snap_compare: Snap,
    sim: tuple[Any, LocalSource],
    name: str,
    keys: tuple[str, ...],
    size: tuple[int, int],
) -> None:
    _, src = sim
    assert snap_compare(sim_app(src), terminal_size=size, run_before=played(src, *keys))


def test_pinned_fast_after_20_more_epochs(snap_compare: Snap, sim: tuple[Any, LocalSource]) -> None:
    svc, src = sim

    async def run_before(pilot: Pilot[None]) -> None:
        app = pilot.app
        assert isinstance(app, TierctlApp)
        await played(src, cycles=CYCLES)(pilot)
        svc.pin(DB, "fast")
        await drive(app, src, 20)
        await pilot.press("1")
        await settle(app, pilot)

    assert snap_compare(sim_app(src), terminal_size=(80, 24), run_before=run_before)


@pytest.mark.parametrize(
    "name,mode,keys,size",
    [
        ("cgroups", "on", (), (80, 24)),
        ("cgroups_wide", "on", (), (160, 45)),
        ("detail", "on", ("enter",), (80, 24)),
        ("detail_wide", "on", ("enter",), (160, 45)),
        ("tab", "on", ("4",), (80, 24)),
        ("tab_wide", "on", ("4",), (160, 45)),
        ("tab_dry_run", "dry-run", ("4",), (80, 24)),
        ("detail_unavailable", "unavailable", ("enter",), (80, 24)),
    ],
)
def test_fixed_pressure(
    snap_compare: Snap,
    sim: tuple[Any, LocalSource],
    name: str,
    mode: str,
    keys: tuple[str, ...],
    size: tuple[int, int],
) -> None:
    """The pressure views over fixed figures (tests/tui/fake_pressure.py) on the simulated machine's
    cgroups: they do not change when the simulator's memory model does."""
    svc, _ = sim
    src = LocalSource(WithPressure(FixedTimings(svc), mode), period_s=None, label="sim:multi-cgroup")
    assert snap_compare(sim_app(src), terminal_size=size, run_before=played(src, *keys))


class GoneSource:
    """A daemon that answered once and then went away."""

    label = "daemon"

    def __init__(self, first: Frame) -> None:
        self.frames = [first, Frame(connected=False, message=f"{GONE} (the daemon closed the connection)")]

    def poll(self, detail_path: str | None = None) -> Frame:
        return self.frames.pop(0) if len(self.frames) > 1 else self.frames[0]

    def act(self, action: str, **args: Any) -> Any:
        raise AssertionError("not used")

    def cgroup_detail(self, path: str) -> dict[str, Any]:
        raise AssertionError("not used")

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


def test_daemon_gone(snap_compare: Snap, sim: tuple[Any, LocalSource]) -> None:
    _, src = sim
    for _ in range(10):
        src.step()
    gone = GoneSource(src.poll())

    async def run_before(pilot: Pilot[None]) -> None:
        app = pilot.app
        assert isinstance(app, TierctlApp)
        await app.collect()
        await app.collect()
        await settle(app, pilot)

    app = TierctlApp(gone, refresh_s=None, start_source=False, clock=lambda: 100.0)
    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)
