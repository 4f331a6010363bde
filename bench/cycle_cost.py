"""Cost of one decision cycle (samples -> heat -> policy -> plan) at millions of tracked pages.

A synthetic but busy state: 8 cgroups (two with quotas), a quarter of the pages
fit in the fast tier, first-touch placement unrelated to heat, Zipf heat, and a
sample batch of 1 % of the pages each cycle.  The budget is 10 % of the fast
tier, as in the quality benchmark.  Peak memory is measured with tracemalloc
(numpy reports its buffers to it): persistent per-page state plus the largest
transient allocation during a cycle.
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from typing import Any

import numpy as np

from tierctl.core.heat import HeatModel
from tierctl.core.plan import Plan
from tierctl.core.policies.tierctl import TierctlPolicy
from tierctl.core.policy import MemoryState, PolicyView, Quota
from tierctl.core.samples import make_batch
from tierctl.core.topology import Node, Topology
from tierctl.service.kernel_loop import LoopConfig

DAEMON_BUDGET = LoopConfig.budget_pages


def _state(n: int, rng: np.random.Generator) -> tuple[HeatModel, np.ndarray, np.ndarray, Topology]:
    heat = HeatModel(n)
    ranks = rng.permutation(n).astype(np.float32) + 1
    values = 1e4 / ranks
    values[rng.random(n, dtype=np.float32) < 0.3] = 0
    heat.load(values)
    heat.last_seen[:] = rng.integers(0, 50, n, dtype=np.int32)
    node = np.ones(n, dtype=np.int16)
    fast = n // 4
    node[rng.choice(n, fast - fast // 100, replace=False)] = 0  # 1 % free
    cgroup = (np.arange(n) * 8 // n).astype(np.uint16)
    topo = Topology((Node(0, 0, fast, fast // 100), Node(1, 1, n, n // 2)), demotion_targets={0: 1})
    return heat, node, cgroup, topo


def measure(n: int, cycles: int = 8, seed: int = 0, threads: int | None = None) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    heat, node, cgroup, topo = _state(n, rng)
    quotas = {0: Quota(min_pages=n // 40), 7: Quota(max_pages=n // 40)}
    policy = TierctlPolicy(threads=threads)
    budget = min((n // 4) // 10, DAEMON_BUDGET)
    state = MemoryState(node=node, cgroup=cgroup, n_cgroups=8, topology=topo)
    batches = [make_batch(rng.integers(0, n, n // 100), 100.0) for _ in range(cycles + 1)]
    times, peaks, moves, evaluated = [], [], [], []
    first_s = 0.0
    for c in range(cycles + 1):
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        t0 = time.perf_counter()
        heat.decay()
        heat.ingest(batches[c], now=100 + c)
        plan: Plan = policy.decide(
            PolicyView(now=100 + c, heat=heat, memory=state, budget=budget, quotas=quotas)
        )
        dt = time.perf_counter() - t0
        peaks.append(tracemalloc.get_traced_memory()[1] - base)
        tracemalloc.stop()
        if c == 0:  # the first decision evaluates every page (as after a re-index or a heat rebase)
            first_s = dt
            continue
        times.append(dt)
        moves.append(len(plan))
        assert policy.stats is not None
        evaluated.append(policy.stats.evaluated)
    persistent = heat.nbytes + node.nbytes + cgroup.nbytes + policy.evaluation.census.nbytes
    # a full evaluation comes back when the heat rebases (every 32 half-lives: the stored heat
    # would leave float32's range) or the page space is re-read; its share per cycle at the rebase
    # interval is added to the median
    every = 32 * heat.half_life
    median = float(np.median(times))
    return {
        "pages": n,
        "budget": budget,
        "cycle_s_median": median,
        "cycle_s_max": float(max(times)),
        "full_cycle_s": first_s,
        "cycles_between_full": every,
        "cycle_s_amortised": median + first_s / every,
        "evaluated_pages_median": float(np.median(evaluated)),
        "moves_planned_median": float(np.median(moves)),
        "persistent_bytes": persistent,
        "transient_peak_bytes": int(max(peaks)),
        "bytes_per_page": (persistent + max(peaks)) / n,
    }


def run(sizes: list[int]) -> dict[str, Any]:
    """Each size on one thread (the target is per core), then with the block passes on threads."""
    from tierctl.core.census import default_workers

    threads = default_workers()
    rows = []
    for n in sizes:
        r = measure(n, threads=1)
        r["cycle_s_median_threaded"] = measure(n, cycles=3, threads=threads)["cycle_s_median"]
        rows.append(r)
    base = rows[0]
    for r in rows:
        r["time_ratio_vs_smallest"] = r["cycle_s_amortised"] / base["cycle_s_amortised"]
        r["size_ratio_vs_smallest"] = r["pages"] / base["pages"]
    biggest = rows[-1]
    return {
        "sizes": sizes,
        "threads": threads,
        "rows": rows,
        "checks": {
            "64M_one_core_under_0.25s": any(
                r["pages"] >= 64 << 20 and r["cycle_s_amortised"] <= 0.25 for r in rows
            ),
            "time_ratio_largest_vs_smallest": biggest["time_ratio_vs_smallest"],
            "max_bytes_per_page": max(r["bytes_per_page"] for r in rows),
        },
    }
