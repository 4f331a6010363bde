"""The snapshot of a running Service: :func:`snapshot_from_service` (the mapping is in metrics.py),
over the Service's API reads and its typed :class:`MetricsFacts`."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from tierctl.core.policy import MemoryState
from tierctl.errors import TierctlError
from tierctl.kernel.knobs import KnobGuard
from tierctl.service.metrics_snapshot import (
    CgroupSample,
    CycleHistogram,
    CycleTimes,
    MetricsSnapshot,
    PodInfo,
    ReloadCounts,
    SamplerSample,
)

log = logging.getLogger("tierctl.service.metrics")

# a line of KernelLoop.restored_at_start for a knob that could not be written back
_FAILED_RESTORE = re.compile(r"^\S.*: failed ")


def _num(x: Any, default: float = 0) -> Any:
    return x if isinstance(x, int | float) and not isinstance(x, bool) else default


def _pin(override: Any) -> str:
    if isinstance(override, Mapping):
        override = override.get("pin")
    return str(override) if override else "auto"


def _pod(d: Any) -> PodInfo | None:
    """``cgroups()[i]["pod"]``: {"namespace", "name", "uid", "qos", "container"}; None when unknown."""
    if not isinstance(d, Mapping) or not d.get("namespace") or not d.get("name"):
        return None
    container = d.get("container")
    return PodInfo(
        namespace=str(d["namespace"]),
        name=str(d["name"]),
        uid=str(d.get("uid") or ""),
        qos=str(d.get("qos") or ""),
        container=None if container is None else str(container),
    )


def _sampler(d: Mapping[str, Any]) -> SamplerSample:
    h = d.get("health") or {}
    state = str(d.get("state", ""))
    return SamplerSample(
        name=str(d.get("name", "?")),
        up=state == "running",
        samples=int(_num(h.get("samples"))),
        dropped=int(_num(h.get("dropped"))),
        bpf_run_seconds=_num(h.get("bpf_run_ns")) / 1e9,
        user_cpu_seconds=float(_num(h.get("cpu_seconds"))),
        state=state,
    )


def _histogram(d: Any) -> CycleHistogram:
    if not isinstance(d, Mapping):
        return CycleHistogram()
    return CycleHistogram(
        tuple(float(b) for b in d["bounds"]), tuple(int(c) for c in d["counts"]), float(d["sum"])
    )


@dataclass(frozen=True)
class MetricsFacts:
    """What a snapshot needs beyond the API's reads (``status``, ``cgroups``, ``pressure_status``),
    from the Service's own parts (``Service.metrics_facts``)."""

    heat: Mapping[str, tuple[float, float]] = field(default_factory=dict)  # path -> (fast, slow) heat
    knobs_set: int = 0
    knobs_drifted: int | None = 0  # None: they could not be read
    knobs_unrestored: int = 0  # knobs an earlier run left set that could not be written back
    last_reload_ok: bool | None = None  # the newest reload in the event log; None: none kept
    cycle_period_s: float = 1.0


class MetricsSource(Protocol):
    """What :func:`snapshot_from_service` reads: the Service, or a stand-in with the same reads."""

    def status(self) -> dict[str, Any]: ...

    def cgroups(self) -> list[dict[str, Any]]: ...

    def pressure_status(self) -> dict[str, Any]: ...

    def metrics_facts(self) -> MetricsFacts: ...


def heat_by_tier(st: MemoryState, names: Sequence[str], heat: np.ndarray) -> dict[str, tuple[float, float]]:
    """Per cgroup path, the heat of its present pages in the fast and in the slow tier, from the loop's
    latest memory state and the heat model's per-page heat — the weights of ``est_fast_hit_ratio``
    (``analytics.per_cgroup``: the fast pages' share of the cgroup's heat), so hit ratios aggregate as
    a ratio of sums."""
    present = st.node >= 0
    weights = np.asarray(heat, dtype=np.float64)
    if weights.shape[0] != present.shape[0]:  # the heat model has not caught up with a re-indexing
        weights = np.zeros(present.shape[0])
    fast = st.topology.fast_lut()[st.node + 1].astype(bool)
    owner = st.cgroup.astype(np.int64)
    ok = present & (owner >= 0) & (owner < len(names))
    n = len(names)
    fast_heat = np.bincount(owner[ok & fast], weights=weights[ok & fast], minlength=n)
    slow_heat = np.bincount(owner[ok & ~fast], weights=weights[ok & ~fast], minlength=n)
    pages = np.bincount(owner[ok], minlength=n)
    return {names[i]: (float(fast_heat[i]), float(slow_heat[i])) for i in range(n) if pages[i]}


