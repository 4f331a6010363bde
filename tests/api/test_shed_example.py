"""examples/shed_on_pressure.py, the documented 20-line client, against a real socket API server:
it receives the pressure notification for its cgroup (and ignores others) and sheds."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from tierctl.api.server import ApiServer, Limits

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "shed_on_pressure.py"


class Events:
    """Just enough of a Service for a subscription: an event log."""

    def __init__(self) -> None:
        self.log: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def events_since(self, since: int) -> tuple[int, list[dict[str, Any]]]:
        with self.lock:
            return len(self.log), [e for e in self.log if e["seq"] > since]

    def emit(self, **e: Any) -> None:
        with self.lock:
            self.log.append({"seq": len(self.log) + 1, "time": time.time(), **e})


def test_the_example_client_sheds_on_its_own_notification() -> None:
    code = EXAMPLE.read_text().split('"""')[-1]  # after the docstring
    assert len([ln for ln in code.splitlines() if ln.strip()]) <= 20  # the documented size
    svc = Events()
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "t.sock"
        with ApiServer(svc, path, limits=Limits(poll_interval=0.05)):  # type: ignore[arg-type]
            p = subprocess.Popen(
                [sys.executable, str(EXAMPLE), "--socket", str(path), "--cgroup", "/jobs/etl", "--once"],
                stdout=subprocess.PIPE,
                text=True,
            )
            time.sleep(0.5)  # subscribed: "from now on"
            svc.emit(kind="pressure_notify", cgroup="/other", bytes=1, deadline=1.0)
            svc.emit(kind="pressure_notify", cgroup="/jobs/etl", bytes=1 << 30, deadline=1e9 + 10)
            out, _ = p.communicate(timeout=30)
    assert p.returncode == 0
    assert out.splitlines() == [f"shedding {1 << 30} bytes before 1000000010"]
