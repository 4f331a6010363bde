"""What one scrape exposes: the immutable :class:`MetricsSnapshot`, and the cycle-time accumulator.

Nothing here does I/O. The Service owns a :class:`CycleTimes` (one ``observe()`` per cycle); the rest
are frozen values that :func:`tierctl.service.metrics_service.snapshot_from_service` fills.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.utils import floatToGoString

from tierctl.core.mover import Outcome

#: values of ``tierctl_controller_state{state}`` (ServiceContract.status()["state"])
CONTROLLER_STATES: tuple[str, ...] = ("running", "paused", "dry-run")
#: values of ``tierctl_cgroup_override_pin{pin}``: "auto" = not pinned (the profile and policy decide)
PIN_STATES: tuple[str, ...] = ("fast", "slow", "auto")
#: values of ``tierctl_mover_pages_total{outcome}``: the mover's per-page outcomes
MOVER_OUTCOMES: tuple[str, ...] = tuple(o.name.lower() for o in Outcome)
#: values of ``tierctl_sampler_state{state}`` (``tierctl.samplers.chain.State``)
SAMPLER_STATES: tuple[str, ...] = ("idle", "running", "unavailable", "detached", "stopped")
TIERS: tuple[str, ...] = ("fast", "slow")
#: upper bounds (seconds) of the cycle-duration histogram buckets (+Inf is implied)
CYCLE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


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


#: values of ``tierctl_profile_reloads_total{trigger}`` exported from 0: SIGHUP and a change of the
#: profiles directory (``service.profile_watch``), the reloads the daemon runs itself; another trigger
#: (the socket API's ``reload``, once the Service counts it) is exported once it is counted
RELOAD_TRIGGERS: tuple[str, ...] = ("signal", "watch")
RELOAD_RESULTS: tuple[str, ...] = ("ok", "failed")


class ReloadCounts:
    """Profile reloads by trigger and result, and the last result: one ``observe()`` per reload, by
    whoever ran it (the daemon for SIGHUP and the directory watch). Like ``CycleTimes``, an accumulator
    owned outside this module; ``snapshot()`` is immutable."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str], int] = {}
        self._last_ok: bool | None = None
        self._lock = threading.Lock()

    def observe(self, trigger: str, ok: bool) -> None:
        with self._lock:
            key = (trigger, "ok" if ok else "failed")
            self._counts[key] = self._counts.get(key, 0) + 1
            self._last_ok = ok

    def snapshot(self) -> tuple[Mapping[tuple[str, str], int], bool | None]:
        """(count per (trigger, result), whether the last reload succeeded; None: none yet)."""
        with self._lock:
            return dict(self._counts), self._last_ok


@dataclass(frozen=True)
class SamplerSample:
    name: str
    up: bool  # state == "running"
    samples: int = 0
    dropped: int = 0
    bpf_run_seconds: float = 0.0
    user_cpu_seconds: float = 0.0
    state: str = ""  # one of SAMPLER_STATES (or another the chain reports); "": from ``up``

    @property
    def state_name(self) -> str:
        return self.state or ("running" if self.up else "idle")


@dataclass(frozen=True)
class PodInfo:
    """The pod a cgroup belongs to, as pod resolution found it (``cgroups()[i]["pod"]``)."""

    namespace: str
    name: str
    uid: str = ""
    qos: str = ""
    container: str | None = None


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
    # the heat (estimated accesses per cycle) of the cgroup's pages in each tier; None: not known
    fast_heat: float | None = None
    slow_heat: float | None = None
    pod: PodInfo | None = None  # None: not a pod, or not resolved (no tierctl_cgroup_info series)
    # pages the mover moved into the fast / slow tier since the daemon started; None: not reported
    promoted_pages: int | None = None
    demoted_pages: int | None = None


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
    # profile reloads by (trigger, result) as counted by whoever ran them (``ReloadCounts``), and
    # whether the last one succeeded (None: no reload since the start, the set loaded at start runs)
    reloads: Mapping[tuple[str, str], int] = field(default_factory=dict)
    last_reload_ok: bool | None = None
    # the memory-pressure ladder (docs/pressure.md); None/empty while it is off or unavailable
    memory_used: int | None = None
    memory_target: int | None = None
    pressure_actions: Mapping[str, int] = field(default_factory=dict)
    working_sets: Mapping[str, int] = field(default_factory=dict)
    oom_kills: int = 0
    # kernel knobs (KnobGuard): set and not yet restored, drifted from what tierctl set (None: could not
    # be checked), and left set by an earlier run that this run could not restore at start
    knobs_set: int = 0
    knobs_drifted: int | None = 0
    knobs_unrestored: int = 0
    # liveness (/healthz): the cycle period, and the age of the last cycle when the Service reports it
    cycle_period_s: float = 1.0
    last_cycle_age_s: float | None = None
