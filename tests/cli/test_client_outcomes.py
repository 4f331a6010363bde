"""tierctl pin/unpin/quota/migrate print the real outcome and follow it with --wait; tierctl status is a
readable summary (issue 16, items 2 and 7), against a simulated daemon behind the real socket API."""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.test_api import run_cli as run
from tierctl.api.server import ApiServer, Limits
from tierctl.cli import client_cmds
from tierctl.service.service import Service
from tierctl.sim.live import sim_service

BATCH = "/batch.slice/nightly-etl.service"
CACHE = "/system.slice/redis-server.service"


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[Service, Path]]:
    svc = sim_service(state_dir=tmp_path / "state", wall=lambda: 1e9)
    for _ in range(10):
        svc.cycle()
    with tempfile.TemporaryDirectory(prefix="tc-", dir="/tmp") as d:  # AF_UNIX paths <= 107 bytes
        path = Path(d) / "s.sock"
        with ApiServer(
            svc,
            path,
            limits=Limits(service_timeout=5.0),
            credentials=lambda s: (os.getpid(), 0, 0),
            socket_group=None,
        ):
            yield svc, path


def test_pin_prints_the_outcome_not_a_bare_pinned(
    daemon: tuple[Service, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    svc, sock = daemon
    code, out, _ = run(["pin", BATCH, "--tier", "fast", "--socket", str(sock)], capsys)
    assert code == 0
    assert out == "accepted     pin fast: accepted; 25% of 32,768 pages in fast\n"
    svc.cycle()
    code, out, _ = run(["status", "--socket", str(sock)], capsys)
    assert f"{BATCH} pinned to fast: in_progress — pin fast: waiting for room in the fast tier" in out


def test_wait_follows_the_outcome_until_stuck(
    daemon: tuple[Service, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    svc, sock = daemon
    monkeypatch.setattr(client_cmds, "POLL_S", 0.0)
    real_call = client_cmds._call

    def call_and_cycle(args: argparse.Namespace, op: str, **kw: Any) -> Any:
        if op == "status":
            svc.cycle()  # the daemon's loop, one cycle per poll
        return real_call(args, op, **kw)

    monkeypatch.setattr(client_cmds, "_call", call_and_cycle)
    code, out, _ = run(["pin", BATCH, "--tier", "fast", "--wait", "30", "--socket", str(sock)], capsys)
    lines = out.splitlines()
    assert code == 1  # not done
    assert [ln.split()[0] for ln in lines] == ["accepted", "in_progress", "stuck"]
    assert "stuck for 5 cycles, waiting for room in the fast tier" in lines[-1]


def test_quota_and_migrate_commands(daemon: tuple[Service, Path], capsys: pytest.CaptureFixture[str]) -> None:
    svc, sock = daemon
    run(["pin", BATCH, "--tier", "fast", "--socket", str(sock)], capsys)
    code, out, _ = run(["quota", BATCH, "--fast-max", "10%", "--socket", str(sock)], capsys)
    assert code == 0 and "quota fast_max=10%: stored, inactive while pinned to fast" in out
    assert svc.overrides.quotas[BATCH] == {"fast_min": None, "fast_max": "10%"}
    code, out, err = run(["quota", BATCH, "--socket", str(sock)], capsys)
    assert code == 2 and "--clear" in err
    code, out, _ = run(["quota", BATCH, "--clear", "--socket", str(sock)], capsys)
    assert code == 0 and BATCH not in svc.overrides.quotas
    code, out, _ = run(["migrate", CACHE, "--socket", str(sock)], capsys)
    assert code == 0 and out.startswith(
        "accepted     migrate /system.slice/redis-server.service: a placement"
    )
    code, out, _ = run(["migrate", "--json", "--socket", str(sock)], capsys)
    assert code == 0 and '"queued": "all"' in out and '"state": "accepted"' in out


def test_pin_to_a_missing_tier_is_an_error_naming_the_nodes(
    daemon: tuple[Service, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from tierctl.core.topology import Node, Topology

    svc, sock = daemon
    svc.editor.topology = lambda: Topology((Node(0, 0, 16384, 100),))
    code, out, err = run(["pin", CACHE, "--tier", "slow", "--socket", str(sock)], capsys)
    assert code == 2 and out == ""
    assert err == (
        "tierctl: error: tier: no slow tier on this machine to pin to "
        "(nodes present: 0 (tier 0, fast, 64.0M))\n"
    )


def test_status_is_a_summary(daemon: tuple[Service, Path], capsys: pytest.CaptureFixture[str]) -> None:
    svc, sock = daemon
    svc.pin(CACHE, "slow")
    code, out, _ = run(["status", "--socket", str(sock)], capsys)
    assert code == 0
    assert "bounds=" not in out and "counts=" not in out
    lines = out.splitlines()
    width = len(lines[0]) - len("running")  # labels are padded to one width
    label = {ln[:width].strip(): ln[width:] for ln in lines if ln[:width].strip()}
    assert label["state"] == "running" and label["cycle"].startswith("10 (last took ")
    assert label["cycle time"].startswith("p50 ") and ", p90 " in label["cycle time"]
    assert label["cycle time"].endswith("(10 cycles)")
    assert (
        label["samplers"].startswith("sim: running, ") and "simulated 1% access sampling" in label["samplers"]
    )
    assert (
        label["overrides"]
        == f"{CACHE} pinned to slow: accepted — pin slow: accepted; 53% of 8,192 pages in fast"
    )
    assert label["pods"].startswith("not looked up")
    assert all(len(ln) < 400 for ln in lines)
    code, out, _ = run(["status", "--json", "--socket", str(sock)], capsys)
    assert '"cycle_seconds"' in out and '"outcomes"' in out
