"""`tierctl daemon` as a process: SIGHUP with a broken profile keeps the old set, SIGTERM restores knobs."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tierctl.kernel.knobs import KnobGuard
from tierctl.samplers.hint import SETTINGS

pytestmark = pytest.mark.vm
REPO = Path(__file__).resolve().parents[2]


def test_daemon_signals(tmp_path: Path) -> None:
    profiles = tmp_path / "profiles"
    shutil.copytree(REPO / "tierctl" / "data" / "profiles", profiles)
    state = tmp_path / "state"
    probe = KnobGuard(tmp_path / "probe.json")
    before = {k: probe.get(k) for k, _, _ in SETTINGS if Path(k).exists()}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tierctl",
            "daemon",
            "--profiles",
            str(profiles),
            "--state-dir",
            str(state),
            "--scope",
            f"/tierctl-none-{os.getpid()}",
            "--hint-faults",
            "--cycle-seconds",
            "0.5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and probe.get("/proc/sys/kernel/numa_balancing") != "2":
            time.sleep(0.2)  # the sampler compiles, then the hint-fault knobs are set
        assert probe.get("/proc/sys/kernel/numa_balancing") == "2"
        (profiles / "broken.toml").write_text("[placement]\npin = 'warm'\n")
        proc.send_signal(signal.SIGHUP)
        time.sleep(1.5)
        assert proc.poll() is None  # a broken reload does not hurt the daemon
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "reload refused, running set kept" in err and "broken.toml" in err and "pin" in err
    assert {k: probe.get(k) for k in before} == before  # every knob restored at SIGTERM
    assert not (state / "knobs.json").exists() or KnobGuard(state / "knobs.json").pending() == []
