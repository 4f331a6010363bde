"""A live simulated two-tier machine as a Service platform: the TUI demo and host tests of the Service.

The built-in workload runs epoch by epoch (``advance()``, once per Service cycle,
paused or not); its cgroups appear under systemd-like paths so the shipped
profiles match them, each with one simulated process. The Service on top is the
daemon's own: same profiles, overrides, quotas, controller, policy and events —
only the memory view, mover and sampler are the simulator's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from tierctl import data
from tierctl.core.controller import Controller, CycleReport
from tierctl.core.heat import HeatModel
from tierctl.core.mover import DryRunMover, Mover
from tierctl.core.policies import make_policy
from tierctl.core.policy import MemoryState
from tierctl.core.samples import make_batch
from tierctl.errors import InputError, NoSuchProcessError
from tierctl.kernel.memview import Target
from tierctl.kernel.topology import KernelTopology
from tierctl.samplers.base import Health
from tierctl.samplers.chain import SamplerStatus
from tierctl.service.kernel_loop import LoopConfig
from tierctl.service.service import DaemonConfig, Service
from tierctl.sim.machine import MachineSpec, SimMachine, SimMemory, SimMover, SimSampler
from tierctl.sim.pressure_sim import SimPressureIO
from tierctl.sim.runner import thin
from tierctl.sim.workloads import Workload, make_workload

#: simulated cgroup name -> (cgroup path, process name); chosen so the shipped profiles match
PATHS: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "batch": ("/batch.slice/nightly-etl.service", "etl-worker"),
        "cache": ("/system.slice/redis-server.service", "redis-server"),
        "db": ("/system.slice/postgresql@16-main.service", "postgres"),
        "all": ("/system.slice/app.service", "app"),
    }
)
FIRST_PID = 4100
SAMPLE_RATE = 0.01


class SimCgroups:
    def __init__(self, paths: Sequence[str], pids: Sequence[int]) -> None:
        self._pids = {p.strip("/"): [pid] for p, pid in zip(paths, pids, strict=True)}

    def list(self) -> list[str]:
        return sorted(self._pids)

    def pids(self, path: str) -> list[int]:
        return list(self._pids.get(path.strip("/"), []))

    def exists(self, path: str) -> bool:
        p = path.strip("/")
        return p in self._pids or any(k.startswith(p + "/") for k in self._pids) or p == ""


class SimProcs:
    def __init__(self, comms: Mapping[int, str], page_size: int) -> None:
        self._comms = dict(comms)
        self.page_size = page_size

    def comm(self, pid: int) -> str:
        try:
            return self._comms[pid]
        except KeyError:
            raise NoSuchProcessError("no such simulated process", f"pid {pid}") from None


class SimTopology:
    def __init__(self, machine: SimMachine) -> None:
        self.machine = machine

    def read(self) -> KernelTopology:
        return KernelTopology(
            topology=self.machine.topology(),
            distances={0: [10, 20], 1: [20, 10]},
            memory_tiers={"memory_tier4": [0], "memory_tier22": [1]},
            tier_source="simulated two-tier machine",
            knobs={},
        )


class SimView:
    """The controller's memory view, plus what the Service reads: ``cgroups``, ``last``, ``locate``."""

    def __init__(
        self,
        machine: SimMachine,
        paths: Sequence[str],
        pids: np.ndarray,
        targets: Callable[[], Sequence[Target]],
    ) -> None:
        self._memory = SimMemory(machine)
        self._targets = targets
        self.cgroups = list(paths)  # cgroup index -> path, in the machine's owner order
        self._pid_of_page = pids[machine.cgroup]
        self._first = np.zeros(len(paths), np.int64)  # first page of each cgroup = its vpn 0
        for i in range(len(paths)):
            mine = np.flatnonzero(machine.cgroup == i)
            self._first[i] = mine[0] if mine.shape[0] else 0
        self._cgroup = machine.cgroup
        self.last: MemoryState | None = None
        self.refused: dict[int, str] = {}  # a simulated process can always be read

    def snapshot(self) -> MemoryState:
        self._targets()  # the Service's discovery runs as on the kernel (profile matching)
        self.last = self._memory.snapshot()
        return self.last

    def locate(self, pages: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        vpn = pages - self._first[self._cgroup[pages]]
        return self._pid_of_page[pages].astype(np.int64), (vpn.astype(np.uint64) << np.uint64(12))


class SimChain:
    """The sampler chain's face for the Service: one simulated sampler, always healthy."""

    def __init__(self, sampler: SimSampler) -> None:
        self.sampler = sampler
        self.health = Health()

    def drain(self) -> np.ndarray:
        return self.sampler.drain()

    def status(self) -> list[SamplerStatus]:
        return [SamplerStatus("sim", "running", f"simulated {SAMPLE_RATE:.0%} access sampling", self.health)]


class SimLoop:
    """The Controller on the simulated machine; ``play()`` runs the workload's next epoch."""

    def __init__(
        self,
        workload: Workload,
        machine: SimMachine,
        paths: Sequence[str],
        targets: Callable[[], Sequence[Target]],
        cfg: LoopConfig,
        *,
        seed: int = 0,
    ) -> None:
        trace = workload.trace
        self.workload = workload
        self.trace = trace
        self.owners = machine.cgroup.astype(np.int64)
        self.seed = seed
        self.machine = machine
        pids = FIRST_PID + np.arange(len(paths), dtype=np.int64)
        self.view = SimView(machine, paths, pids, targets)
        self.restored_at_start: list[str] = []  # a simulated machine has no kernel knobs
        self.hint_reason = "off"
        self.guard = None
        self.sampler = SimSampler()
        self.chain = SimChain(self.sampler)
        mover: Mover = DryRunMover() if cfg.dry_run else SimMover(self.machine)
        self.controller = Controller(
            sampler=self.chain,
            memory=self.view,
            policy=make_policy(cfg.policy, **cfg.policy_options),
            mover=mover,
            heat=HeatModel(trace.n_pages, half_life=cfg.half_life),
            budget_pages=min(cfg.budget_pages, max(1, workload.fast_pages // 10)),
        )
        self.watchdog_events: list[str] = []
        self.now = 0
        self.epoch = 0  # epochs played; the trace repeats when it ends
        self.accesses = 0
        self.fast_hits = 0

    def play(self) -> None:
        e = self.epoch % self.trace.n_epochs
        page, count = self.trace.epoch(e)
        self.machine.touch(page)
        fast = self.machine.node[page] == 0
        self.accesses += int(count.sum())
        self.fast_hits += int(count[fast].sum())
        o_page, o_count = thin(page, count, SAMPLE_RATE, self.seed, self.epoch)
        weight = np.float32(1.0 / SAMPLE_RATE)
        batch = make_batch(
            o_page,
            o_count.astype(np.float32) * weight,
            cgroup=self.owners[o_page],
            node=self.machine.node[o_page],
        )
        self.sampler.push(batch)
        self.chain.health.samples += int(o_page.shape[0])
        self.epoch += 1

    def start(self) -> list[SamplerStatus]:
        return self.chain.status()

    def cycle(self) -> CycleReport:
        self.now += 1
        return self.controller.cycle(self.now)

    def stop(self) -> None:
        return None


class SimPlatform:
    name = "sim"

    def __init__(self, workload: Workload, *, seed: int = 0) -> None:
        trace = workload.trace
        owners, names = trace.owners()
        self.workload = workload
        self.seed = seed
        self.machine = SimMachine(MachineSpec(workload.fast_pages, trace.page_size), trace.n_pages, owners)
        self.paths = [PATHS.get(n, (f"/system.slice/{n}.service", n))[0] for n in names]
        comms = {FIRST_PID + i: PATHS.get(n, ("", n))[1] for i, n in enumerate(names)}
        self.cgroups = SimCgroups(self.paths, list(comms))
        self.procs = SimProcs(comms, trace.page_size)
        self.topology = SimTopology(self.machine)
        self.loop: SimLoop | None = None

    def pressure_io(self) -> SimPressureIO:
        """A small memory model around the trace's pages (tierctl/sim/pressure_sim.py): the ladder
        runs on it as on the kernel, and the front ends show its figures."""
        return SimPressureIO(self.machine, self.paths, seed=self.seed)

    def make_loop(self, targets: Callable[[], Sequence[Target]], cfg: LoopConfig) -> SimLoop:
        if self.loop is not None:
            raise InputError("a simulated machine runs one loop", "sim platform")
        self.loop = SimLoop(self.workload, self.machine, self.paths, targets, cfg, seed=self.seed)
        return self.loop

    def advance(self) -> None:
        if self.loop is None:
            raise InputError("no loop yet", "sim platform")
        self.loop.play()


def sim_service(
    workload: str = "multi-cgroup",
    *,
    seed: int = 0,
    state_dir: Path,
    profiles_dir: Path | None = None,
    epochs: int = 60,  # the trace repeats: multi-cgroup's database hot set moves every 30 epochs
    clock: Callable[[], float] = time.monotonic,
    wall: Callable[[], float] = time.time,
    dry_run: bool = False,
    cycle_log: Path | None = None,
    policy: str = "tierctl",
    policy_options: Mapping[str, Any] | None = None,
) -> Service:
    """A Service on a simulated two-tier machine running a built-in workload; each ``cycle()`` = one epoch."""
    try:
        w = make_workload(workload, seed=seed, epochs=epochs)
    except InputError as e:
        raise InputError(e.message, "--sim") from None
    platform = SimPlatform(w, seed=seed)
    cfg = DaemonConfig(
        profiles_dir=profiles_dir or data.profiles_dir(),
        state_dir=state_dir,
        dry_run=dry_run,
        cycle_s=w.trace.epoch_s,
        samplers=("sim",),
        cycle_log=cycle_log,
        policy=policy,
        policy_options=dict(policy_options or {}),
    )
    return Service(cfg, platform=platform, clock=clock, wall=wall)
