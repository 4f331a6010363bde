"""Run a policy on a trace through the real Controller and score it against the oracle and the
causal ceiling (tierctl/sim/ceiling.py).

Epoch e: the controller's cycle e runs first (it sees only what was observed in
epochs < e), then epoch e's first touches are allocated and its accesses are
served with the residency at that moment.

Sampling modes: "all" observes each access with probability p (weight 1/p); "hint" the same,
slow-tier accesses only (NUMA hint faults); "scan" is hint-fault-like: each page is armed once
every ``scan_period`` epochs (staggered by page id: armed at the start of epochs e with
(e + page) % scan_period == 0), an armed page's first access disarms it, and if the page is in the
slow tier then that access yields ONE sample of weight 1 (the sampler's unit is one observation).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from tierctl.core.controller import Controller
from tierctl.core.heat import DEFAULT_HALF_LIFE, HeatModel
from tierctl.core.policies import make_policy, with_threads
from tierctl.core.policy import Quota
from tierctl.core.samples import make_batch
from tierctl.errors import InputError
from tierctl.sim.ceiling import Ceiling, RateFn, causal_ceiling
from tierctl.sim.machine import SLOW, MachineSpec, SimMachine, SimMemory, SimMover, SimSampler
from tierctl.sim.trace import Trace, check_observed

SampleMode = Literal["all", "hint", "scan"]
SAMPLE_MODES: tuple[SampleMode, ...] = ("all", "hint", "scan")


@dataclass(frozen=True)
class SimConfig:
    fast_pages: int
    policy: str = "tierctl"
    sample_rate: float = 0.01
    migrate_limit: int | None = None  # pages per epoch; None = 10 % of the fast tier
    seed: int = 0
    sample_mode: SampleMode = "all"
    scan_period: int = 4  # epochs between two armings of a page ("scan" sample mode)
    half_life: float = DEFAULT_HALF_LIFE
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
    ceiling_hit_ratio: float  # the causal ceiling's hit ratio (tierctl/sim/ceiling.py)
    vs_ceiling: float  # fast_hit_ratio / ceiling_hit_ratio
    ceiling_from: str  # "rates" (true rate vectors) or "counts" (previous epoch's counts)
    sample_mode: str
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


def scan_samples(
    page: np.ndarray, node: np.ndarray, armed: np.ndarray, stagger: np.ndarray, epoch: int, period: int
) -> tuple[np.ndarray, np.ndarray]:
    """Scan sampling for one epoch: arm this epoch's share of the pages, then every armed page
    accessed (``page`` = the epoch's rows) is disarmed, and yields one sample of weight 1 when it is
    in the slow tier. Updates ``armed`` in place."""
    armed |= stagger == (-epoch) % period  # page p is armed at the start of epochs e, (e + p) % period == 0
    hit = page[armed[page]]
    armed[hit] = False
    seen = hit[node[hit] == SLOW]
    return seen, np.ones(seen.shape[0], dtype=np.float32)


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
    rates: RateFn | None = None,
    ceiling: Ceiling | None = None,
) -> tuple[SimResult, np.ndarray | None]:
    """Run ``cfg.policy`` over ``trace``. ``rates(e)`` = the true rate vector of epoch e when known
    (built-in workloads), for the causal ceiling; without it the ceiling uses the previous epoch's
    counts. A ``ceiling`` computed beforehand for the same trace, fast tier and limit is reused."""
    t0 = time.perf_counter()
    if not 0 < cfg.sample_rate <= 1:
        raise InputError(f"must be in (0, 1], got {cfg.sample_rate}", "--sample-rate")
    if cfg.sample_mode not in SAMPLE_MODES:
        modes = ", ".join(SAMPLE_MODES)
        raise InputError(f"must be one of {modes}, got {cfg.sample_mode!r}", "--sample-mode")
    if cfg.scan_period < 1:
        raise InputError(f"must be >= 1, got {cfg.scan_period}", "--scan-period")
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
    # the block passes' threads, unless given, for this machine (the core never counts CPUs)
    policy = make_policy(cfg.policy, **with_threads(cfg.policy, cfg.policy_options, os.cpu_count()))
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
    armed = np.zeros(trace.n_pages, dtype=bool) if cfg.sample_mode == "scan" else None
    stagger = np.arange(trace.n_pages) % cfg.scan_period if armed is not None else None
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
        if armed is not None and stagger is not None:
            o_page, o_weight = scan_samples(page, machine.node, armed, stagger, e, cfg.scan_period)
        else:
            if observed is not None:
                o_page, o_count = observed.epoch(e)
            else:
                o_page, o_count = thin(page, count, cfg.sample_rate, cfg.seed, e)
            if cfg.sample_mode == "hint":
                keep = machine.node[o_page] == SLOW
                o_page, o_count = o_page[keep], o_count[keep]
            o_weight = o_count.astype(np.float32) * weight
        o_node = machine.node[o_page]
        sampler.push(make_batch(o_page, o_weight, cgroup=owners[o_page], node=o_node))
    if ceiling is None:
        ceiling = causal_ceiling(trace, cfg.fast_pages, limit, rates)
    ceil = ceiling.hit_ratio
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
        ceiling_hit_ratio=ceil,
        vs_ceiling=ratio / ceil if ceil else 1.0,
        ceiling_from=ceiling.source,
        sample_mode=cfg.sample_mode,
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
