"""The TUI against a real daemon in the two-tier guest: real node 0 / node 1 numbers, a pin that moves pages.

Headless (``App.run_test``) over the daemon's socket; collection is driven by the test, so the slow
guest (TCG) only makes it wait longer, not fail.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.tui.conftest import screen_text, settle
from tests.vm.test_vm_service import in_cgroup
from tierctl.kernel.cgroupfs import CgroupFS
from tierctl.kernel.topology import SysfsTopology
from tierctl.tui.app import TierctlApp
from tierctl.tui.detail import DetailScreen
from tierctl.tui.modals import PinScreen
from tierctl.tui.model import fmt_bytes
from tierctl.tui.source import SocketSource
from tierctl.tui.table import CgroupTable

pytestmark = pytest.mark.vm
REPO = Path(__file__).resolve().parents[2]


def test_tui_shows_the_guest_tiers_and_pins_through_the_daemon(tmp_path: Path) -> None:
    fs = CgroupFS()
    base = f"tierctl-tui-{os.getpid()}"
    fs.create(base)
    fs.create(f"{base}/app")
    profiles = tmp_path / "profiles"
    shutil.copytree(REPO / "tierctl" / "data" / "profiles", profiles)
    sock = tmp_path / "tierctl.sock"
    child = in_cgroup((8, 2), f"{base}/app")  # 10 MiB, first touched on node 0 (DRAM)
    daemon = subprocess.Popen(
        [
            sys.executable, "-m", "tierctl", "daemon", "--profiles", str(profiles),
            "--state-dir", str(tmp_path / "state"), "--scope", f"/{base}", "--socket", str(sock),
            "--cycle-seconds", "1",
        ],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    topo = SysfsTopology().read().to_json()
    page = topo["page_size"]
    caps = {n["id"]: fmt_bytes(n["capacity_pages"] * page) for n in topo["nodes"]}
    path = f"/{base}/app"
    src = SocketSource(sock, timeout=30.0)
    app = TierctlApp(src, refresh_s=None, start_source=False)

    async def until(pilot, what, timeout: float = 240.0) -> str:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            await app.collect()
            await settle(app, pilot)
            text = screen_text(app)
            if what(text):
                return text
            await asyncio.sleep(1.0)
        raise AssertionError(f"timed out; screen:\n{text}")

    async def waiting(pilot, what, timeout: float = 120.0) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while not what():
            assert time.monotonic() < deadline, [str(n.message) for n in app._notifications]
            await pilot.pause(0.2)

    async def main() -> None:
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda t: "running" in t.splitlines()[0] and "app" in t)
            await pilot.press("1")
            text = await until(pilot, lambda t: "node 1 slow" in t)
            assert "node 0 fast" in text
            assert f"free / {caps[0]}" in text and f"free / {caps[1]}" in text  # the guest's real nodes
            await pilot.press("2")
            assert app.query_one(CgroupTable).select_path(path)
            await pilot.press("p")
            await waiting(pilot, lambda: isinstance(app.screen, PinScreen))
            await pilot.press("s")  # as root: the daemon accepts the pin
            # the notification carries the pin's outcome (issue 16), not a blanket "pinned"
            await waiting(pilot, lambda: any("pin slow" in str(n.message) for n in app._notifications))
            await pilot.press("enter")
            await waiting(pilot, lambda: isinstance(app.screen, DetailScreen))
            screen = app.screen
            assert isinstance(screen, DetailScreen)
            # the detail's processes table fills node 1 as the daemon demotes the pinned cgroup
            await until(pilot, lambda t: "pin slow" in t and "node 1" in t and screen.detail is not None)

            def on_node1() -> int:
                procs = (screen.detail or {}).get("processes") or []
                return sum(int((p.get("pages_per_node") or {}).get("1", 0)) for p in procs)

            deadline = time.monotonic() + 240
            while on_node1() < (4 << 20) // page and time.monotonic() < deadline:
                await app.collect()
                await settle(app, pilot)
                await asyncio.sleep(1.0)
            assert on_node1() >= (4 << 20) // page, screen.detail
            assert app.problems == []

    try:
        deadline = time.monotonic() + 120
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert sock.exists(), "the daemon did not open its socket"
        asyncio.run(main())
    finally:
        src.stop()
        daemon.terminate()
        try:
            daemon.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.communicate()
        child.kill()
        for p in (f"{base}/app", base):
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                try:
                    fs.remove(p)
                    break
                except Exception:
                    time.sleep(0.1)
