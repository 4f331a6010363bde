"""The OpenMetrics / Prometheus endpoint of the daemon (off unless enabled; binds 127.0.0.1 by default).

- Every metric is declared ONCE, in :data:`METRICS` (name, type, unit, help, label names, and the
  function that reads its samples from a snapshot). The name index is built from that table and refuses
  duplicates; the exposition, the docs table and the tests all read it.
- Nothing is updated per event: on each scrape a :class:`SnapshotCollector` calls ``snapshot_fn()`` once
  and renders every metric from that one immutable :class:`MetricsSnapshot`, so the values of one
  scrape are mutually consistent and the control loop's hot paths never touch a metric object.
- Each :class:`MetricsServer` owns a PRIVATE ``CollectorRegistry``; the process-wide default
  ``prometheus_client.REGISTRY`` is never touched, and this module keeps no mutable state.

Mapping from the Service (``ServiceContract``) to the snapshot — :func:`snapshot_from_service`:

=============================================  ==================================================
``status()["version"]``                        ``version``            (``tierctl_build_info``)
``status()["state"]``                          ``state``              (``tierctl_controller_state``)
``status()["cycle"]`` (completed cycles)       ``cycles``             (``tierctl_cycles_total``)
``status()["tracked_pages"]``                  ``tracked_pages``
``status()["moved"]["promoted"|"demoted"]``    ``promoted_pages`` / ``demoted_pages``
``status()["moved"]["outcomes"]`` {name: n}    ``outcomes`` (names of ``core.mover.Outcome``); absent:
                                               ``service.loop.controller.totals.outcomes``
``status()["samplers"]`` [{name, state,        ``samplers`` (up = state "running"; bpf_run_ns / 1e9);
health: {samples, dropped, cpu_seconds,        no "health": ``service.loop.chain.status()``'s
bpf_run_ns}}]                                  ``SamplerStatus.health`` of the same name
``status()["cycle_seconds"]``                  ``cycle_seconds`` (``CycleTimes.to_json()``; absent:
                                               an empty histogram, or pass ``cycle_times=``)
``cgroups()[i]["path"|"profile"]``             ``CgroupSample.path`` / ``.profile``
``cgroups()[i]["override"]``                   ``CgroupSample.pin`` (a str, or a dict's "pin";
                                               None → "auto")
``cgroups()[i]["bytes_per_node"]``             ``CgroupSample.bytes_per_node`` (node ids as str)
``cgroups()[i]["fast_bytes"|"slow_bytes"]``    ``CgroupSample.fast_bytes`` / ``.slow_bytes``
``cgroups()[i]["hot_bytes"]``                  ``CgroupSample.hot_bytes``
``cgroups()[i]["est_fast_hit_ratio"]``         ``CgroupSample.est_fast_hit_ratio`` (None: no series)
=============================================  ==================================================

``status()`` and ``cgroups()`` are two calls: the Service should answer both from the state of the same
completed cycle (or cache the snapshot at the end of each cycle and hand ``lambda: cached`` to the
server), and both are called from the server's thread.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import math
import re
import socket
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from types import MappingProxyType
from typing import Any, Literal
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from tierctl.core.mover import Outcome
from tierctl.errors import InputError, UnavailableError

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9464

#: values of ``tierctl_controller_state{state}`` (ServiceContract.status()["state"])
CONTROLLER_STATES: tuple[str, ...] = ("running", "paused", "dry-run")
#: values of ``tierctl_cgroup_override_pin{pin}``: "auto" = not pinned (the profile and policy decide)
PIN_STATES: tuple[str, ...] = ("fast", "slow", "auto")
#: values of ``tierctl_mover_pages_total{outcome}``: the mover's per-page outcomes
MOVER_OUTCOMES: tuple[str, ...] = tuple(o.name.lower() for o in Outcome)
TIERS: tuple[str, ...] = ("fast", "slow")
#: upper bounds (seconds) of the cycle-duration histogram buckets (+Inf is implied)
CYCLE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


# ---- the snapshot ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class CycleHistogram:
    """Observations per bucket: ``counts[i]`` for ``bounds[i-1] < x <= bounds[i]``, the last is +Inf."""

    bounds: tuple[float, ...] = CYCLE_BUCKETS
    counts: tuple[int, ...] = (0,) * (len(CYCLE_BUCKETS) + 1)
    sum: float = 0.0

    def __post_init__(self) -> None:
        if len(self.counts) != len(self.bounds) + 1:
            raise ValueError(f"{len(self.bounds)} bounds need {len(self.bounds) + 1} counts")
        if list(self.bounds) != sorted(set(self.bounds)):
            raise ValueError("histogram bounds must be strictly increasing")

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, float]]:
        """(le, cumulative count) pairs ending with +Inf, as the exposition wants them."""
        out, acc = [], 0
        for le, n in zip((*self.bounds, math.inf), self.counts, strict=True):
            acc += n
            out.append((floatToGoString(le), float(acc)))
        return out


class CycleTimes:
    """The service's accumulator of cycle durations: one ``observe()`` per cycle (a bisect, no I/O).

    Owned by the Service (not by this module); ``snapshot()`` is immutable, ``to_json()`` is what
    ``status()["cycle_seconds"]`` carries.
    """

    def __init__(self, bounds: Sequence[float] = CYCLE_BUCKETS) -> None:
        self.bounds = tuple(float(b) for b in bounds)
        self._counts = [0] * (len(self.bounds) + 1)
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, seconds: float) -> None:
        with self._lock:
            self._counts[bisect.bisect_left(self.bounds, seconds)] += 1
            self._sum += seconds

    def snapshot(self) -> CycleHistogram:
        with self._lock:
            return CycleHistogram(self.bounds, tuple(self._counts), self._sum)

    def to_json(self) -> dict[str, Any]:
        h = self.snapshot()
        return {"bounds": list(h.bounds), "counts": list(h.counts), "sum": h.sum}


@dataclass(frozen=True)
class SamplerSample:
    name: str
    up: bool  # state == "running"
    samples: int = 0
    dropped: int = 0
    bpf_run_seconds: float = 0.0
    user_cpu_seconds: float = 0.0


@dataclass(frozen=True)
class CgroupSample:
    path: str
    profile: str | None = None
    pin: str = "auto"  # one of PIN_STATES
    bytes_per_node: Mapping[str, int] = field(default_factory=dict)
    fast_bytes: int = 0
    slow_bytes: int = 0
    hot_bytes: int = 0
    est_fast_hit_ratio: float | None = None  # None: not estimated yet (no series exported)


@dataclass(frozen=True)
class MetricsSnapshot:
    """Everything one scrape exposes, taken at one point in time."""

    version: str = ""
    state: str = "running"
    cycles: int = 0
    tracked_pages: int = 0
    promoted_pages: int = 0
    demoted_pages: int = 0
    outcomes: Mapping[str, int] = field(default_factory=dict)
    samplers: tuple[SamplerSample, ...] = ()
    cycle_seconds: CycleHistogram = field(default_factory=CycleHistogram)
    cgroups: tuple[CgroupSample, ...] = ()
    reload_failures: int = 0
    # the memory-pressure ladder (docs/pressure.md); None/empty while it is off or unavailable
    memory_used: int | None = None
    memory_target: int | None = None
    pressure_actions: Mapping[str, int] = field(default_factory=dict)
    working_sets: Mapping[str, int] = field(default_factory=dict)
    oom_kills: int = 0


# ---- the table: every metric, declared once -------------------------------------------------------
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


def _cg_pin(s: MetricsSnapshot) -> Rows:
    return [((c.path, *lv), v) for c in s.cgroups for lv, v in _states(c.pin, PIN_STATES)]


def _outcomes(s: MetricsSnapshot) -> Rows:
    extra = sorted(set(s.outcomes) - set(MOVER_OUTCOMES))
    return [((o,), s.outcomes.get(o, 0)) for o in (*MOVER_OUTCOMES, *extra)]


def _per_sampler(attr: str) -> Callable[[MetricsSnapshot], Rows]:
    return lambda s: [((x.name,), float(getattr(x, attr))) for x in s.samplers]


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
    MetricSpec("tierctl_cgroup_override_pin", "gauge", "",
               "1 for the cgroup's operator pin (fast, slow; auto = not pinned), 0 for the others",
               ("cgroup", "pin"), _cg_pin),
    MetricSpec("tierctl_cgroup_profile_info", "gauge", "", "The profile matched by the cgroup (always 1)",
               ("cgroup", "profile"), lambda s: [((c.path, c.profile or ""), 1) for c in s.cgroups]),
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
        return iter(render(snap, self.specs))


# ---- from the Service -----------------------------------------------------------------------------
def _num(x: Any, default: float = 0) -> Any:
    return x if isinstance(x, int | float) and not isinstance(x, bool) else default


def _pin(override: Any) -> str:
    if isinstance(override, Mapping):
        override = override.get("pin")
    return str(override) if override else "auto"


def _sampler(d: Mapping[str, Any], health: Mapping[str, Any]) -> SamplerSample:
    h = d.get("health") or health.get(str(d.get("name")), {})
    state = d.get("state", "")
    state = getattr(state, "value", state)  # a samplers.chain.State enum, or its value
    return SamplerSample(
        name=str(d.get("name", "?")),
        up=state == "running",
        samples=int(_num(h.get("samples"))),
        dropped=int(_num(h.get("dropped"))),
        bpf_run_seconds=_num(h.get("bpf_run_ns")) / 1e9,
        user_cpu_seconds=float(_num(h.get("cpu_seconds"))),
    )


def _histogram(d: Any) -> CycleHistogram:
    if not isinstance(d, Mapping):
        return CycleHistogram()
    return CycleHistogram(
        tuple(float(b) for b in d["bounds"]), tuple(int(c) for c in d["counts"]), float(d["sum"])
    )


def _loop_counters(service: Any) -> tuple[dict[str, int], dict[str, dict[str, Any]]]:
    """Mover outcomes and sampler health from the Service's KernelLoop, for a status() without them."""
    loop = getattr(service, "loop", None)
    totals = getattr(getattr(loop, "controller", None), "totals", None)
    outcomes = dict(getattr(totals, "outcomes", None) or {})
    health: dict[str, dict[str, Any]] = {}
    chain = getattr(loop, "chain", None)
    if chain is not None and callable(getattr(chain, "status", None)):
        for s in chain.status():
            h = s.health
            health[s.name] = {
                "samples": h.samples,
                "dropped": h.dropped,
                "cpu_seconds": h.cpu_seconds,
                "bpf_run_ns": h.bpf_run_ns,
            }
    return outcomes, health


