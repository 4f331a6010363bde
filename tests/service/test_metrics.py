"""The metrics endpoint: the table is the single source, a scrape shows every metric from one snapshot."""

from __future__ import annotations

import collections
import math
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip(
    "prometheus_client", reason="prometheus-client is not installed (the daemon's metrics endpoint needs it)"
)

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_prometheus

from tierctl.errors import InputError, UnavailableError
from tierctl.service import metrics as m


def _snapshot() -> m.MetricsSnapshot:
    ct = m.CycleTimes()
    for s in (0.0004, 0.003, 0.003, 0.2, 30.0):
        ct.observe(s)
    return m.MetricsSnapshot(
        version="0.1.0",
        state="paused",
        cycles=42,
        tracked_pages=262144,
        promoted_pages=1000,
        demoted_pages=300,
        outcomes={"moved": 1300, "busy": 7, "gone": 2},
        samplers=(
            m.SamplerSample(
                "bpf-fault", True, samples=5000, dropped=3, bpf_run_seconds=0.5, user_cpu_seconds=1.25
            ),
            m.SamplerSample("access-bits", False),
        ),
        cycle_seconds=ct.snapshot(),
        cgroups=(
            m.CgroupSample(
                "/system.slice/redis.service",
                "cache",
                "fast",
                {"0": 1 << 30, "1": 1 << 20},
                1 << 30,
                1 << 20,
                512 << 20,
                0.97,
            ),
            m.CgroupSample("/batch.slice", "batch", "auto", {"1": 4 << 30}, 0, 4 << 30, 0, None),
        ),
    )


def _scrape(addr: tuple[str, int], accept: str | None = None) -> tuple[str, str]:
    req = urllib.request.Request(f"http://{addr[0]}:{addr[1]}/metrics")
    if accept:
        req.add_header("Accept", accept)
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.headers.get("Content-Type", ""), r.read().decode()


@pytest.fixture
def server():
    srv = m.MetricsServer(_snapshot, host="127.0.0.1", port=0)
    srv.start()
    yield srv
    srv.stop()


def _samples(families) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in families:
        for s in fam.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in out, f"duplicate sample {key}"
            out[key] = s.value
    return out


# ---- the table ----------------------------------------------------------------------------------
def test_table_is_the_single_source_and_follows_naming():
    assert len(m.TABLE) == len(m.METRICS)
    for spec in m.METRICS:
        assert spec.name.startswith("tierctl_")
        assert (spec.kind == "counter") == spec.name.endswith("_total")
        if spec.unit:
            assert spec.name.removesuffix("_total").endswith("_" + spec.unit)
    names = set(m.TABLE)
    assert {
        "tierctl_cgroup_node_memory_bytes",
        "tierctl_cgroup_tier_memory_bytes",
        "tierctl_cgroup_hot_memory_bytes",
        "tierctl_cgroup_estimated_fast_hit_ratio",
        "tierctl_mover_promoted_pages_total",
        "tierctl_mover_demoted_pages_total",
        "tierctl_mover_pages_total",
        "tierctl_sampler_up",
        "tierctl_sampler_samples_total",
        "tierctl_sampler_dropped_total",
        "tierctl_sampler_bpf_run_seconds_total",
        "tierctl_sampler_user_cpu_seconds_total",
        "tierctl_cycle_duration_seconds",
        "tierctl_cycles_total",
        "tierctl_cgroup_override_pin",
        "tierctl_controller_state",
    } <= names


def test_declaring_a_metric_twice_is_refused():
    spec = m.TABLE["tierctl_cycles_total"]
    with pytest.raises(ValueError, match="declared twice"):
        m.build_table([*m.METRICS, spec])
    # a gauge whose name is another metric's sample name clashes as well
    clash = m.MetricSpec("tierctl_cycle_duration_seconds_count", "gauge", "", "x", (), lambda s: [])
    with pytest.raises(ValueError, match="declared twice"):
        m.build_table([*m.METRICS, clash])
    # and a registry refuses a second collector over the same table
    reg = CollectorRegistry()
    reg.register(m.SnapshotCollector(_snapshot))
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        reg.register(m.SnapshotCollector(_snapshot))


