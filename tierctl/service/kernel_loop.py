"""The control loop on the running kernel: samplers -> heat -> policy -> mover, cycle by cycle.

It wires the pieces together and owns their lifetimes: the memory view (tracked
pages of the target processes), the sampler chain (and, when asked, NUMA hint
faults through a KnobGuard), the policy and the mover. ``stop()`` detaches every
sampler and restores every knob that was changed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tierctl.core.controller import Controller, CycleReport
from tierctl.core.heat import HeatModel
from tierctl.core.mover import DryRunMover, Mover
from tierctl.core.policies import make_policy
from tierctl.core.policy import Quota
from tierctl.kernel.knobs import KnobGuard
from tierctl.kernel.memview import KernelMemoryView, Target
from tierctl.kernel.mover import KernelMover
from tierctl.kernel.numa import NumaSyscalls
from tierctl.kernel.procfs import ProcFS
from tierctl.kernel.thp import KpageflagsHugeResolver
from tierctl.kernel.topology import SysfsTopology
from tierctl.samplers.base import SourceSampler, Targets
from tierctl.samplers.bridge import ChainSampler
from tierctl.samplers.chain import SamplerChain, SamplerStatus
from tierctl.samplers.registry import SAMPLERS, make_samplers


@dataclass(frozen=True)
class LoopConfig:
    policy: str = "tierctl"
    budget_pages: int = 65536  # page moves per cycle (256 MiB at 4 KiB)
    rate_mbps: float | None = None  # migration bandwidth cap
    half_life: float = 4.0
    dry_run: bool = False
    samplers: Sequence[str] = field(default_factory=lambda: list(SAMPLERS))
    hint_faults_state: Path | None = None  # turn NUMA hint faults on, recording knobs in this file
    quotas: dict[int, Quota] = field(default_factory=dict)


class KernelLoop:
    def __init__(
        self,
        targets: Callable[[], Sequence[Target]],
        cfg: LoopConfig,
        *,
        procfs: ProcFS | None = None,
        numa: NumaSyscalls | None = None,
        topology: SysfsTopology | None = None,
    ) -> None:
        self.cfg = cfg
        self.targets = targets
        self.procfs = procfs or ProcFS()
        numa = numa or NumaSyscalls()
        self.view = KernelMemoryView(self.procfs, numa, topology or SysfsTopology(), targets)
        samplers: list[SourceSampler] = make_samplers(list(cfg.samplers))
        self.guard = KnobGuard(cfg.hint_faults_state) if cfg.hint_faults_state else None
        if self.guard is not None:
            from tierctl.samplers.fault import FaultSampler

            host = next((getattr(s, "host", None) for s in samplers if getattr(s, "host", None)), None)
            samplers = [FaultSampler(hint_faults=self.guard, host=host)] + [
                s for s in samplers if s.name != "bpf-fault"
            ]
        self.chain = SamplerChain(samplers, max_running=1)
        mover: Mover
        if cfg.dry_run:
            mover = DryRunMover()
        else:
            huge = KpageflagsHugeResolver(self.procfs) if os.geteuid() == 0 else None
            mover = KernelMover(
                numa, self.view, page_size=self.procfs.page_size, rate_mbps=cfg.rate_mbps, huge=huge
            )
        self.controller = Controller(
            sampler=ChainSampler(self.chain, lambda: self.view.index),
            memory=self.view,
            policy=make_policy(cfg.policy),
            mover=mover,
            heat=HeatModel(0, half_life=cfg.half_life),
            budget_pages=cfg.budget_pages,
            quotas=cfg.quotas,
        )
        self.now = 0
        self.watchdog_events: list[str] = []

    def start(self) -> list[SamplerStatus]:
        pids = tuple(pid for pid, _ in self.targets())
        return self.chain.start(Targets(pids=pids))

    def cycle(self) -> CycleReport:
        self.now += 1
        report = self.controller.cycle(self.now)
        self.watchdog_events += self.chain.watchdog()
        return report

    def stop(self) -> None:
        try:
            self.chain.stop()
        finally:
            if self.guard is not None:
                self.guard.restore_all()
