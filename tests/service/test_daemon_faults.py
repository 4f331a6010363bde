"""The daemon's overrides under faults, on the host: SIGKILL in the middle of a burst of mutations loses
no acknowledged override, and a torn or corrupt overrides file never stops the daemon.

The daemon here is a real process: the real Service, socket API server and run_daemon loop, over a fake
cgroup v2 tree (so the test may create cgroups to pin) with no sampler and nothing in scope, so it needs
neither root nor a second NUMA node. The guest tests (tests/vm/test_vm_daemon_faults.py) do the same with
``tierctl daemon`` itself on the real kernel.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tierctl.api.client import ApiClient
from tierctl.errors import TierctlError

REPO = Path(__file__).resolve().parents[2]
N_CGROUPS = 400
RUNNER = """
import os, sys, threading
from pathlib import Path
from tierctl.api.server import ApiServer
from tierctl.service.daemon import run_daemon
from tierctl.service.service import DaemonConfig, Service

profiles, state, cgroot, sock = map(Path, sys.argv[1:5])
cfg = DaemonConfig(profiles_dir=profiles, state_dir=state, scope=("/none",), cgroup_root=cgroot, samplers=())
svc = Service(cfg)
lock = threading.Lock()
api = ApiServer(svc, sock, service_lock=lock, socket_group=None, mutators_gid=os.getgid())
sys.exit(run_daemon(svc, cycle_s=0.2, front_ends=(api,), lock=lock))
"""


class Daemon:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.state = root / "state"
        self.sock = root / "d.sock"
        self.err = root / "daemon.err"
        self.proc: subprocess.Popen[bytes] | None = None
        self.profiles = REPO / "tierctl" / "data" / "profiles"

    def start(self) -> Daemon:
        args = [str(self.profiles), str(self.state), str(self.root / "cg"), str(self.sock)]
        with self.err.open("ab") as err:  # a file, not a pipe: nothing the daemon writes can block it
            self.proc = subprocess.Popen(
                [sys.executable, "-c", RUNNER, *args],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                env={**os.environ, "PYTHONPATH": str(REPO)},
            )
        deadline = time.monotonic() + 30
        while True:
            assert self.proc.poll() is None, f"the daemon exited: {self.stderr()}"
            try:
                with ApiClient(self.sock, timeout=5) as c:
                    c.call("status")
                return self
            except TierctlError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def call(self, op: str, **args: Any) -> Any:
        with ApiClient(self.sock, timeout=10) as c:
            return c.call(op, **args)

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> str:
        """SIGTERM; returns stderr. A daemon that does not exit 0 fails the test."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        assert self.proc.returncode == 0, self.stderr()
        return self.stderr()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    cg = tmp_path / "cg"
    cg.mkdir()
    (cg / "cgroup.controllers").write_text("cpu memory\n")  # a cgroup v2 root with the memory controller
    for i in range(N_CGROUPS):
        (cg / f"w{i}").mkdir()
    d = Daemon(tmp_path)
    yield d
    if d.proc is not None and d.proc.poll() is None:
        d.proc.kill()
        d.proc.wait()


def _burst(d: Daemon, start: int, acked: dict[str, Any], stop: threading.Event) -> None:
    """Mutations on distinct cgroups, one connection, until the daemon dies: pins and quotas alternate."""
    try:
        with ApiClient(d.sock, timeout=10) as c:
            for i in range(start, N_CGROUPS):
                if stop.is_set():
                    return
                path = f"/w{i}"
                if i % 3 == 2:
                    c.call("quota", path=path, fast_min=f"{i}M", fast_max=None)
                    acked[path] = {"fast_min": f"{i}M", "fast_max": None}
                else:
                    tier = "fast"  # "slow" is refused on a one-node host (no slow tier: issue 16)
                    c.call("pin", path=path, tier=tier)
                    acked[path] = tier
    except TierctlError:
        return  # the daemon was killed: the request in flight is not acknowledged


def _overrides(d: Daemon) -> dict[str, Any]:
    st = d.call("status")
    assert st["overrides"]["version"] == 1
    return {**st["overrides"]["pins"], **st["overrides"]["quotas"]}


