"""The control loop on the running kernel: samplers -> heat -> policy -> mover, cycle by cycle.

It wires the pieces together and owns their lifetimes: the memory view (tracked
pages of the target processes), the sampler chain (and, when asked, NUMA hint
faults through a KnobGuard), the policy and the mover. ``stop()`` detaches every
sampler and restores every knob that was changed.

Every adapter, the knob guard and its mount table are made below ``LoopConfig.roots`` (the live
places by default, fake trees in tests). The loop makes the process's one ``BpfHost`` (``bpf_host``,
recording through the loop's guard): every BPF user shares it, the page samplers and — handed in by
the platform — the pressure ladder's stall source, so its use counts decide when the BPF stats sysctl
and a tracefs mount go back.

CPU budget: each cycle's own CPU time (the mover's excluded: the bandwidth cap bounds it) is
charged to a token bucket (``cpu_share`` of a core, ``cpu_burst_s`` at once). A cycle re-reads
every tracked page at most every ``refresh_s`` and runs the policy only when there is something
new (samples, a changed page space, moves in progress), each only while the budget is not in
debt; the sampler chain's watchdog lowers or detaches samplers over their own budget.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tierctl.core.budget import CpuBudget, CycleGate
from tierctl.core.controller import Controller, CycleReport
from tierctl.core.heat import DEFAULT_HALF_LIFE, HeatModel
from tierctl.core.mover import DryRunMover, Mover
from tierctl.core.policies import make_policy
from tierctl.core.policy import Quota
from tierctl.core.topology import Topology
from tierctl.errors import InputError, TierctlError
from tierctl.kernel.damon import DamonSysfs
from tierctl.kernel.knobs import KnobGuard
from tierctl.kernel.memview import KernelMemoryView, Target
from tierctl.kernel.mounts import LibcMounts
from tierctl.kernel.mover import KernelMover
from tierctl.kernel.numa import NumaSyscalls
from tierctl.kernel.pmu import EVENT_SOURCES
from tierctl.kernel.procfs import ProcFS
from tierctl.kernel.roots import Roots
from tierctl.kernel.thp import KpageflagsHugeResolver
from tierctl.kernel.topology import SysfsTopology
from tierctl.samplers.base import SourceSampler, Targets
from tierctl.samplers.bridge import ChainSampler
from tierctl.samplers.chain import Budget, SamplerChain, SamplerStatus
from tierctl.samplers.registry import SAMPLERS, bpf_host, make_samplers


@dataclass(frozen=True)
class LoopConfig:
    policy: str = "tierctl"
    policy_options: dict[str, Any] = field(default_factory=dict)  # keyword options of the policy
    budget_pages: int = 65536  # page moves per cycle (256 MiB at 4 KiB)
    rate_mbps: float | None = None  # migration bandwidth cap
    half_life: float = DEFAULT_HALF_LIFE
    dry_run: bool = False
    samplers: Sequence[str] = field(default_factory=lambda: list(SAMPLERS))
    max_running: int = 1  # samplers running at once: the first ones in ``samplers`` that can
    # the record of every kernel knob the loop changes (NUMA hint faults, the BPF stats sysctl, a tracefs
    # mount), restored at stop or, after a crash, at the next start; None: no record, so hint faults
    # stay off and the BPF samplers keep their own (under /run/tierctl)
    knob_state: Path | None = None
    # with a knob record: "on", "off", or "auto" = on where there is a slow tier, no PMU samples data
    # addresses (PEBS, IBS) and NUMA balancing is off (see _hint_reason)
    hint_faults: str = "auto"
    # where the kernel's interfaces are (knobs written below roots.root; fake trees in tests); None:
    # the platform's (KernelPlatform.make_loop fills them in), for a loop made alone the live ones
    roots: Roots | None = None
    quotas: dict[int, Quota] = field(default_factory=dict)
    cpu_share: float = 0.5  # of one core for sampling, re-reading and deciding (long run cap)
    cpu_burst_s: float = 5.0  # CPU seconds a shift may use at once
    refresh_s: float = 30.0  # full re-read of the tracked pages at most this often ...
    full_read_share: float = 0.01  # ... and no more often than keeps those reads within this share
    targets_check_s: float = 5.0  # look for new or gone target processes this often
    stale_rows: int = 1024  # samples of untracked pages that make the page space stale
    # per sampler, averaged over 10 s: a shift's burst of faults is not throttled away, a sampler
    # that stays expensive is slowed down (3 times, halving its rate) and then replaced
    sampler_budget: Budget = field(
        default_factory=lambda: Budget(cpu_share=0.05, bpf_share=0.05, window_s=10.0, max_throttles=3)
    )


class KernelLoop:
    def __init__(
        self,
        targets: Callable[[], Sequence[Target]],
        cfg: LoopConfig,
        *,
        procfs: ProcFS | None = None,
        numa: NumaSyscalls | None = None,
        topology: SysfsTopology | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if cfg.hint_faults not in ("auto", "on", "off"):
            raise InputError(f"must be auto, on or off, got {cfg.hint_faults!r}", "hint_faults")
        self.cfg = cfg
        self.targets = targets
        self.clock = clock
        self.roots = roots = cfg.roots if cfg.roots is not None else Roots()
        self.procfs = procfs or ProcFS(roots.proc)
        numa = numa or NumaSyscalls()
        topology = topology or SysfsTopology(roots.sys, roots.proc)
        # one guard for every knob the loop changes; the ones a killed run left set come back first:
        # "auto" must see the machine's own settings
        mounts = LibcMounts(roots.proc)
        damon = functools.partial(DamonSysfs, proc_root=roots.proc)  # a damon record's kdamonds
        self.guard = (
            KnobGuard(cfg.knob_state, roots.root, mounts=mounts, damon=damon)
            if cfg.knob_state is not None
            else None
        )
        self.restored_at_start = _restore_leftovers(self.guard)
        # the process's one BPF host: every BPF sampler and the stall source share it (and its counts)
        self.bpf_host = bpf_host(roots, self.guard)
        nodes, self.hint_reason = _hint_decision(cfg, topology, roots)
        samplers = make_samplers(list(cfg.samplers), knobs=self.guard, host=self.bpf_host, roots=roots)
        samplers = self._with_hint_faults(samplers, nodes)
        self.view = KernelMemoryView(self.procfs, numa, topology, targets)
        self.chain = SamplerChain(samplers, max_running=cfg.max_running, budget=cfg.sampler_budget)
        self.gate = CycleGate(CpuBudget(cfg.cpu_share, cfg.cpu_burst_s), cfg.refresh_s, cfg.full_read_share)
        self.bridge = ChainSampler(self.chain, lambda: self.view.index)
        self._pids: tuple[int, ...] = ()
        self._checked_at: float | None = None
        self._untracked_seen = 0
        self.controller = Controller(
            sampler=self.bridge,
            memory=self.view,
            policy=make_policy(cfg.policy, **cfg.policy_options),
            mover=self._mover(numa),
            heat=HeatModel(0, half_life=cfg.half_life),
            budget_pages=cfg.budget_pages,
            quotas=cfg.quotas,
            gate=lambda samples, changed: self.gate.decide(self.clock(), samples, changed),
        )
        self.now = 0
        self.watchdog_events: list[str] = []

    @property
    def hint_faults_on(self) -> bool:
        return self.guard is not None and not self.hint_reason

    def _with_hint_faults(self, samplers: list[SourceSampler], nodes: Topology | None) -> list[SourceSampler]:
        """With NUMA hint faults on, the fault sampler that turns them on leads the chain (on the
        loop's BPF host, like the others) and replaces a plain ``bpf-fault``."""
        if not self.hint_faults_on or self.guard is None or nodes is None:
            return samplers
        from tierctl.samplers.fault import FaultSampler

        cpu_nodes = sum(1 for n in nodes.nodes if n.cpus)
        hint = FaultSampler(hint_faults=self.guard, keep_locality=cpu_nodes > 1, host=self.bpf_host)
        return [hint] + [s for s in samplers if s.name != "bpf-fault"]

    def _mover(self, numa: NumaSyscalls) -> Mover:
        if self.cfg.dry_run:
            return DryRunMover()
        huge = KpageflagsHugeResolver(self.procfs) if os.geteuid() == 0 else None
        return KernelMover(
            numa, self.view, page_size=self.procfs.page_size, rate_mbps=self.cfg.rate_mbps, huge=huge
        )

    def start(self) -> list[SamplerStatus]:
        self._pids = self._target_pids()
        self._checked_at = self.clock()
        return self.chain.start(Targets(pids=self._pids))

    def _target_pids(self) -> tuple[int, ...]:
        return tuple(sorted({pid for pid, _ in self.targets()}))

    def _stale(self, now: float) -> bool:
        """Whether the tracked page space is known to be out of date: ``stale_rows`` samples of pages
        it does not have (shared pages are never tracked, so a few are normal), or (checked every
        ``targets_check_s``) target processes that came or went."""
        if self.bridge.untracked - self._untracked_seen >= self.cfg.stale_rows:
            return True
        if self._checked_at is not None and now - self._checked_at < self.cfg.targets_check_s:
            return False
        self._checked_at = now
        return self._target_pids() != self._pids

    def cycle(self) -> CycleReport:
        self.now += 1
        now = self.clock()
        full = self.gate.full_read(now, self.view.full_read_cpu_s, stale=self._stale(now))
        self.view.full_due = full
        report = self.controller.cycle(self.now)
        if full:
            self._untracked_seen = self.bridge.untracked
            pids = self._target_pids()
            if pids != self._pids:  # new processes: the samplers watch them from now on
                self._pids = pids
                self.watchdog_events += self.chain.retarget(Targets(pids=pids))
        # the first cycle's full read is start-up, like compiling a BPF program: not charged
        self.gate.finish(report.cpu_s if self.now > 1 else 0.0, report.promoted + report.demoted)
        self.watchdog_events += self.chain.watchdog()
        return report

    def stop(self) -> None:
        try:
            self.chain.stop()
        finally:
            if self.guard is not None:
                self.guard.restore_all()


def _restore_leftovers(guard: KnobGuard | None) -> list[str]:
    """Restore the knobs a killed run recorded (the guard adopted its record); what was restored,
    one line each."""
    out: list[str] = []
    if guard is None:
        return out
    if guard.problem:
        out.append(guard.problem)
    if guard.records:
        out += [
            f"{r.knob}: {r.outcome} {r.value!r}" + (f" ({r.error})" if r.error else "")
            for r in guard.restore_all()
        ]
    return out


def _hint_decision(cfg: LoopConfig, topology: SysfsTopology, roots: Roots) -> tuple[Topology | None, str]:
    """The machine's tiers, and why NUMA hint faults stay off ("" = they go on)."""
    try:
        found = topology.read()
    except TierctlError as e:
        return None, f"no topology: {e}"
    return found.topology, _hint_reason(cfg, found.topology, found.knobs.get("numa_balancing"), roots)


def _hint_reason(cfg: LoopConfig, nodes: Topology, mode: object, roots: Roots) -> str:
    """Why NUMA hint faults stay off ("" = they go on). ``auto`` turns them on only where nothing
    else shows accesses to resident pages: no PMU sampling, and NUMA balancing off (when it is on,
    the machine's own setting stays, and its hint faults reach the page-fault samplers)."""
    if cfg.hint_faults == "off" or cfg.knob_state is None:
        return "off"
    if cfg.hint_faults == "auto":
        if not nodes.slow_nodes:
            return "not needed: no slow tier (hint faults come from slow-tier pages only)"
        if isinstance(mode, int) and mode != 0:
            return (
                f"left as they are: NUMA balancing is on (mode {mode}) and its hint faults reach "
                "the page-fault samplers; --hint-faults on makes tierctl the only one promoting"
            )
        from tierctl.samplers.perf_addr import hardware_sampling

        pmu = hardware_sampling(roots.in_sys(EVENT_SOURCES))  # the PMU list in sysfs
        if pmu is not None:
            return f"not needed: {pmu} samples data addresses"
    return ""
