"""What the front ends show per cgroup, computed from the loop's latest snapshot (pure numpy).

``per_cgroup``: bytes per node and tier, hot bytes (pages at or above the policy's threshold for the
cgroup, or, for a policy without one, above the heat of the page that would fill the fast tier) and
the estimated fast-tier hit ratio (the fast pages' share of the cgroup's heat), and the Kubernetes pod
the cgroup belongs to, when it is one's (``pods``: a ``PodResolver.row``). ``detail``: the heat
histogram by tier, the address-space heat strip and the pages of each process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from tierctl.core.policy import MemoryState, capacity_threshold

STRIP = 64  # buckets of the address-space heat strip
HEAT_EDGES = np.r_[0.0, np.logspace(0, 8, 17)]


def per_cgroup(
    st: MemoryState,
    cgroups: Sequence[str],
    heat: np.ndarray,
    thresholds: np.ndarray | None,
    page: int,
    matches: Mapping[str, str],
    pins: Mapping[str, str],
    pods: Callable[[str], dict[str, Any] | None] | None = None,
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    if st.node.shape[0] == 0:
        return out
    present = st.node >= 0
    fast = st.topology.fast_lut()[st.node + 1]
    if heat.shape[0] != present.shape[0]:  # the heat model has not caught up with a re-indexing
        heat = np.zeros(present.shape[0], dtype=np.float32)
    if thresholds is None:
        thresholds = np.full(len(cgroups), capacity_threshold(heat, present, st.topology.fast_capacity))
    for i, path in enumerate(cgroups):
        mine = (st.cgroup == i) & present  # present pages (a simulated machine has others)
        if not mine.any():
            continue
        nodes = np.bincount(st.node[mine].astype(np.int64))
        h = heat[mine]
        thr = float(thresholds[i]) if i < len(thresholds) else np.inf
        total_heat = float(h.sum())
        out[path] = {
            "path": path,
            "profile": matches.get(path, "-"),
            "override": pins.get(path, "auto"),
            "bytes_per_node": {str(n): int(c) * page for n, c in enumerate(nodes) if c},
            "fast_bytes": int(np.count_nonzero(fast[mine])) * page,
            "slow_bytes": int(np.count_nonzero(~fast[mine])) * page,
            "hot_bytes": int(np.count_nonzero(h >= thr)) * page,
            "est_fast_hit_ratio": float(h[fast[mine]].sum() / total_heat) if total_heat > 0 else None,
        }
        if pods is not None and (pod := pods(path)) is not None:
            out[path]["pod"] = pod
    return out


def detail(
    st: MemoryState,
    index: int,
    heat: np.ndarray,
    pids_of: Callable[[np.ndarray], np.ndarray],
    comm: Callable[[int], str],
    migrations: Iterable[dict[str, Any]],
    path: str,
) -> dict[str, Any]:
    """The detail view of cgroup number ``index`` (``path``); ``pids_of(pages)``: the process of each
    page; ``migrations``: the ``migrated`` events to take this cgroup's share of."""
    mine = np.flatnonzero((st.cgroup == index) & (st.node >= 0))
    fast = st.topology.fast_lut()[st.node[mine] + 1]
    h = heat[mine].astype(np.float64)
    pids = pids_of(mine)
    procs = []
    for pid in np.unique(pids):
        counts = np.bincount(st.node[mine][pids == pid].astype(np.int64))
        procs.append(
            {
                "pid": int(pid),
                "comm": comm(int(pid)),
                "pages_per_node": {str(n): int(c) for n, c in enumerate(counts) if c},
            }
        )
    # the address-space heat strip: the cgroup's pages in (pid, address) order, in equal buckets
    n = mine.shape[0]
    bucket = np.arange(n) * STRIP // max(n, 1)
    per = np.maximum(np.bincount(bucket, minlength=STRIP), 1)
    edges = HEAT_EDGES
    return {
        "heat_strip": {
            "heat": (np.bincount(bucket, weights=h, minlength=STRIP) / per).tolist(),
            "fast_fraction": (np.bincount(bucket, weights=fast, minlength=STRIP) / per).tolist(),
            "pages_per_bucket": int(n // STRIP) if n >= STRIP else 1,
        },
        "heat_edges": edges.tolist(),
        # the top bin also counts everything hotter (its right edge is closed): no page is left out
        "heat_histogram": {
            "fast": np.histogram(np.minimum(h[fast], edges[-1]), edges)[0].tolist(),
            "slow": np.histogram(np.minimum(h[~fast], edges[-1]), edges)[0].tolist(),
        },
        "processes": procs,
        "recent_migrations": [  # this cgroup's share of each cycle's migrations
            {**{k: v for k, v in e.items() if k != "cgroups"}, **e["cgroups"][path]}
            for e in migrations
            if e["kind"] == "migrated" and path in e.get("cgroups", {})
        ][-20:],
    }
