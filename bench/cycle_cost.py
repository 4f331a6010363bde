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
import math
import os
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


def measure(n: int, cycles: int = 12, seed: int = 0, threads: int | None = None) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    heat, node, cgroup, topo = _state(n, rng)
    quotas = {0: Quota(min_pages=n // 40), 7: Quota(max_pages=n // 40)}
    policy = TierctlPolicy(threads=threads)
    budget = min((n // 4) // 10, DAEMON_BUDGET)
    state = MemoryState(node=node, cgroup=cgroup, n_cgroups=8, topology=topo)
    batches = [make_batch(rng.integers(0, n, n // 100), 100.0) for _ in range(cycles + 1)]
    # the same current heat, with the lazy decay's scale 3 cycles short of a rebase (stored heat is
    # multiplied by an exact power of two every 32 half-lives): the run includes one, as a long
    # run does once per 32 half-lives
    near = 2.0**-32 / heat.decay_factor**3.5
    heat.load(heat.heat / np.float32(near))
    heat.decay(math.log(near) / math.log(heat.decay_factor))
    times, peaks, moves, evaluated = [], [], [], []
    first_s, rebase_s, full_peak = 0.0, 0.0, 0
    for c in range(cycles + 1):
        # memory is traced on even cycles (the first, full one included) and time taken on odd
        # ones: tracemalloc's hooks on every allocation would slow the timed cycles
        traced = c % 2 == 0
        units = heat.rebased_log2
        gc.collect()
        if traced:
            tracemalloc.start()
            base = tracemalloc.get_traced_memory()[0]
        t0 = time.perf_counter()
        heat.decay()
        heat.ingest(batches[c], now=100 + c)
        plan: Plan = policy.decide(
            PolicyView(now=100 + c, heat=heat, memory=state, budget=budget, quotas=quotas)
        )
        dt = time.perf_counter() - t0
        if traced:
            peak = tracemalloc.get_traced_memory()[1] - base
            tracemalloc.stop()
            if c == 0:
                full_peak = peak
            else:
                peaks.append(peak)
        if c == 0:  # the first decision evaluates every page (as after a re-index or a full read)
            first_s = dt
        elif heat.rebased_log2 != units:  # the rebase cycle (odd): counted by its share below
            rebase_s = dt
        elif not traced:
            times.append(dt)
            moves.append(len(plan))
            assert policy.stats is not None
            evaluated.append(policy.stats.evaluated)
    persistent = heat.nbytes + node.nbytes + cgroup.nbytes + policy.evaluation.census.nbytes
    # a rebase (every 32 half-lives) shifts the census codes and region sums instead of evaluating
    # every page again: its extra cost per cycle at that interval is added to the median. A full
    # evaluation follows only a full read of where the pages are (or a re-indexed page space),
    # whose own cost the daemon's gate keeps to a share of its CPU (docs/daemon.md)
    assert rebase_s > 0, "the run did not cross a rebase"
    every = 32 * heat.half_life
    median = float(np.median(times))
    return {
        "pages": n,
        "budget": budget,
        "cycle_s_median": median,
        "cycle_s_max": float(max(times)),
        "full_cycle_s": first_s,
        "rebase_cycle_s": rebase_s,
        "cycles_between_rebases": every,
        "cycle_s_amortised": median + max(0.0, rebase_s - median) / every,
        "evaluated_pages_median": float(np.median(evaluated)),
        "moves_planned_median": float(np.median(moves)),
        "persistent_bytes": persistent,
        "transient_peak_bytes": int(max(*peaks, full_peak)),
        "transient_peak_steady_bytes": int(max(peaks)),
        "bytes_per_page": (persistent + max(*peaks, full_peak)) / n,  # the worst, full pass included
        "bytes_per_page_steady": (persistent + max(peaks)) / n,
    }


def run(sizes: list[int]) -> dict[str, Any]:
    """Each size on one thread (the target is per core), then with the block passes on threads."""
    from tierctl.core.census import default_workers

    threads = default_workers(os.cpu_count())
    rows = []
    for n in sizes:
        r = measure(n, threads=1)
        r["cycle_s_median_threaded"] = measure(n, cycles=5, threads=threads)["cycle_s_median"]
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