def snapshot_from_service(service: Any, *, cycle_times: CycleTimes | None = None) -> MetricsSnapshot:
    """A snapshot from ``service.status()`` and ``service.cgroups()`` (see the module docstring)."""
    st: Mapping[str, Any] = service.status()
    cgs: list[Mapping[str, Any]] = service.cgroups()
    moved = st.get("moved") or {}
    loop_outcomes, loop_health = _loop_counters(service)
    pr: Mapping[str, Any] = service.pressure_status() if hasattr(service, "pressure_status") else {}
    machine = pr.get("machine") or {}
    return MetricsSnapshot(
        memory_used=int(machine["used"]) if "used" in machine else None,
        memory_target=int(machine["total"] * pr["target_ratio"]) if "total" in machine else None,
        pressure_actions={str(k): int(_num(v)) for k, v in (pr.get("actions") or {}).items()},
        oom_kills=int(_num(pr.get("oom_kills"))),
        working_sets={
            str(p): int(w["estimate"])
            for p, w in (pr.get("working_sets") or {}).items()
            if w.get("estimate") is not None
        },
        version=str(st.get("version", "")),
        state=str(st.get("state", "running")),
        cycles=int(_num(st.get("cycle"))),
        reload_failures=int(_num(st.get("reload_failures"))),
        tracked_pages=int(_num(st.get("tracked_pages"))),
        promoted_pages=int(_num(moved.get("promoted"))),
        demoted_pages=int(_num(moved.get("demoted"))),
        outcomes={str(k): int(_num(v)) for k, v in (moved.get("outcomes") or loop_outcomes).items()},
        samplers=tuple(_sampler(d, loop_health) for d in st.get("samplers") or () if isinstance(d, Mapping)),
        cycle_seconds=cycle_times.snapshot() if cycle_times else _histogram(st.get("cycle_seconds")),
        cgroups=tuple(
            CgroupSample(
                path=str(c["path"]),
                profile=None if c.get("profile") is None else str(c["profile"]),
                pin=_pin(c.get("override")),
                bytes_per_node={str(n): int(_num(b)) for n, b in (c.get("bytes_per_node") or {}).items()},
                fast_bytes=int(_num(c.get("fast_bytes"))),
                slow_bytes=int(_num(c.get("slow_bytes"))),
                hot_bytes=int(_num(c.get("hot_bytes"))),
                est_fast_hit_ratio=None
                if _num(c.get("est_fast_hit_ratio"), None) is None
                else float(c["est_fast_hit_ratio"]),
            )
            for c in cgs
        ),
    )