@pytest.mark.parametrize(
    ("name", "kind", "unit", "labels", "match"),
    [
        ("memory_bytes", "gauge", "bytes", (), "tierctl_"),
        ("tierctl_moves", "counter", "", (), "_total"),
        ("tierctl_moves_total", "gauge", "", (), "_total"),
        ("tierctl_cycle_time", "gauge", "seconds", (), r"_seconds"),
        ("tierctl_cycle_seconds", "gauge", "", (), "unit"),
        ("tierctl_size_bytes", "gauge", "bytes", ("node", "node"), "repeated"),
        ("tierctl_latency_seconds", "histogram", "seconds", ("le",), "label"),
        ("tierctl_size_kilobytes", "gauge", "kilobytes", (), "base units"),
    ],
)
def test_spec_validation(name, kind, unit, labels, match):
    with pytest.raises(ValueError, match=match):
        m.MetricSpec(name, kind, unit, "help", labels, lambda s: [])


# ---- the scrape ---------------------------------------------------------------------------------
def test_scrape_has_every_declared_metric_with_type_help_labels(server):
    ctype, text = _scrape(server.address)
    assert ctype.startswith("text/plain")
    families = list(parse_prometheus(text))
    by_name = {}
    for fam in families:
        assert fam.name not in by_name, f"family {fam.name} twice"
        by_name[fam.name] = fam
    # the Prometheus text parser names counter families without _total
    expected = {s.name.removesuffix("_total"): s for s in m.METRICS}
    assert set(by_name) == set(expected)
    for name, spec in expected.items():
        fam = by_name[name]
        assert fam.type == spec.kind
        assert fam.documentation == spec.help
        for s in fam.samples:
            assert set(s.labels) - {"le"} == set(spec.labels), (name, s)
    _samples(families)  # no duplicate series


def test_scrape_values_come_from_the_snapshot(server):
    _, text = _scrape(server.address)
    v = _samples(parse_prometheus(text))
    redis = "/system.slice/redis.service"
    assert v[("tierctl_cycles_total", ())] == 42
    assert v[("tierctl_tracked_pages", ())] == 262144
    assert v[("tierctl_build_info", (("version", "0.1.0"),))] == 1
    assert v[("tierctl_controller_state", (("state", "paused"),))] == 1
    assert v[("tierctl_controller_state", (("state", "running"),))] == 0
    assert v[("tierctl_mover_promoted_pages_total", ())] == 1000
    assert v[("tierctl_mover_demoted_pages_total", ())] == 300
    assert v[("tierctl_mover_pages_total", (("outcome", "moved"),))] == 1300
    assert v[("tierctl_mover_pages_total", (("outcome", "target_full"),))] == 0  # every outcome, from 0
    assert v[("tierctl_sampler_up", (("sampler", "bpf-fault"),))] == 1
    assert v[("tierctl_sampler_up", (("sampler", "access-bits"),))] == 0
    assert v[("tierctl_sampler_samples_total", (("sampler", "bpf-fault"),))] == 5000
    assert v[("tierctl_sampler_dropped_total", (("sampler", "bpf-fault"),))] == 3
    assert v[("tierctl_sampler_bpf_run_seconds_total", (("sampler", "bpf-fault"),))] == 0.5
    assert v[("tierctl_sampler_user_cpu_seconds_total", (("sampler", "bpf-fault"),))] == 1.25
    assert v[("tierctl_cgroup_node_memory_bytes", (("cgroup", redis), ("node", "0")))] == 1 << 30
    assert v[("tierctl_cgroup_node_memory_bytes", (("cgroup", redis), ("node", "1")))] == 1 << 20
    assert v[("tierctl_cgroup_tier_memory_bytes", (("cgroup", "/batch.slice"), ("tier", "slow")))] == 4 << 30
    assert v[("tierctl_cgroup_hot_memory_bytes", (("cgroup", redis),))] == 512 << 20
    assert v[("tierctl_cgroup_estimated_fast_hit_ratio", (("cgroup", redis),))] == 0.97
    assert ("tierctl_cgroup_estimated_fast_hit_ratio", (("cgroup", "/batch.slice"),)) not in v  # unknown
    assert v[("tierctl_cgroup_override_pin", (("cgroup", redis), ("pin", "fast")))] == 1
    assert v[("tierctl_cgroup_override_pin", (("cgroup", redis), ("pin", "auto")))] == 0
    assert v[("tierctl_cgroup_override_pin", (("cgroup", "/batch.slice"), ("pin", "auto")))] == 1
    assert v[("tierctl_cgroup_override_pin", (("cgroup", "/batch.slice"), ("pin", "fast")))] == 0
    assert v[("tierctl_cgroup_profile_info", (("cgroup", redis), ("profile", "cache")))] == 1
    # histogram: cumulative buckets, count and sum
    assert v[("tierctl_cycle_duration_seconds_bucket", (("le", "0.001"),))] == 1
    assert v[("tierctl_cycle_duration_seconds_bucket", (("le", "0.005"),))] == 3
    assert v[("tierctl_cycle_duration_seconds_bucket", (("le", "10.0"),))] == 4
    assert v[("tierctl_cycle_duration_seconds_bucket", (("le", "+Inf"),))] == 5
    assert v[("tierctl_cycle_duration_seconds_count", ())] == 5
    assert math.isclose(v[("tierctl_cycle_duration_seconds_sum", ())], 30.2064)


