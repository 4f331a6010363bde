"""The OpenMetrics / Prometheus endpoint of the daemon (off unless enabled; binds 127.0.0.1 by default).

- Every metric is declared ONCE, in :data:`METRICS` (name, type, unit, help, label names, and the
  function that reads its samples from a snapshot). The name index is built from that table and refuses
  duplicates; the exposition, the docs table and the tests all read it.
- Nothing is updated per event: on each scrape a :class:`SnapshotCollector` calls ``snapshot_fn()`` once
  and renders every metric from that one immutable :class:`MetricsSnapshot`, so the values of one
  scrape are mutually consistent and the control loop's hot paths never touch a metric object.
- Each :class:`MetricsServer` owns a PRIVATE ``CollectorRegistry``; the process-wide default
  ``prometheus_client.REGISTRY`` is never touched, and these modules keep no module-level mutable state.
- The same listener answers ``/healthz`` and ``/readyz`` (``metrics_health``) from the same snapshots.

The parts: ``metrics_snapshot`` (the snapshot, ``CycleTimes``), ``metrics_table`` (the table, the
collector), ``metrics_service`` (the snapshot of a Service), ``metrics_health``, ``metrics_http`` (the
server). This module is their one public face.

Mapping from the Service (``ServiceContract``) to the snapshot — :func:`snapshot_from_service`:

=============================================  ==================================================
``status()["version"]``                        ``version``            (``tierctl_build_info``)
``status()["reload_failures"]``                ``reload_failures`` (every trigger)
``reloads=`` (a ``ReloadCounts`` the daemon    ``reloads`` by (trigger, result)
feeds: SIGHUP and the directory watch)         (``tierctl_profile_reloads_total``)
``service.events``: the newest ``reloaded``    ``last_reload_ok`` (any trigger); none
or ``reload_failed``                           kept: the last one ``reloads=`` saw;
                                               none: True (the start's set runs)
``status()["state"]``                          ``state``              (``tierctl_controller_state``)
``status()["cycle"]`` (completed cycles)       ``cycles``             (``tierctl_cycles_total``, /healthz)
``status()["tracked_pages"]``                  ``tracked_pages``
``status()["moved"]["promoted"|"demoted"]``    ``promoted_pages`` / ``demoted_pages``
``status()["moved"]["outcomes"]`` {name: n}    ``outcomes`` (names of ``core.mover.Outcome``); absent:
                                               ``service.loop.controller.totals.outcomes``
``status()["samplers"]`` [{name, state,        ``samplers`` (up = state "running"; bpf_run_ns / 1e9);
health: {samples, dropped, cpu_seconds,        no "health": ``service.loop.chain.status()``'s
bpf_run_ns}}]                                  ``SamplerStatus.health`` of the same name
``status()["cycle_seconds"]``                  ``cycle_seconds`` (``CycleTimes.to_json()``; absent:
                                               an empty histogram, or pass ``cycle_times=``)
``status()["last_cycle_age_s"]`` (optional)    ``last_cycle_age_s`` (/healthz judges by it when given)
``service.cfg.cycle_s``                        ``cycle_period_s`` (/healthz's limit: max(3 periods, 10 s))
``cgroups()[i]["path"|"profile"]``             ``CgroupSample.path`` / ``.profile``
``cgroups()[i]["override"]``                   ``CgroupSample.pin`` (a str, or a dict's "pin";
                                               None → "auto")
``cgroups()[i]["bytes_per_node"]``             ``CgroupSample.bytes_per_node`` (node ids as str)
``cgroups()[i]["fast_bytes"|"slow_bytes"]``    ``CgroupSample.fast_bytes`` / ``.slow_bytes``
``cgroups()[i]["hot_bytes"]``                  ``CgroupSample.hot_bytes``
``cgroups()[i]["est_fast_hit_ratio"]``         ``CgroupSample.est_fast_hit_ratio`` (None: no series)
``cgroups()[i]["promoted_pages"|"demoted_      ``CgroupSample.promoted_pages`` / ``.demoted_pages``
pages"]`` (optional; pages moved so far)       (``tierctl_cgroup_{promoted,demoted}_pages_total``)
``cgroups()[i]["pod"]`` (optional) {namespace, ``CgroupSample.pod`` (``tierctl_cgroup_info``; absent
name, uid, qos, container}                     or None: no series)
loop: ``view.last``, ``controller.heat``       ``CgroupSample.fast_heat`` / ``.slow_heat`` (the weights
                                               of the hit ratio: ``tierctl_cgroup_tier_heat``)
loop: ``guard`` (KnobGuard), ``restored_at_    ``knobs_set`` (records), ``knobs_drifted`` (verify()),
start``                                        ``knobs_unrestored`` (leftovers that "failed")
=============================================  ==================================================

``status()`` and ``cgroups()`` are two calls: the Service should answer both from the state of the same
completed cycle (or cache the snapshot at the end of each cycle and hand ``lambda: cached`` to the
server), and both are called from the server's thread.
"""

from __future__ import annotations

from tierctl.service.metrics_health import Health, Verdict
from tierctl.service.metrics_http import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    HEALTH_PATHS,
    MAX_CLIENTS,
    REQUEST_TIMEOUT_S,
    MetricsServer,
    parse_listen,
)
from tierctl.service.metrics_service import (
    MetricsFacts,
    MetricsSource,
    heat_by_tier,
    knob_counts,
    last_reload_ok,
    snapshot_from_service,
)
from tierctl.service.metrics_snapshot import (
    CONTROLLER_STATES,
    CYCLE_BUCKETS,
    MOVER_OUTCOMES,
    PIN_STATES,
    RELOAD_RESULTS,
    RELOAD_TRIGGERS,
    SAMPLER_STATES,
    TIERS,
    CgroupSample,
    CycleHistogram,
    CycleTimes,
    MetricsSnapshot,
    PodInfo,
    ReloadCounts,
    SamplerSample,
)
from tierctl.service.metrics_table import (
    METRICS,
    TABLE,
    Kind,
    Labels,
    MetricSpec,
    Rows,
    SnapshotCollector,
    build_table,
    render,
)

__all__ = [
    "CONTROLLER_STATES",
    "CYCLE_BUCKETS",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "HEALTH_PATHS",
    "MAX_CLIENTS",
    "METRICS",
    "MOVER_OUTCOMES",
    "PIN_STATES",
    "RELOAD_RESULTS",
    "RELOAD_TRIGGERS",
    "REQUEST_TIMEOUT_S",
    "SAMPLER_STATES",
    "TABLE",
    "TIERS",
    "CgroupSample",
    "CycleHistogram",
    "CycleTimes",
    "Health",
    "Kind",
    "Labels",
    "MetricSpec",
    "MetricsFacts",
    "MetricsServer",
    "MetricsSnapshot",
    "MetricsSource",
    "PodInfo",
    "ReloadCounts",
    "Rows",
    "SamplerSample",
    "SnapshotCollector",
    "Verdict",
    "build_table",
    "heat_by_tier",
    "knob_counts",
    "last_reload_ok",
    "parse_listen",
    "render",
    "snapshot_from_service",
]