# ---- the HTTP server ------------------------------------------------------------------------------
MAX_CLIENTS = 32  # concurrent scrapes; a Prometheus server makes one at a time
REQUEST_TIMEOUT_S = 5.0


class _Server(ThreadingMixIn, WSGIServer):
    """One thread per request, at most ``MAX_CLIENTS`` at once: a connection beyond that is closed at
    once, so a flood of idle connections cannot grow the daemon's threads without bound."""

    daemon_threads = True  # a stuck client never blocks the daemon's exit
    block_on_close = False
    request_queue_size = 128  # the listen backlog (socketserver's default is 5)

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._slots = threading.BoundedSemaphore(MAX_CLIENTS)
        self.refused = 0

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.refused += 1
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that timed out or went away is not news (socketserver would print a traceback)."""
        exc = sys.exc_info()[1]
        if isinstance(exc, TimeoutError | ConnectionError):
            return
        log.warning("metrics: a request from %s failed: %s", client_address, exc)


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    timeout = REQUEST_TIMEOUT_S  # per read: a client that sends nothing is dropped

    def setup(self) -> None:
        super().setup()
        # and per request: one that trickles a byte at a time is dropped too, its slot freed
        self._deadline = threading.Timer(2 * REQUEST_TIMEOUT_S, self._expire)
        self._deadline.daemon = True
        self._deadline.start()

    def _expire(self) -> None:
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def finish(self) -> None:
        self._deadline.cancel()
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:  # no access log on stderr
        pass


def parse_listen(text: str) -> tuple[str, int]:
    """``PORT``, ``HOST:PORT`` or ``[IPV6]:PORT`` → (host, port); host defaults to 127.0.0.1."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host = DEFAULT_HOST
    elif host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host or not host:
        raise InputError(f"expected PORT, HOST:PORT or [IPV6]:PORT, got {text!r}", where="metrics listen")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise InputError(f"bad port {port!r}", where="metrics listen")
    return host, int(port)