def test_openmetrics_scrape_has_units(server):
    ctype, text = _scrape(server.address, accept="application/openmetrics-text; version=1.0.0")
    assert ctype.startswith("application/openmetrics-text")
    assert text.rstrip().endswith("# EOF")
    fams = {f.name: f for f in parse_openmetrics(text)}
    assert set(fams) == {s.name.removesuffix("_total") for s in m.METRICS}
    for spec in m.METRICS:
        fam = fams[spec.name.removesuffix("_total")]
        assert (fam.type, fam.unit, fam.documentation) == (spec.kind, spec.unit, spec.help)


def test_one_snapshot_per_scrape():
    calls = collections.Counter()

    def snap():
        calls["n"] += 1
        return _snapshot()

    with m.MetricsServer(snap, port=0) as srv:
        _scrape(srv.address)
        _scrape(srv.address)
    assert calls["n"] == 2  # describe() at registration took none


def test_failing_snapshot_fails_the_scrape_not_the_server(caplog):
    state = {"fail": True}

    def snap():
        if state["fail"]:
            raise RuntimeError("service is busy")
        return _snapshot()

    with m.MetricsServer(snap, port=0) as srv:
        with pytest.raises(urllib.error.HTTPError) as err:
            _scrape(srv.address)
        err.value.close()
        assert err.value.code == 500
        state["fail"] = False
        assert "tierctl_cycles_total 42.0" in _scrape(srv.address)[1]
    assert "taking the snapshot failed" in caplog.text


def test_private_registry_default_untouched():
    before = set(REGISTRY._names_to_collectors)
    with m.MetricsServer(_snapshot, port=0) as srv:
        assert srv.registry is not REGISTRY
        _scrape(srv.address)
        after = set(REGISTRY._names_to_collectors)
    assert after == before
    assert not any(n.startswith("tierctl_") for n in after)
    assert REGISTRY.get_sample_value("tierctl_cycles_total") is None


def test_server_lifecycle():
    srv = m.MetricsServer(_snapshot, port=0)
    assert srv.address is None  # nothing listens until start()
    host, port = srv.start()
    assert host == "127.0.0.1" and port > 0
    with pytest.raises(RuntimeError):
        srv.start()
    # the port is taken: a second server says so with an UnavailableError
    other = m.MetricsServer(_snapshot, port=port)
    with pytest.raises(UnavailableError, match="cannot listen"):
        other.start()
    srv.stop()
    srv.stop()  # idempotent
    assert srv.address is None
    assert m.MetricsServer(_snapshot).port == 9464 and m.MetricsServer(_snapshot).host == "127.0.0.1"


