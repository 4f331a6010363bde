"""Text captures of the main views at the three sizes the snapshots use (``python -m tests.tui.capture``):
the simulated machine (multi-cgroup, seed 0, 40 cycles, fixed clocks), as the snapshot tests set it up."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

from tests.tui.conftest import WALL, FixedTimings, drive, screen_text, settle
from tierctl.tui.app import TierctlApp
from tierctl.tui.source import LocalSource

SIZES = ((80, 24), (160, 45), (200, 60))
VIEWS = {
    "cgroups": (),
    "detail": ("k", "k", "enter"),
    "events": ("3",),
    "help": ("question_mark",),
    "pressure": ("4",),
    "overview": ("1",),
}


def capture(view: str, size: tuple[int, int], cycles: int = 40) -> str:
    from tierctl.sim.live import sim_service

    with tempfile.TemporaryDirectory() as d:
        svc = sim_service(
            "multi-cgroup",
            seed=0,
            epochs=80,
            state_dir=Path(d) / "state",
            clock=lambda: 100.0,
            wall=lambda: WALL,
        )
        src = LocalSource(FixedTimings(svc), period_s=None, label="sim:multi-cgroup")
        app = TierctlApp(src, refresh_s=None, start_source=False, clock=lambda: 100.0)
        out = ""

        async def main() -> None:
            nonlocal out
            async with app.run_test(size=size) as pilot:
                await drive(app, src, cycles)
                await settle(app, pilot)
                for k in VIEWS[view]:
                    await pilot.press(k)
                    await settle(app, pilot)
                out = screen_text(app)

        asyncio.run(main())
        return out


if __name__ == "__main__":
    os.environ["TZ"] = "UTC"
    time.tzset()
    views = sys.argv[1:] or list(VIEWS)
    for v in views:
        for s in SIZES:
            print(f"===== {v} {s[0]}x{s[1]} =====")
            print(capture(v, s))