class MetricsServer:
    """``/metrics`` over HTTP from a private registry. Nothing listens until ``start()``.

    Serves the Prometheus text format, or OpenMetrics (with ``# UNIT``) when the scraper asks for it.
    ``port=0`` picks a free port (``address`` tells which).
    """

    def __init__(
        self, snapshot_fn: Callable[[], MetricsSnapshot], host: str = DEFAULT_HOST, port: int = DEFAULT_PORT
    ) -> None:
        self.host, self.port = host, port
        self.registry = CollectorRegistry(auto_describe=True)
        self.collector = SnapshotCollector(snapshot_fn)
        self.registry.register(self.collector)
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int] | None:
        return None if self._httpd is None else tuple(self._httpd.server_address[:2])  # type: ignore[return-value]

    def start(self) -> tuple[str, int]:
        if self._httpd is not None:
            raise RuntimeError("metrics server already started")
        cls = _Server6 if ":" in self.host else _Server
        try:
            httpd = make_server(
                self.host,
                self.port,
                make_wsgi_app(self.registry),
                server_class=cls,
                handler_class=_QuietHandler,
            )
        except OSError as e:
            raise UnavailableError(
                f"cannot listen on {self.host}:{self.port}: {e.strerror or e}", where="metrics"
            ) from e
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, args=(0.1,), name="tierctl-metrics", daemon=True
        )
        self._thread.start()
        log.info("metrics: serving on http://%s:%d/metrics", *httpd.server_address[:2])
        return self.address  # type: ignore[return-value]

    def stop(self) -> None:
        """Stop serving and close the socket (idempotent)."""
        httpd, thread = self._httpd, self._thread
        self._httpd = self._thread = None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> MetricsServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