@pytest.mark.parametrize(
    ("text", "want"),
    [("9464", ("127.0.0.1", 9464)), ("0.0.0.0:9100", ("0.0.0.0", 9100)), ("[::1]:9464", ("::1", 9464))],
)
def test_parse_listen(text, want):
    assert m.parse_listen(text) == want


@pytest.mark.parametrize("text", ["", "host:", "::1:9464", "localhost:99999", ":80", "a:b"])
def test_parse_listen_errors(text):
    with pytest.raises(InputError):
        m.parse_listen(text)


# ---- from the service ---------------------------------------------------------------------------
class _FakeService:
    def __init__(self, status, cgroups):
        self._status, self._cgroups = status, cgroups

    def status(self):
        return self._status

    def cgroups(self):
        return self._cgroups

    def pressure_status(self):
        return {}

    def metrics_facts(self):
        return m.MetricsFacts()


def test_snapshot_from_service_maps_the_contract():
    ct = m.CycleTimes()
    ct.observe(0.02)
    svc = _FakeService(
        {
            "version": "0.1.0",
            "state": "dry-run",
            "cycle": 9,
            "uptime_s": 12.5,
            "tracked_pages": 77,
            "last_cycle_s": 0.02,
            "moved": {"promoted": 5, "demoted": 2, "outcomes": {"moved": 7, "dry_run": 3}},
            "samplers": [
                {
                    "name": "bpf-fault",
                    "state": "running",
                    "reason": "",
                    "health": {"samples": 10, "dropped": 1, "cpu_seconds": 0.5, "bpf_run_ns": 2_000_000_000},
                },
                {"name": "damon", "state": "unavailable", "reason": "no DAMON"},
            ],
            "profiles": ["cache"],
            "overrides": {"/a": {"pin": "slow"}},
            "cycle_seconds": ct.to_json(),
        },
        [
            {
                "path": "/a",
                "profile": "cache",
                "override": {"pin": "slow"},
                "bytes_per_node": {"0": 4096, 1: 8192},
                "fast_bytes": 4096,
                "slow_bytes": 8192,
                "hot_bytes": 4096,
                "est_fast_hit_ratio": 0.5,
            },
            {
                "path": "/b",
                "profile": None,
                "override": None,
                "bytes_per_node": {},
                "est_fast_hit_ratio": None,
            },
            {"path": "/c", "profile": "default", "override": "fast"},
        ],
    )
    s = m.snapshot_from_service(svc)
    assert (s.version, s.state, s.cycles, s.tracked_pages) == ("0.1.0", "dry-run", 9, 77)
    assert (s.promoted_pages, s.demoted_pages, dict(s.outcomes)) == (5, 2, {"moved": 7, "dry_run": 3})
    assert s.samplers == (
        m.SamplerSample("bpf-fault", True, 10, 1, 2.0, 0.5, "running"),
        m.SamplerSample("damon", False, 0, 0, 0.0, 0.0, "unavailable"),
    )
    assert s.cycle_seconds == ct.snapshot()
    a, b, c = s.cgroups
    assert a == m.CgroupSample("/a", "cache", "slow", {"0": 4096, "1": 8192}, 4096, 8192, 4096, 0.5)
    assert (b.pin, b.profile, b.est_fast_hit_ratio) == ("auto", None, None)
    assert c.pin == "fast"
    # an explicit accumulator wins; a status without histogram gives an empty one
    other = m.CycleTimes()
    assert m.snapshot_from_service(svc, cycle_times=other).cycle_seconds.count == 0
    empty = m.snapshot_from_service(_FakeService({}, []))
    assert empty.cycle_seconds.count == 0 and empty.cgroups == ()
    # and the whole table renders from it (unknown controller state shown too)
    fams = {f.name: f for f in m.render(m.MetricsSnapshot(state="stopping"))}
    states = {s.labels["state"]: s.value for s in fams["tierctl_controller_state"].samples}
    assert states == {"running": 0, "paused": 0, "dry-run": 0, "stopping": 1}


