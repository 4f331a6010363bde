"""/healthz and /readyz on the real metrics listener (loopback), judged from the Service's own reports."""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest

pytest.importorskip("prometheus_client", reason="prometheus-client is not installed")

from tierctl.data import profiles_dir
from tierctl.service import metrics as m
from tierctl.sim.live import sim_service


def _get(addr: tuple[str, int], path: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(f"http://{addr[0]}:{addr[1]}{path}", timeout=10) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.headers.get("Content-Type", ""), e.read().decode()


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def world():
    """A snapshot the test edits, a clock it moves, and a server judging them."""
    state = {"snap": m.MetricsSnapshot(cycles=0, cycle_period_s=1.0, samplers=(m.SamplerSample("s", True),))}
    clock = Clock()
    srv = m.MetricsServer(lambda: state["snap"], port=0, health=m.Health(clock))
    srv.start()
    yield state, clock, srv
    srv.stop()


def test_ready_after_the_first_cycle_and_live_while_cycles_advance(world) -> None:
    state, clock, srv = world
    code, ctype, body = _get(srv.address, "/readyz")
    assert (code, ctype.split(";")[0]) == (503, "text/plain") and "no cycle completed" in body
    assert _get(srv.address, "/healthz")[0] == 200  # just started: the watch begins now
    for n in range(1, 6):  # a cycle a second, seen by probes (or scrapes)
        clock.t += 1
        state["snap"] = replace(state["snap"], cycles=n)
        code, _, body = _get(srv.address, "/healthz")
        assert code == 200 and f"cycle {n}," in body, body
    assert _get(srv.address, "/readyz")[:1] == (200,)
    # the loop stalls: live until max(3 x 1 s, 10 s) have passed without a new cycle, then 503
    clock.t += 9.5
    assert _get(srv.address, "/healthz")[0] == 200
    clock.t += 1
    code, _, body = _get(srv.address, "/healthz")
    assert code == 503 and "stalled: no cycle completed for 10.5 s (limit 10 s)" in body
    assert _get(srv.address, "/readyz")[0] == 200  # ready stays: it said it could work
    # it recovers
    state["snap"] = replace(state["snap"], cycles=6)
    assert _get(srv.address, "/healthz")[0] == 200
    # /metrics is still served beside them, and scrapes count as looks at the loop
    code, _, body = _get(srv.address, "/metrics")
    assert code == 200 and "tierctl_cycles_total 6.0" in body


def test_the_limit_follows_the_cycle_period(world) -> None:
    state, clock, srv = world
    state["snap"] = replace(state["snap"], cycles=1, cycle_period_s=5.0)
    _get(srv.address, "/metrics")  # a scrape sees cycle 1
    clock.t += 14.9
    assert _get(srv.address, "/healthz")[0] == 200
    clock.t += 0.2
    code, _, body = _get(srv.address, "/healthz")
    assert code == 503 and "(limit 15 s)" in body


def test_paused_is_live_and_ready_and_the_watch_restarts_on_resume(world) -> None:
    state, clock, srv = world
    state["snap"] = replace(state["snap"], state="paused")
    clock.t += 60
    code, _, body = _get(srv.address, "/healthz")
    assert code == 200 and body.startswith("ok: paused")
    assert _get(srv.address, "/readyz")[0] == 200  # paused before its first cycle
    state["snap"] = replace(state["snap"], state="running")
    clock.t += 5  # resumed 5 s ago, no cycle yet: still within the limit
    assert _get(srv.address, "/healthz")[0] == 200
    clock.t += 6
    assert _get(srv.address, "/healthz")[0] == 503


def test_a_reported_last_cycle_age_is_used_as_is(world) -> None:
    state, _, srv = world
    state["snap"] = replace(state["snap"], cycles=3, state="paused", last_cycle_age_s=42.0)
    code, _, body = _get(srv.address, "/healthz")
    assert code == 503 and "42.0 s" in body  # paused, but the Service says its loop is stuck
    state["snap"] = replace(state["snap"], last_cycle_age_s=0.5)
    assert _get(srv.address, "/healthz")[0] == 200


def test_stopped_or_unreadable_service_is_not_healthy(world) -> None:
    state, _, srv = world
    state["snap"] = replace(state["snap"], cycles=4, samplers=(m.SamplerSample("s", False, state="stopped"),))
    code, _, body = _get(srv.address, "/healthz")
    assert code == 503 and body.startswith("stopped")

    def broken() -> m.MetricsSnapshot:
        raise RuntimeError("lock poisoned")

    with m.MetricsServer(broken, port=0) as other:
        code, _, body = _get(other.address, "/healthz")
        assert code == 503 and "RuntimeError: lock poisoned" in body
        assert _get(other.address, "/readyz")[0] == 503


def test_health_of_a_real_service_on_the_simulator(tmp_path: Path) -> None:
    """The Service's own reports drive it: not ready before its first cycle, ready and live after,
    stalled when its cycles stop (a moved clock), and the snapshot knows the Service's period."""
    clock = Clock()  # the Service's and the health check's: the age comes from status()
    svc = sim_service("multi-cgroup", state_dir=tmp_path, profiles_dir=profiles_dir(), epochs=10, clock=clock)
    svc.start()
    try:
        with m.MetricsServer(lambda: m.snapshot_from_service(svc), port=0, health=m.Health(clock)) as srv:
            assert _get(srv.address, "/readyz")[0] == 503
            svc.cycle()
            assert _get(srv.address, "/readyz")[0] == 200
            code, _, body = _get(srv.address, "/healthz")
            assert code == 200 and "cycle 1," in body
            period = m.snapshot_from_service(svc).cycle_period_s
            assert period == svc.cfg.cycle_s
            clock.t += max(3 * period, 10) + 1
            assert _get(srv.address, "/healthz")[0] == 503
            svc.cycle()
            assert _get(srv.address, "/healthz")[0] == 200
    finally:
        svc.stop()
