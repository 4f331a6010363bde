"""What the fleet rules need: pod identity, heat weights, sampler states and the kernel knobs."""

from __future__ import annotations

import math
import types
from pathlib import Path

import pytest

pytest.importorskip("prometheus_client", reason="prometheus-client is not installed")

from prometheus_client.parser import text_string_to_metric_families as parse_prometheus

from tierctl.data import profiles_dir
from tierctl.kernel.knobs import KnobGuard, Restored
from tierctl.service import metrics as m
from tierctl.service.kernel_loop import _restore_leftovers
from tierctl.sim.live import sim_service

POD = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1234.slice/cri-containerd-ab.scope"


def _values(snap: m.MetricsSnapshot) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client import CollectorRegistry
    from prometheus_client.exposition import generate_latest

    reg = CollectorRegistry()
    reg.register(m.SnapshotCollector(lambda: snap))
    out = {}
    for fam in parse_prometheus(generate_latest(reg).decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_pod_info_heat_sampler_states_and_knobs_are_exported() -> None:
    pod = m.PodInfo("shop", "cart-7d9f", "1234", "Burstable", "cart")
    snap = m.MetricsSnapshot(
        samplers=(m.SamplerSample("bpf-perf", False, state="detached"), m.SamplerSample("idle", True)),
        cgroups=(
            m.CgroupSample(POD, "default", fast_heat=30.0, slow_heat=10.0, pod=pod),
            m.CgroupSample("/system.slice/cron.service", "-", fast_heat=None, slow_heat=None),
        ),
        knobs_set=3,
        knobs_drifted=1,
        knobs_unrestored=2,
    )
    v = _values(snap)
    info = {k: x for k, x in v.items() if k[0] == "tierctl_cgroup_info"}
    labels = (("cgroup", POD), ("namespace", "shop"), ("pod", "cart-7d9f"), ("qos", "Burstable"))
    assert info == {("tierctl_cgroup_info", labels): 1}  # and a cgroup without a pod has no series
    assert v[("tierctl_cgroup_tier_heat", (("cgroup", POD), ("tier", "fast")))] == 30
    assert v[("tierctl_cgroup_tier_heat", (("cgroup", POD), ("tier", "slow")))] == 10
    assert not [k for k in v if k[0] == "tierctl_cgroup_tier_heat" and "cron" in str(k)]  # heat unknown
    states = {k[1]: x for k, x in v.items() if k[0] == "tierctl_sampler_state"}
    assert states[(("sampler", "bpf-perf"), ("state", "detached"))] == 1
    assert states[(("sampler", "bpf-perf"), ("state", "running"))] == 0
    assert states[(("sampler", "idle"), ("state", "running"))] == 1  # state from `up` when not given
    assert len(states) == 2 * len(m.SAMPLER_STATES)
    assert (v[("tierctl_knobs_set", ())], v[("tierctl_knobs_drifted", ())]) == (3, 1)
    assert v[("tierctl_knobs_unrestored", ())] == 2
    assert ("tierctl_knobs_drifted", ()) not in _values(m.MetricsSnapshot(knobs_drifted=None))


class _Svc:
    def __init__(self, rows: list[dict], loop: object = None) -> None:
        self.rows, self.loop = rows, loop

    def status(self) -> dict:
        return {"cycle": 1}

    def cgroups(self) -> list[dict]:
        return self.rows

    def pressure_status(self) -> dict:
        return {}

    def metrics_facts(self) -> m.MetricsFacts:
        if self.loop is None:
            return m.MetricsFacts()
        guard = getattr(self.loop, "guard", None)
        n_set, drifted, unrestored = m.knob_counts(guard, getattr(self.loop, "restored_at_start", []))
        return m.MetricsFacts(knobs_set=n_set, knobs_drifted=drifted, knobs_unrestored=unrestored)


def test_pod_rows_map_by_the_contract() -> None:
    rows = [
        {"path": POD, "pod": {"namespace": "shop", "name": "cart", "uid": "u1", "qos": "Guaranteed",
                              "container": None}},
        {"path": "/a", "pod": None},
        {"path": "/b"},
        {"path": "/c", "pod": {"namespace": "", "name": "x"}},  # nothing to join on: no series
    ]  # fmt: skip
    s = m.snapshot_from_service(_Svc(rows))
    assert s.cgroups[0].pod == m.PodInfo("shop", "cart", "u1", "Guaranteed", None)
    assert [c.pod for c in s.cgroups[1:]] == [None, None, None]


def test_knobs_from_the_loops_guard(tmp_path: Path) -> None:
    knob = tmp_path / "proc/sys/kernel/numa_balancing"
    knob.parent.mkdir(parents=True)
    knob.write_text("0\n")
    guard = KnobGuard(tmp_path / "knobs.json", tmp_path)
    guard.set("/proc/sys/kernel/numa_balancing", 2)
    # the lines KernelLoop writes for leftovers of a killed run: one could not be written back
    failing = types.SimpleNamespace(
        problem=None,
        records=[1],
        restore_all=lambda: [
            Restored("/sys/kernel/mm/numa/demotion_enabled", "false", "failed", "Device or resource busy"),
            Restored("/proc/sys/kernel/numa_balancing", "0", "restored"),
            Restored("/sys/fs/cgroup/gone/memory.high", "max", "gone", "no such file"),
        ],
    )
    leftovers = _restore_leftovers(failing)  # type: ignore[arg-type]
    loop = types.SimpleNamespace(guard=guard, restored_at_start=leftovers)
    s = m.snapshot_from_service(_Svc([], loop))
    assert (s.knobs_set, s.knobs_drifted, s.knobs_unrestored) == (1, 0, 1)
    knob.write_text("1\n")  # someone else changed it
    assert m.snapshot_from_service(_Svc([], loop)).knobs_drifted == 1
    guard.restore_all()
    s = m.snapshot_from_service(_Svc([], loop))
    assert (s.knobs_set, s.knobs_drifted) == (0, 0) and knob.read_text().strip() == "0"
    # a loop without a guard (the simulator) has no knobs
    s = m.snapshot_from_service(_Svc([], types.SimpleNamespace(guard=None)))
    assert (s.knobs_set, s.knobs_drifted, s.knobs_unrestored) == (0, 0, 0)


def test_heat_weights_reproduce_each_hit_ratio_and_aggregate_as_a_ratio_of_sums(tmp_path: Path) -> None:
    svc = sim_service("multi-cgroup", state_dir=tmp_path, profiles_dir=profiles_dir(), epochs=20)
    svc.start()
    try:
        for _ in range(12):
            svc.cycle()
        snap = m.snapshot_from_service(svc)
        rows = {c["path"]: c for c in svc.cgroups()}
        assert {c.path for c in snap.cgroups} == set(rows) and len(rows) == 3
        fast = slow = weighted = 0.0
        for c in snap.cgroups:
            assert c.fast_heat is not None and c.slow_heat is not None
            total = c.fast_heat + c.slow_heat
            assert total > 0
            # analytics sums float32 heat, the metric float64: equal to float32 precision
            assert math.isclose(c.fast_heat / total, rows[c.path]["est_fast_hit_ratio"], rel_tol=1e-5)
            fast, slow = fast + c.fast_heat, slow + c.slow_heat
            weighted += rows[c.path]["est_fast_hit_ratio"] * total
        ratios = [r["est_fast_hit_ratio"] for r in rows.values()]
        fleet = fast / (fast + slow)
        assert math.isclose(fleet, weighted / (fast + slow), rel_tol=1e-5)
        assert min(ratios) <= fleet <= max(ratios)
        # with unequal weights the mean of ratios is not the hit ratio of the accesses
        assert abs(sum(ratios) / len(ratios) - fleet) > 1e-3
    finally:
        svc.stop()


def test_per_cgroup_migration_counters_are_exported_from_the_rows() -> None:
    rows = [
        {"path": POD, "promoted_pages": 120, "demoted_pages": 7},
        {"path": "/system.slice/cron.service"},  # a Service that does not count per cgroup: no series
    ]
    s = m.snapshot_from_service(_Svc(rows))
    assert [(c.promoted_pages, c.demoted_pages) for c in s.cgroups] == [(120, 7), (None, None)]
    v = _values(s)
    moved = {k: x for k, x in v.items() if k[0].startswith("tierctl_cgroup_") and "moted" in k[0]}
    assert moved == {
        ("tierctl_cgroup_promoted_pages_total", (("cgroup", POD),)): 120,
        ("tierctl_cgroup_demoted_pages_total", (("cgroup", POD),)): 7,
    }


def test_the_sim_services_rows_count_what_the_mover_moved(tmp_path: Path) -> None:
    svc = sim_service("multi-cgroup", state_dir=tmp_path, profiles_dir=profiles_dir(), epochs=6)
    for _ in range(6):
        svc.cycle()
    rows = svc.cgroups()
    st = svc.status()
    assert sum(r["promoted_pages"] for r in rows) == st["moved"]["promoted"] > 0
    assert sum(r["demoted_pages"] for r in rows) == st["moved"]["demoted"]


class _Events(_Svc):
    def __init__(self, kinds: list[str]) -> None:
        super().__init__([])
        self.events = [{"seq": i, "kind": k} for i, k in enumerate(kinds, 1)]

    def metrics_facts(self) -> m.MetricsFacts:
        return m.MetricsFacts(last_reload_ok=m.last_reload_ok(self.events))


def test_reloads_by_trigger_and_the_last_result() -> None:
    counts = m.ReloadCounts()
    v = _values(m.snapshot_from_service(_Events([]), reloads=counts))
    assert v[("tierctl_profile_last_reload_successful", ())] == 1  # the set loaded at start runs
    reloads = {k[1]: x for k, x in v.items() if k[0] == "tierctl_profile_reloads_total"}
    assert reloads == {
        (("result", r), ("trigger", t)): 0 for t in m.RELOAD_TRIGGERS for r in m.RELOAD_RESULTS
    }  # every known trigger from 0
    counts.observe("watch", True)
    counts.observe("watch", False)
    s = m.snapshot_from_service(_Events(["reloaded", "cycle", "reload_failed"]), reloads=counts)
    assert s.reloads == {("watch", "ok"): 1, ("watch", "failed"): 1} and s.last_reload_ok is False
    assert _values(s)[("tierctl_profile_last_reload_successful", ())] == 0
    # the event log has the last word: a reload through the API the daemon did not count succeeded
    s = m.snapshot_from_service(_Events(["reload_failed", "reloaded", "pin"]), reloads=counts)
    assert s.last_reload_ok is True
    # no reload event kept (the log rotated): the last one counted
    assert m.snapshot_from_service(_Events(["pin"]), reloads=counts).last_reload_ok is False
    counts.observe("api", True)  # a trigger counted elsewhere is exported too
    v = _values(m.snapshot_from_service(_Events([]), reloads=counts))
    assert v[("tierctl_profile_reloads_total", (("result", "ok"), ("trigger", "api")))] == 1