def test_cycle_times_buckets_are_le():
    ct = m.CycleTimes((0.1, 1.0))
    for x in (0.1, 0.5, 1.0, 1.5):
        ct.observe(x)
    h = ct.snapshot()
    assert h.counts == (1, 2, 1) and h.count == 4
    assert h.cumulative() == [("0.1", 1.0), ("1.0", 3.0), ("+Inf", 4.0)]
    with pytest.raises(ValueError):
        m.CycleHistogram((1.0, 0.5), (0, 0, 0))


def test_docs_table_matches_the_declarations():
    doc = (Path(__file__).resolve().parents[2] / "docs" / "metrics.md").read_text()
    rows = {ln.split("|")[1].strip().strip("`"): ln for ln in doc.splitlines() if ln.startswith("| `")}
    for spec in m.METRICS:
        cells = [c.strip() for c in rows[spec.name].split("|")[1:-1]]
        assert cells[1:] == [spec.kind, spec.unit or "—", ", ".join(spec.labels) or "—", spec.help], spec.name


def test_the_real_service_is_a_metrics_source(tmp_path):
    """The Service's typed reads are what the snapshot takes (no attribute probing): a simulated
    daemon's samplers, outcomes and cycle period arrive whole."""
    from tierctl.data import profiles_dir
    from tierctl.sim.live import sim_service

    svc = sim_service("multi-cgroup", state_dir=tmp_path, profiles_dir=profiles_dir(), epochs=6)
    for _ in range(4):
        svc.cycle()
    facts = svc.metrics_facts()
    assert isinstance(facts, m.MetricsFacts) and set(facts.heat) == {c["path"] for c in svc.cgroups()}
    assert (facts.knobs_set, facts.knobs_drifted, facts.knobs_unrestored) == (0, 0, 0)  # no knobs here
    s = m.snapshot_from_service(svc)
    assert s.samplers and all(x.up for x in s.samplers) and s.samplers[0].samples > 0
    assert sum(s.outcomes.values()) == svc.status()["moved"]["promoted"] + svc.status()["moved"]["demoted"]
    assert s.cycle_period_s == svc.cfg.cycle_s


def test_a_flood_of_idle_connections_cannot_grow_threads_or_wedge_scrapes(
    server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 12, the class of "a client can wedge the daemon", on the metrics port: idle connections
    beyond MAX_CLIENTS are closed at once, the rest time out, and a scrape works again afterwards."""
    import socket
    import threading
    import time

    before = threading.active_count()
    idle = [socket.create_connection(server.address) for _ in range(m.MAX_CLIENTS + 40)]
    try:
        deadline = time.monotonic() + 5
        bound = 2 * m.MAX_CLIENTS  # a thread per request and its deadline timer
        while server._httpd.refused < 40 and time.monotonic() < deadline:
            assert threading.active_count() - before <= bound
            time.sleep(0.05)
        assert threading.active_count() - before <= bound
        assert server._httpd.refused >= 40
    finally:
        for s in idle:
            s.close()
    deadline = time.monotonic() + m.REQUEST_TIMEOUT_S + 5
    while True:  # the idle ones are gone once the client closes (or after the request timeout)
        try:
            _, body = _scrape(server.address)
            break
        except (urllib.error.URLError, ConnectionError):
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert "tierctl_cycles_total" in body


def test_a_client_trickling_bytes_loses_its_slot(server, capsys) -> None:
    """A client that sends a byte every second keeps each read alive but not the request: its slot
    is freed at the request deadline, and no traceback reaches the daemon's stderr."""
    import socket
    import time

    s = socket.create_connection(server.address)
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < 2 * m.REQUEST_TIMEOUT_S + 3:
            try:
                s.sendall(b"G")
            except OSError:
                break  # dropped
            time.sleep(1.0)
        else:
            raise AssertionError("a trickling client kept its slot past the request deadline")
    finally:
        s.close()
    assert time.monotonic() - t0 <= 2 * m.REQUEST_TIMEOUT_S + 3
    _, body = _scrape(server.address)
    assert "tierctl_cycles_total" in body
    assert "Traceback" not in capsys.readouterr().err