def knob_counts(guard: KnobGuard | None, leftovers: Sequence[str]) -> tuple[int, int | None, int]:
    """(knobs set, knobs drifted or None when they could not be read, leftovers not restored);
    ``leftovers``: the lines ``KernelLoop.restored_at_start`` wrote for what a killed run left."""
    unrestored = sum(1 for line in leftovers if _FAILED_RESTORE.match(str(line)))
    if guard is None:
        return 0, 0, unrestored
    try:
        drifted: int | None = len(guard.verify())
    except TierctlError as e:
        log.warning("metrics: cannot verify the kernel knobs: %s", e)
        drifted = None
    return len(guard.records), drifted, unrestored


def last_reload_ok(events: Iterable[Mapping[str, Any]]) -> bool | None:
    """The result of the newest reload the event log holds (``reloaded`` / ``reload_failed``, whatever
    triggered it: signal, directory watch or API); None when it holds none."""
    kinds: list[Any] = []
    for _ in range(3):  # read without the Service lock: a cycle may append meanwhile
        try:
            kinds = [e.get("kind") for e in reversed(list(events))]
            break
        except RuntimeError:  # deque mutated during iteration
            kinds = []
    for k in kinds:
        if k in ("reloaded", "reload_failed"):
            return k == "reloaded"
    return None


def _count(x: Any) -> int | None:
    return None if _num(x, None) is None else int(x)


def _cgroup(c: Mapping[str, Any], heat: Mapping[str, tuple[float, float]]) -> CgroupSample:
    path = str(c["path"])
    fast_heat, slow_heat = heat.get(path, (None, None))
    return CgroupSample(
        path=path,
        profile=None if c.get("profile") is None else str(c["profile"]),
        pin=_pin(c.get("override")),
        bytes_per_node={str(n): int(_num(b)) for n, b in (c.get("bytes_per_node") or {}).items()},
        fast_bytes=int(_num(c.get("fast_bytes"))),
        slow_bytes=int(_num(c.get("slow_bytes"))),
        hot_bytes=int(_num(c.get("hot_bytes"))),
        est_fast_hit_ratio=None
        if _num(c.get("est_fast_hit_ratio"), None) is None
        else float(c["est_fast_hit_ratio"]),
        fast_heat=fast_heat,
        slow_heat=slow_heat,
        pod=_pod(c.get("pod")),
        promoted_pages=_count(c.get("promoted_pages")),
        demoted_pages=_count(c.get("demoted_pages")),
    )


def snapshot_from_service(
    service: MetricsSource, *, cycle_times: CycleTimes | None = None, reloads: ReloadCounts | None = None
) -> MetricsSnapshot:
    """A snapshot from ``service.status()``, ``cgroups()``, ``pressure_status()`` and
    ``metrics_facts()``; ``reloads``: the daemon's count of the reloads it ran (SIGHUP, the watch)."""
    st: Mapping[str, Any] = service.status()
    cgs: list[Mapping[str, Any]] = service.cgroups()
    facts = service.metrics_facts()
    moved = st.get("moved") or {}
    pr: Mapping[str, Any] = service.pressure_status()
    machine = pr.get("machine") or {}
    age = _num(st.get("last_cycle_age_s"), None)
    counted, last_counted = reloads.snapshot() if reloads is not None else ({}, None)
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
        reloads=counted,
        last_reload_ok=last_counted if facts.last_reload_ok is None else facts.last_reload_ok,
        tracked_pages=int(_num(st.get("tracked_pages"))),
        promoted_pages=int(_num(moved.get("promoted"))),
        demoted_pages=int(_num(moved.get("demoted"))),
        outcomes={str(k): int(_num(v)) for k, v in (moved.get("outcomes") or {}).items()},
        samplers=tuple(_sampler(d) for d in st.get("samplers") or () if isinstance(d, Mapping)),
        cycle_seconds=cycle_times.snapshot() if cycle_times else _histogram(st.get("cycle_seconds")),
        cgroups=tuple(_cgroup(c, facts.heat) for c in cgs),
        knobs_set=facts.knobs_set,
        knobs_drifted=facts.knobs_drifted,
        knobs_unrestored=facts.knobs_unrestored,
        cycle_period_s=facts.cycle_period_s,
        last_cycle_age_s=None if age is None else float(age),
    )
