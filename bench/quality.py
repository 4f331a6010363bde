"""Quality: each policy's fast-tier hit ratio as a fraction of the per-epoch oracle, per workload."""

from __future__ import annotations

from typing import Any

import numpy as np

from tierctl.core.policies import POLICIES
from tierctl.sim.runner import SimConfig, simulate
from tierctl.sim.workloads import WORKLOADS, make_workload


def run(seeds: list[int], sample_rate: float = 0.01) -> dict[str, Any]:
    rows = []
    for name in WORKLOADS:
        for seed in seeds:
            wl = make_workload(name, seed=seed)
            limit = wl.fast_pages // 10
            for policy in POLICIES:
                cfg = SimConfig(
                    fast_pages=wl.fast_pages,
                    policy=policy,
                    sample_rate=sample_rate,
                    migrate_limit=limit,
                    seed=seed,
                )
                r, _ = simulate(wl.trace, cfg, quotas=wl.quotas, workload=name)
                rows.append(
                    {
                        "workload": name,
                        "seed": seed,
                        "policy": policy,
                        "quality": r.quality,
                        "fast_hit_ratio": r.fast_hit_ratio,
                        "oracle_hit_ratio": r.oracle_hit_ratio,
                        "moved": r.promoted + r.demoted,
                        "slowdown": r.slowdown,
                    }
                )
    summary = []
    for name in WORKLOADS:
        for policy in POLICIES:
            q = np.array([r["quality"] for r in rows if r["workload"] == name and r["policy"] == policy])
            mv = np.array([r["moved"] for r in rows if r["workload"] == name and r["policy"] == policy])
            summary.append(
                {
                    "workload": name,
                    "policy": policy,
                    "quality_mean": float(q.mean()),
                    "quality_min": float(q.min()),
                    "moved_mean": float(mv.mean()),
                }
            )
    checks = {}
    for name in WORKLOADS:
        by = {s["policy"]: s for s in summary if s["workload"] == name}
        checks[name] = {
            "default_min_quality": by["tierctl"]["quality_min"],
            "meets_0.95": by["tierctl"]["quality_min"] >= 0.95,
            "ahead_of_static_and_nb2_every_seed": all(
                next(
                    r["quality"]
                    for r in rows
                    if r["workload"] == name and r["seed"] == s and r["policy"] == "tierctl"
                )
                > max(
                    r["quality"]
                    for r in rows
                    if r["workload"] == name and r["seed"] == s and r["policy"] in ("static", "nb2")
                )
                for s in seeds
            ),
        }
    return {
        "sample_rate": sample_rate,
        "migrate_limit": "10% of fast tier per epoch",
        "seeds": seeds,
        "runs": rows,
        "summary": summary,
        "checks": checks,
    }
