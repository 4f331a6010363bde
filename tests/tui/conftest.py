"""Fixtures of the TUI tests: apps over a synthetic service or the simulated machine, run headless.

Tests are plain functions that ``asyncio.run`` an ``App.run_test`` session (no asyncio plugin needed).
Collection is driven explicitly (``refresh_s=None``; ``drive``) so every test is deterministic.
"""

from __future__ import annotations

import asyncio
import io
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from textual.pilot import Pilot

from tests.tui.synthetic import SyntheticService
from tierctl.tui.app import TierctlApp
from tierctl.tui.source import LocalSource, Source

WALL = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
SIZE = (80, 24)


def screen_text(app: TierctlApp) -> str:
    """The screen as plain text (what a terminal would show), for assertions."""
    console = Console(
        width=app.size.width,
        height=app.size.height,
        file=io.StringIO(),
        record=True,
        force_terminal=True,
        legacy_windows=False,
        safe_box=False,
    )
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text()


async def settle(app: TierctlApp, pilot: Pilot[None]) -> None:
    """Let workers (collection, actions) finish and the screen repaint."""
    for _ in range(3):
        await pilot.pause()
        await app.workers.wait_for_complete()
    await pilot.pause()


async def drive(app: TierctlApp, source: LocalSource, cycles: int) -> None:
    """Run ``cycles`` service cycles, collecting a frame after each (as the timers would)."""
    for _ in range(cycles):
        source.step()
        await app.collect()


def run_app(
    source: Source,
    body: Callable[[TierctlApp, Pilot[None]], Awaitable[None]],
    *,
    size: tuple[int, int] = SIZE,
) -> TierctlApp:
    app = TierctlApp(source, refresh_s=None, start_source=False)

    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            await body(app, pilot)
            assert app.problems == []

    asyncio.run(main())
    return app


class FixedTimings:
    """Wraps a Service so the measured cycle time (wall-clock dependent) reads a constant."""

    def __init__(self, service: Any) -> None:
        self._service = service

    def __getattr__(self, name: str) -> Any:
        return getattr(self._service, name)

    def status(self) -> dict[str, Any]:
        st = dict(self._service.status())
        st["last_cycle_s"] = 0.005
        st.pop("cycle_seconds", None)
        return st


@pytest.fixture
def synthetic() -> tuple[SyntheticService, LocalSource]:
    svc = SyntheticService(12, seed=1, wall=lambda: WALL)
    return svc, LocalSource(svc, period_s=None, label="synthetic")


@pytest.fixture
def utc() -> Iterator[None]:
    """Event times render in UTC (they are shown in local time)."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


@pytest.fixture
def sim(tmp_path: Path, utc: None) -> tuple[Any, LocalSource]:
    """The simulated two-tier machine (multi-cgroup, seed 0) with fixed clocks."""
    from tierctl.sim.live import sim_service

    svc = sim_service(
        "multi-cgroup",
        seed=0,
        epochs=80,
        state_dir=tmp_path / "state",
        clock=lambda: 100.0,
        wall=lambda: WALL,
    )
    return svc, LocalSource(FixedTimings(svc), period_s=None, label="sim:multi-cgroup")
