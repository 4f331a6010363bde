"""Run a policy on a trace through the real Controller and score it against the oracle.

Epoch e: the controller's cycle e runs first (it sees only what was observed in
epochs < e), then epoch e's first touches are allocated and its accesses are
served with the residency at that moment.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from tierctl.core.controller import Controller
from tierctl.core.heat import HeatModel
from tierctl.core.policies import make_policy
from tierctl.core.policy import Quota
from tierctl.core.samples import make_batch
from tierctl.errors import InputError
from tierctl.sim.machine import SLOW, MachineSpec, SimMachine, SimMemory, SimMover, SimSampler
from tierctl.sim.trace import Trace, check_observed

SampleMode = Literal["all", "hint"]


@dataclass(frozen=True)
class SimConfig:
    fast_pages: int
    policy: str = "tierctl"
    sample_rate: float = 0.01
    migrate_limit: int | None = None  # pages per epoch; None = 10 % of the fast tier
    seed: int = 0
    sample_mode: SampleMode = "all"
    half_life: float = 4.0
    policy_options: Mapping[str, Any] = field(default_factory=dict)
    fast_latency_ns: float = 100.0
    slow_latency_ns: float = 300.0
    fast_bandwidth_mbps: float = 20_000.0
    slow_bandwidth_mbps: float = 5_000.0

    def limit(self) -> int:
        return self.migrate_limit if self.migrate_limit is not None else max(1, self.fast_pages // 10)


@dataclass
class SimResult:
    policy: str
    workload: str
    epochs: int
    n_pages: int
    fast_pages: int
    sample_rate: float
    migrate_limit: int
    accesses: int
    fast_hits: int
    fast_hit_ratio: float
    oracle_hit_ratio: float
    quality: float  # fast_hit_ratio / oracle_hit_ratio
    promoted: int
    demoted: int
    mean_latency_ns: float
    oracle_latency_ns: float
    slowdown: float  # mean latency / all-DRAM latency
    migration_seconds: float  # moved bytes / slow-tier bandwidth (every move reads or writes the slow tier)
    migration_share: float  # migration_seconds / run time (epochs * epoch_s)
    per_cgroup: dict[str, dict[str, float]]
    outcomes: dict[str, int]
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def thin(
    page: np.ndarray, count: np.ndarray, p: float, seed: int, epoch: int
) -> tuple[np.ndarray, np.ndarray]:
    """Observe each access independently with probability p (per-epoch RNG: causal and reproducible)."""
    rng = np.random.default_rng([seed, epoch, 0x5A11])
    seen = rng.binomial(count, p)
    keep = seen > 0
    return page[keep], seen[keep]


def oracle_hits(count: np.ndarray, k: int) -> int:
    """Accesses the fast tier serves this epoch if it holds the epoch's k most accessed pages."""
    if count.shape[0] <= k:
        return int(count.sum())
    return int(np.partition(count, count.shape[0] - k)[count.shape[0] - k :].sum())


def simulate(
    trace: Trace,
    cfg: SimConfig,
    *,
    observed: Trace | None = None,
    quotas: Mapping[int, Quota] | None = None,
    workload: str = "trace",
    keep_residency: bool = False,
) -> tuple[SimResult, np.ndarray | None]:
    t0 = time.perf_counter()
    if not 0 < cfg.sample_rate <= 1:
        raise InputError(f"must be in (0, 1], got {cfg.sample_rate}", "--sample-rate")
    if cfg.migrate_limit is not None and cfg.migrate_limit < 0:
        raise InputError(f"must be >= 0, got {cfg.migrate_limit}", "--migrate-limit")
    if observed is not None:
        check_observed(trace, observed, "--observed")
    owners, names = trace.owners()
    spec = MachineSpec(
        cfg.fast_pages,
        trace.page_size,
        cfg.fast_latency_ns,
        cfg.slow_latency_ns,
        cfg.fast_bandwidth_mbps,
        cfg.slow_bandwidth_mbps,
    )
    machine = SimMachine(spec, trace.n_pages, owners)
    sampler = SimSampler()
    limit = cfg.limit()
    policy = make_policy(cfg.policy, **dict(cfg.policy_options))
    ctl = Controller(
        sampler=sampler,
        memory=SimMemory(machine),
        policy=policy,
        mover=SimMover(machine),
        heat=HeatModel(trace.n_pages, half_life=cfg.half_life),
        budget_pages=limit,
        quotas=quotas,
    )
    n_epochs = trace.n_epochs
    residency = np.zeros((n_epochs, (trace.n_pages + 7) // 8), np.uint8) if keep_residency else None
    n_cg = len(names)
    cg_acc = np.zeros(n_cg, dtype=np.float64)
    cg_hit = np.zeros(n_cg, dtype=np.float64)
    hits = total = best = 0
    weight = np.float32(1.0 / cfg.sample_rate)
    for e in range(n_epochs):
        if e > 0:
            ctl.cycle(now=e)
        page, count = trace.epoch(e)
        machine.touch(page)
        fast_rows = machine.node[page] == 0
        if residency is not None:
            residency[e] = np.packbits(machine.fast_mask())
        hits += int(count[fast_rows].sum())
        total += int(count.sum())
        best += oracle_hits(count, cfg.fast_pages)
        cg_rows = owners[page]
        cg_acc += np.bincount(cg_rows, weights=count, minlength=n_cg)[:n_cg]
        cg_hit += np.bincount(cg_rows, weights=count * fast_rows, minlength=n_cg)[:n_cg]
        if observed is not None:
            o_page, o_count = observed.epoch(e)
        else:
            o_page, o_count = thin(page, count, cfg.sample_rate, cfg.seed, e)
        o_node = machine.node[o_page]
        if cfg.sample_mode == "hint":
            keep = o_node == SLOW
            o_page, o_count, o_node = o_page[keep], o_count[keep], o_node[keep]
        sampler.push(
            make_batch(o_page, o_count.astype(np.float32) * weight, cgroup=owners[o_page], node=o_node)
        )
    outcomes = dict(ctl.totals.outcomes)
    promoted, demoted = ctl.totals.promoted, ctl.totals.demoted
    ratio = hits / total if total else 1.0
    oracle = best / total if total else 1.0
    lf, ls = cfg.fast_latency_ns, cfg.slow_latency_ns
    mean_lat = ratio * lf + (1 - ratio) * ls
    mig_s = (promoted + demoted) * trace.page_size / (cfg.slow_bandwidth_mbps * 1e6)
    per_cg = {
        names[i]: {
            "accesses": float(cg_acc[i]),
            "fast_hit_ratio": float(cg_hit[i] / cg_acc[i]) if cg_acc[i] else 1.0,
        }
        for i in range(n_cg)
    }
    result = SimResult(
        policy=cfg.policy,
        workload=workload,
        epochs=n_epochs,
        n_pages=trace.n_pages,
        fast_pages=cfg.fast_pages,
        sample_rate=cfg.sample_rate,
        migrate_limit=limit,
        accesses=total,
        fast_hits=hits,
        fast_hit_ratio=ratio,
        oracle_hit_ratio=oracle,
        quality=ratio / oracle if oracle else 1.0,
        promoted=promoted,
        demoted=demoted,
        mean_latency_ns=mean_lat,
        oracle_latency_ns=oracle * lf + (1 - oracle) * ls,
        slowdown=mean_lat / lf,
        migration_seconds=mig_s,
        migration_share=mig_s / (n_epochs * trace.epoch_s) if n_epochs else 0.0,
        per_cgroup=per_cg,
        outcomes=outcomes,
        seconds=time.perf_counter() - t0,
    )
    return result, residency
