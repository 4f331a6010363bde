"""Every metric, declared once in :data:`METRICS`, and the collector rendering them from one snapshot."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from tierctl.service.metrics_snapshot import (
    CONTROLLER_STATES,
    MOVER_OUTCOMES,
    PIN_STATES,
    RELOAD_RESULTS,
    RELOAD_TRIGGERS,
    SAMPLER_STATES,
    TIERS,
    MetricsSnapshot,
)

log = logging.getLogger("tierctl.service.metrics")

Kind = Literal["counter", "gauge", "histogram"]
Labels = tuple[str, ...]
Rows = Iterable[tuple[Labels, Any]]  # (label values, value) — a CycleHistogram for histograms

_NAME = re.compile(r"tierctl_[a-z][a-z0-9_]*[a-z0-9]")
_LABEL = re.compile(r"[a-z][a-z0-9_]*")
_UNITS = ("", "bytes", "seconds", "ratio")


@dataclass(frozen=True)
class MetricSpec:
    """One metric. ``name`` is the full family name (counters end in ``_total``)."""

    name: str
    kind: Kind
    unit: str
    help: str
    labels: Labels
    read: Callable[[MetricsSnapshot], Rows] = field(compare=False, repr=False)

    def __post_init__(self) -> None:
        def bad(msg: str) -> ValueError:
            return ValueError(f"metric {self.name!r}: {msg}")

        if not _NAME.fullmatch(self.name) or "__" in self.name:
            raise bad("name must be tierctl_[a-z0-9_]+ (OpenMetrics, no double underscore)")
        if self.kind not in ("counter", "gauge", "histogram"):
            raise bad(f"unknown type {self.kind!r}")
        if (self.kind == "counter") != self.name.endswith("_total"):
            raise bad("counters, and only counters, end in _total")
        if self.unit not in _UNITS:
            raise bad(f"unit must be one of {_UNITS} (base units)")
        base = self.name.removesuffix("_total")
        if self.unit and not base.endswith("_" + self.unit):
            raise bad(f"a metric in {self.unit} must be named ..._{self.unit}")
        if not self.unit and any(base.endswith("_" + u) for u in _UNITS if u):
            raise bad("the name says a unit the spec does not declare")
        if not self.help or "\n" in self.help:
            raise bad("help must be one non-empty line")
        if len(set(self.labels)) != len(self.labels):
            raise bad("repeated label name")
        for lb in self.labels:
            if not _LABEL.fullmatch(lb) or lb in ("le", "quantile"):
                raise bad(f"bad label name {lb!r}")

    def family(self) -> Metric:
        """An empty prometheus_client family for this spec (samples are added by the collector)."""
        name = self.name.removesuffix("_total")  # CounterMetricFamily adds _total to its samples
        cls = {"counter": CounterMetricFamily, "gauge": GaugeMetricFamily, "histogram": HistogramMetricFamily}
        return cls[self.kind](name, self.help, labels=list(self.labels), unit=self.unit)


def build_table(specs: Iterable[MetricSpec]) -> Mapping[str, MetricSpec]:
    """Name → spec, read-only; a name declared twice (or clashing with another's samples) is an error."""
    out: dict[str, MetricSpec] = {}
    taken: dict[str, str] = {}  # every sample / family name → the metric that owns it
    for s in specs:
        base = s.name.removesuffix("_total")
        owned = {s.name, base}
        if s.kind == "histogram":
            owned |= {f"{base}_bucket", f"{base}_sum", f"{base}_count"}
        if s.kind == "counter":
            owned.add(f"{base}_created")
        for n in sorted(owned):
            if n in taken:
                raise ValueError(f"metric {s.name!r} declared twice (clashes with {taken[n]!r} on {n!r})")
            taken[n] = s.name
        out[s.name] = s
    return MappingProxyType(out)


def _one(v: float) -> Rows:
    return [((), v)]


def _states(current: str, known: Sequence[str]) -> Rows:
    names = list(known) if current in known else [*known, current]
    return [((n,), 1.0 if n == current else 0.0) for n in names]


def _cg_node_bytes(s: MetricsSnapshot) -> Rows:
    return [((c.path, node), b) for c in s.cgroups for node, b in sorted(c.bytes_per_node.items())]


def _cg_tier_bytes(s: MetricsSnapshot) -> Rows:
    return [
        ((c.path, t), b) for c in s.cgroups for t, b in zip(TIERS, (c.fast_bytes, c.slow_bytes), strict=True)
    ]


def _cg_tier_heat(s: MetricsSnapshot) -> Rows:
    return [
        ((c.path, t), h)
        for c in s.cgroups
        if c.fast_heat is not None and c.slow_heat is not None
        for t, h in zip(TIERS, (c.fast_heat, c.slow_heat), strict=True)
    ]


def _cg_info(s: MetricsSnapshot) -> Rows:
    return [((c.path, c.pod.namespace, c.pod.name, c.pod.qos), 1) for c in s.cgroups if c.pod is not None]


def _cg_pin(s: MetricsSnapshot) -> Rows:
    return [((c.path, *lv), v) for c in s.cgroups for lv, v in _states(c.pin, PIN_STATES)]


def _cg_moved(attr: str) -> Callable[[MetricsSnapshot], Rows]:
    return lambda s: [((c.path,), v) for c in s.cgroups if (v := getattr(c, attr)) is not None]


def _reloads(s: MetricsSnapshot) -> Rows:
    extra = sorted({t for t, _ in s.reloads} - set(RELOAD_TRIGGERS))
    return [((t, r), s.reloads.get((t, r), 0)) for t in (*RELOAD_TRIGGERS, *extra) for r in RELOAD_RESULTS]


def _outcomes(s: MetricsSnapshot) -> Rows:
    extra = sorted(set(s.outcomes) - set(MOVER_OUTCOMES))
    return [((o,), s.outcomes.get(o, 0)) for o in (*MOVER_OUTCOMES, *extra)]


def _per_sampler(attr: str) -> Callable[[MetricsSnapshot], Rows]:
    return lambda s: [((x.name,), float(getattr(x, attr))) for x in s.samplers]


def _sampler_states(s: MetricsSnapshot) -> Rows:
    return [((x.name, *lv), v) for x in s.samplers for lv, v in _states(x.state_name, SAMPLER_STATES)]


# fmt: off
METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("tierctl_build_info", "gauge", "", "tierctl version (always 1)", ("version",),
               lambda s: [((s.version,), 1)]),
    MetricSpec("tierctl_controller_state", "gauge", "",
               "1 for the controller's current state (running, paused, dry-run), 0 for the others",
               ("state",), lambda s: _states(s.state, CONTROLLER_STATES)),
    MetricSpec("tierctl_cycles_total", "counter", "", "Control cycles completed", (),
               lambda s: _one(s.cycles)),
    MetricSpec("tierctl_profile_reload_failures_total", "counter", "",
               "Profile reloads refused (the running set was kept)", (),
               lambda s: _one(s.reload_failures)),
    MetricSpec("tierctl_profile_reloads_total", "counter", "",
               "Profile reloads by trigger (signal, watch of the profiles directory) and result (ok, failed)",
               ("trigger", "result"), _reloads),
    MetricSpec("tierctl_profile_last_reload_successful", "gauge", "",
               "0 while the last profile reload was refused (an older set runs), else 1", (),
               lambda s: _one(0 if s.last_reload_ok is False else 1)),
    MetricSpec("tierctl_cycle_duration_seconds", "histogram", "seconds",
               "Wall time of one control cycle (sample, heat, policy, move)", (),
               lambda s: [((), s.cycle_seconds)]),
    MetricSpec("tierctl_tracked_pages", "gauge", "",
               "Pages in the tracked page space of the managed processes", (),
               lambda s: _one(s.tracked_pages)),
    MetricSpec("tierctl_mover_promoted_pages_total", "counter", "", "Pages moved to the fast tier", (),
               lambda s: _one(s.promoted_pages)),
    MetricSpec("tierctl_mover_demoted_pages_total", "counter", "", "Pages moved to the slow tier", (),
               lambda s: _one(s.demoted_pages)),
    MetricSpec("tierctl_mover_pages_total", "counter", "",
               "Pages the mover handled, by per-page outcome (moved, busy, gone, target_full, ...)",
               ("outcome",), _outcomes),
    MetricSpec("tierctl_sampler_up", "gauge", "",
               "1 if the sampler is running, 0 if idle, unavailable or detached",
               ("sampler",), lambda s: [((x.name,), 1.0 if x.up else 0.0) for x in s.samplers]),
    MetricSpec("tierctl_sampler_state", "gauge", "",
               "1 for the sampler's state (idle, running, unavailable, detached, stopped), 0 for the others",
               ("sampler", "state"), _sampler_states),
    MetricSpec("tierctl_sampler_samples_total", "counter", "", "Raw sample rows the sampler handed over",
               ("sampler",), _per_sampler("samples")),
    MetricSpec("tierctl_sampler_dropped_total", "counter", "",
               "Observations the sampler lost (full BPF maps, lost perf records)", ("sampler",),
               _per_sampler("dropped")),
    MetricSpec("tierctl_sampler_bpf_run_seconds_total", "counter", "seconds",
               "Kernel time spent in the sampler's BPF programs (when kernel BPF stats are on)", ("sampler",),
               _per_sampler("bpf_run_seconds")),
    MetricSpec("tierctl_sampler_user_cpu_seconds_total", "counter", "seconds",
               "User-space CPU time tierctl spent running the sampler (start, drain, scans)", ("sampler",),
               _per_sampler("user_cpu_seconds")),
    MetricSpec("tierctl_cgroup_node_memory_bytes", "gauge", "bytes",
               "Tracked memory of the cgroup resident on each NUMA node", ("cgroup", "node"), _cg_node_bytes),
    MetricSpec("tierctl_cgroup_tier_memory_bytes", "gauge", "bytes",
               "Tracked memory of the cgroup resident in each tier (fast, slow)", ("cgroup", "tier"),
               _cg_tier_bytes),
    MetricSpec("tierctl_cgroup_hot_memory_bytes", "gauge", "bytes",
               "Memory of the cgroup the heat model currently considers hot", ("cgroup",),
               lambda s: [((c.path,), c.hot_bytes) for c in s.cgroups]),
    MetricSpec("tierctl_cgroup_estimated_fast_hit_ratio", "gauge", "ratio",
               "Estimated share (0..1) of the cgroup's accesses served by the fast tier", ("cgroup",),
               lambda s: [((c.path,), c.est_fast_hit_ratio) for c in s.cgroups
                          if c.est_fast_hit_ratio is not None]),
    MetricSpec("tierctl_cgroup_tier_heat", "gauge", "",
               "Heat (estimated accesses per cycle) of the cgroup's tracked pages in each tier (fast, slow)",
               ("cgroup", "tier"), _cg_tier_heat),
    MetricSpec("tierctl_cgroup_promoted_pages_total", "counter", "",
               "Pages of the cgroup moved to the fast tier since the daemon started", ("cgroup",),
               _cg_moved("promoted_pages")),
    MetricSpec("tierctl_cgroup_demoted_pages_total", "counter", "",
               "Pages of the cgroup moved to the slow tier since the daemon started", ("cgroup",),
               _cg_moved("demoted_pages")),
    MetricSpec("tierctl_cgroup_override_pin", "gauge", "",
               "1 for the cgroup's operator pin (fast, slow; auto = not pinned), 0 for the others",
               ("cgroup", "pin"), _cg_pin),
    MetricSpec("tierctl_cgroup_profile_info", "gauge", "", "The profile matched by the cgroup (always 1)",
               ("cgroup", "profile"), lambda s: [((c.path, c.profile or ""), 1) for c in s.cgroups]),
    MetricSpec("tierctl_cgroup_info", "gauge", "",
               "The pod of the cgroup, where pod resolution knows it (always 1; no series otherwise)",
               ("cgroup", "namespace", "pod", "qos"), _cg_info),
    MetricSpec("tierctl_memory_used_bytes", "gauge", "bytes",
               "Memory the machine uses (MemTotal - MemAvailable), as the pressure ladder sees it", (),
               lambda s: _one(s.memory_used) if s.memory_used is not None else []),
    MetricSpec("tierctl_memory_target_bytes", "gauge", "bytes",
               "The pressure ladder's target: memory used above it is trimmed, notified, then killed", (),
               lambda s: _one(s.memory_target) if s.memory_target is not None else []),
    MetricSpec("tierctl_pressure_actions_total", "counter", "",
               "Actions the pressure ladder took, by kind (trim, notify, kill)", ("action",),
               lambda s: [((k,), v) for k, v in sorted(s.pressure_actions.items())]),
    MetricSpec("tierctl_oom_kills_total", "counter", "",
               "Processes the kernel's OOM killer killed, as the reclaim-stall source saw them", (),
               lambda s: _one(s.oom_kills)),
    MetricSpec("tierctl_cgroup_working_set_bytes", "gauge", "bytes",
               "The cgroup's working-set estimate (what remained when reclaim made it wait)", ("cgroup",),
               lambda s: [((p,), v) for p, v in sorted(s.working_sets.items())]),
    MetricSpec("tierctl_knobs_set", "gauge", "",
               "Kernel knobs tierctl changed and will restore when it stops", (),
               lambda s: _one(s.knobs_set)),
    MetricSpec("tierctl_knobs_drifted", "gauge", "",
               "Kernel knobs tierctl set whose value someone else changed since", (),
               lambda s: _one(s.knobs_drifted) if s.knobs_drifted is not None else []),
    MetricSpec("tierctl_knobs_unrestored", "gauge", "",
               "Kernel knobs an earlier run left set that this run could not restore at start", (),
               lambda s: _one(s.knobs_unrestored)),
)
# fmt: on