def test_sigkill_during_a_burst_of_mutations_loses_no_acknowledged_override(daemon: Daemon) -> None:
    acked: dict[str, Any] = {}
    start = 0
    for _ in range(3):  # three crashes in a row, each in the middle of a burst
        daemon.start()
        assert _overrides(daemon) == acked  # everything acknowledged before the last crash is back
        before = len(acked)
        stop = threading.Event()
        t = threading.Thread(target=_burst, args=(daemon, start, acked, stop))
        t.start()
        deadline = time.monotonic() + 30
        while len(acked) < before + 15 and t.is_alive() and time.monotonic() < deadline:
            time.sleep(0.002)
        assert len(acked) >= before + 15, "the burst did not get going"
        daemon.kill()
        stop.set()
        t.join(30)
        assert not t.is_alive()
        start = max(int(p[2:]) for p in acked) + 2  # skip the one that was in flight at the kill
        daemon.start()
        got = _overrides(daemon)
        in_flight = {k: v for k, v in got.items() if k not in acked}
        # every acknowledged override survived; at most the one request in flight at the kill got in too
        assert {k: got.get(k) for k in acked} == acked
        assert len(in_flight) <= 1 and all(int(k[2:]) == start - 1 for k in in_flight)
        for k in in_flight:  # it was persisted before the kill: the operator sees it, so count it
            acked[k] = in_flight[k]
        events = daemon.call("events", since=0)["events"]
        assert not [e for e in events if e["kind"] == "overrides"]  # the file was never torn
        daemon.kill()
    daemon.start()
    assert _overrides(daemon) == acked
    assert len(acked) >= 45
    daemon.stop()


def test_a_torn_overrides_file_is_kept_aside_and_the_daemon_runs(daemon: Daemon) -> None:
    state = daemon.state
    state.mkdir()
    whole = json.dumps({"version": 1, "pins": {"/w1": "slow", "/w2": "fast"}, "quotas": {}, "paused": True})
    torn = whole[: len(whole) // 2]  # what a non-atomic writer leaves after a crash
    (state / "overrides.json").write_text(torn)
    (state / ".overrides.json.4242.tmp").write_text(whole[:10])  # left by a save killed before its rename
    daemon.start()
    st = daemon.call("status")
    assert st["overrides"] == {"version": 1, "pins": {}, "quotas": {}, "paused": False}
    assert st["state"] == "running"
    assert (state / "overrides.json.corrupt").read_text() == torn  # kept, byte for byte, for the operator
    problems = [e for e in daemon.call("events", since=0)["events"] if e["kind"] == "overrides"]
    assert len(problems) == 1 and "unreadable overrides" in problems[0]["message"]
    assert "overrides.json.corrupt" in problems[0]["message"]
    # the daemon goes on normally: a new override is persisted and survives the next crash
    daemon.call("pin", path="/w3", tier="fast")  # the tier every host has
    daemon.kill()
    daemon.start()
    assert daemon.call("status")["overrides"]["pins"] == {"/w3": "fast"}
    assert not [e for e in daemon.call("events", since=0)["events"] if e["kind"] == "overrides"]
    assert not list(state.glob(".overrides.json.*.tmp"))  # a stale temporary file is cleared at load
    daemon.stop()


@pytest.mark.parametrize(
    "text",
    [
        "",  # an empty file (a crash between create and write on a filesystem without ordering)
        "[]",
        '{"pins": ["/w1"]}',
        '{"pins": {"/w1": "warm"}}',
        '{"pins": null}',
        '{"quotas": {"/w1": 5}}',
        '{"quotas": {"/w1": {"fast_min": "lots"}}}',  # would fail every cycle if it were let in
        '{"paused": "no"}',  # bool("no") is True: a string must not pause the daemon
        "\x00\x00\x00\x00",
    ],
)
def test_every_kind_of_bad_overrides_file_starts_the_daemon_without_them(daemon: Daemon, text: str) -> None:
    daemon.state.mkdir()
    (daemon.state / "overrides.json").write_text(text)
    daemon.start()
    assert daemon.call("status")["overrides"]["pins"] == {}
    assert (daemon.state / "overrides.json.corrupt").read_text() == text
    daemon.stop()


def test_sigusr1_dumps_every_thread_and_the_daemon_goes_on(daemon: Daemon) -> None:
    daemon.start()
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while "run_daemon" not in daemon.stderr() and time.monotonic() < deadline:
        time.sleep(0.05)
    dump = daemon.stderr()
    assert "run_daemon" in dump and "_accept_loop" in dump  # the loop and the API's accept thread
    assert daemon.call("status")["state"] == "running"
    daemon.proc.send_signal(signal.SIGHUP)  # a reload still logs (outside the Service lock)
    deadline = time.monotonic() + 10
    while "profiles reloaded" not in daemon.stderr() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "tierctl daemon: profiles reloaded: " in daemon.stderr()
    daemon.stop()
