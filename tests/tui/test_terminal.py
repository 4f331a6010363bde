"""A real terminal: ``tierctl tui --sim`` in tmux; pin a cgroup with keys and read the screen back."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REDIS = "/system/"  # at 80 columns the path keeps its slice (".slice" dropped) and the unit's tail
REDIS_TAIL = "er.service"


class Tmux:
    def __init__(self, name: str) -> None:
        self.base = ["tmux", "-L", name, "-f", "/dev/null"]

    def run(self, *args: str) -> str:
        return subprocess.run(
            [*self.base, *args], check=True, capture_output=True, text=True, timeout=20
        ).stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "tui")

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", "tui", *keys)

    def wait_for(self, what: Callable[[str], bool], timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if what(screen):
                return screen
            time.sleep(0.2)
        raise AssertionError(f"timed out; the screen was:\n{screen}")


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    if shutil.which("tmux") is None:
        pytest.fail("tmux is needed (scripts/test installs it)")
    t = Tmux(f"tierctl-test-{os.getpid()}")
    # Textual draws on stderr: leave it on the terminal
    cmd = f"cd {ROOT} && exec {sys.executable} -m tierctl tui --sim multi-cgroup --period 0.2 --refresh 0.3"
    t.run("new-session", "-d", "-s", "tui", "-x", "80", "-y", "24", "-e", "TERM=xterm-256color", cmd)
    try:
        yield t
    finally:
        subprocess.run([*t.base, "kill-server"], capture_output=True, timeout=20)


def row(screen: str, name: str) -> str:
    lines = [ln for ln in screen.splitlines() if name in ln]
    return lines[0] if lines else ""


def test_pin_a_cgroup_in_a_real_terminal(tmux: Tmux) -> None:
    first = tmux.wait_for(lambda s: REDIS in s and "running" in s and "ago" in s)
    assert "sim:multi-cgroup" in first and "/system/…" in first and "/ filter" in first
    assert "⇡" in first.splitlines()[0]  # the rates stay in the top bar at 80 columns
    tmux.keys("/")
    tmux.wait_for(lambda s: "filter: path" in s)
    tmux.keys("-l", "redis")  # literally
    tmux.keys("Enter")
    filtered = tmux.wait_for(lambda s: "cgroups 1/3" in s)
    assert "auto" in row(filtered, REDIS_TAIL)
    tmux.keys("p")
    tmux.wait_for(lambda s: "to which tier?" in s)
    tmux.keys("f")
    pinned = tmux.wait_for(lambda s: " fast" in row(s, REDIS_TAIL))
    assert "auto" not in row(pinned, REDIS_TAIL)
    tmux.keys("Escape")  # alone: ESC followed at once by a key reads as alt+key
    tmux.wait_for(lambda s: "cgroups 3/3" in s)
    tmux.keys("1")
    later = tmux.wait_for(lambda s: "node 0 fast" in s)
    assert "controller running" in later
    # pause: the screen says so everywhere, and the rates are not shown as live figures
    tmux.keys("Space")
    tmux.wait_for(lambda s: "Pause the controller" in s)
    tmux.keys("y")
    paused = tmux.wait_for(lambda s: "PAUSED" in s.splitlines()[0])
    top = paused.splitlines()[0]
    assert "⇡- ⇣- paused" in top and "ago" in top
    assert "space resume" in paused and "space pause" not in paused
    assert "promoted   paused" in paused and "paused: no pages move" in paused
    tmux.keys("q")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if subprocess.run([*tmux.base, "has-session", "-t", "tui"], capture_output=True).returncode != 0:
            break
        time.sleep(0.2)
    else:
        raise AssertionError("q did not quit")