#: name → spec; importing this module fails if a metric is declared twice
TABLE: Mapping[str, MetricSpec] = build_table(METRICS)


def render(snapshot: MetricsSnapshot, specs: Iterable[MetricSpec] = METRICS) -> list[Metric]:
    """The prometheus_client families of every declared metric, filled from one snapshot."""
    out = []
    for spec in specs:
        fam = spec.family()
        for labels, value in spec.read(snapshot):
            if spec.kind == "histogram":
                fam.add_metric(list(labels), buckets=value.cumulative(), sum_value=value.sum)
            else:
                fam.add_metric(list(labels), float(value))
        out.append(fam)
    return out


class SnapshotCollector(Collector):
    """Calls ``snapshot_fn()`` once per scrape and renders the whole table from it."""

    def __init__(self, snapshot_fn: Callable[[], MetricsSnapshot], specs: Sequence[MetricSpec] = METRICS):
        self.snapshot_fn = snapshot_fn
        self.specs = tuple(build_table(specs).values())
        self.on_snapshot: Callable[[MetricsSnapshot], None] | None = None  # e.g. the health tracker

    def describe(self) -> Iterator[Metric]:
        # Lets a registry refuse a second collector of the same names without taking a snapshot.
        return iter([s.family() for s in self.specs])

    def collect(self) -> Iterator[Metric]:
        try:
            snap = self.snapshot_fn()
        except Exception:
            # The scrape fails (HTTP 500, Prometheus shows up == 0); the daemon is not affected.
            log.exception("metrics: taking the snapshot failed")
            raise
        if self.on_snapshot is not None:
            self.on_snapshot(snap)
        return iter(render(snap, self.specs))
