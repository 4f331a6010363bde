"""What the Service runs on: the real kernel, or a simulated machine (``tierctl.sim.live``).

A platform hands the Service its adapters — cgroups (``list``/``pids``/``exists``),
processes (``comm``/``page_size``), topology (``read()``) — and builds the control
loop. ``advance()`` lets the world run up to the next cycle: the real kernel runs
by itself (nothing to do); a simulated machine plays one epoch of its workload,
whether the controller is paused or not.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from tierctl.core.controller import Controller
from tierctl.errors import InputError
from tierctl.kernel.cgroupfs import CgroupFS
from tierctl.kernel.memview import Target
from tierctl.kernel.procfs import ProcFS
from tierctl.kernel.roots import Roots
from tierctl.kernel.topology import KernelTopology, SysfsTopology
from tierctl.samplers.chain import SamplerStatus
from tierctl.service.kernel_loop import KernelLoop, LoopConfig
from tierctl.service.pressure import Actuators, Facts, Stalls
from tierctl.service.pressure_wake import PressureWake

if TYPE_CHECKING:
    from tierctl.service.pressure_kernel import KernelPressureIO


class Cgroups(Protocol):
    def list(self) -> list[str]: ...

    def pids(self, path: str) -> list[int]: ...

    def exists(self, path: str) -> bool: ...


class Processes(Protocol):
    @property
    def page_size(self) -> int: ...

    def comm(self, pid: int) -> str: ...


class TopologySource(Protocol):
    def read(self) -> KernelTopology: ...


class Chain(Protocol):
    def drain(self) -> Any: ...

    def status(self) -> list[SamplerStatus]: ...


class View(Protocol):
    cgroups: list[str]
    last: Any  # MemoryState | None
    refused: dict[int, str]  # pid -> why it may not be read (skipped, reported once)

    def locate(self, pages: Any) -> tuple[Any, Any]: ...


class Loop(Protocol):
    view: View
    chain: Chain
    controller: Controller
    watchdog_events: list[str]
    restored_at_start: list[str]  # knobs a killed run left set, restored before the loop started
    hint_reason: str  # why NUMA hint faults are off ("" = on)
    guard: Any  # the KnobGuard of every knob the loop changes (None: none)

    def start(self) -> list[SamplerStatus]: ...

    def cycle(self) -> Any: ...  # CycleReport

    def stop(self) -> None: ...


class PressureIO(Facts, Actuators, Protocol):
    def own_cgroup(self) -> str: ...

    def stall_source(self, knobs: Any = None) -> Stalls:
        """Reclaim stalls and OOM victims, started; ``knobs``: the daemon's knob guard."""
        ...

    def cgroup_path(self, cgroup_id: int) -> str | None: ...

    def wake(self) -> PressureWake | None:
        """What wakes the ladder between cycles (PSI triggers, the target); None: nothing does."""
        ...


class Platform(Protocol):
    name: str
    cgroups: Cgroups
    procs: Processes
    topology: TopologySource

    def make_loop(self, targets: Callable[[], Sequence[Target]], cfg: LoopConfig) -> Loop: ...

    def advance(self) -> None: ...

    def pressure_io(self) -> PressureIO | None:
        """The facts and actuators of the memory-pressure ladder; None where there are none."""
        ...


class KernelPlatform:
    """The running kernel, through the adapters in ``tierctl.kernel``, every one made below ``roots``
    (default: the live places; ``cgroup_root``, when given, replaces ``roots.cgroup``). The loop runs
    below the same roots and makes the process's one BpfHost, which the pressure IO's stall source
    shares: make the loop before the pressure IO."""

    name = "kernel"

    def __init__(self, cgroup_root: Path | None = None, *, roots: Roots | None = None) -> None:
        roots = roots if roots is not None else Roots()
        if cgroup_root is not None:
            roots = dataclasses.replace(roots, cgroup=Path(cgroup_root))
        self.roots = roots
        self.procs = ProcFS(roots.proc)
        self.cgroups = CgroupFS(roots.cgroup, proc_root=roots.proc)
        self.topology = SysfsTopology(roots.sys, roots.proc)
        self.loop: KernelLoop | None = None  # the loop made last (its BPF host is the stall source's)

    def make_loop(self, targets: Callable[[], Sequence[Target]], cfg: LoopConfig) -> KernelLoop:
        """The control loop below this platform's roots (a config naming other roots is refused)."""
        if cfg.roots is None:
            cfg = dataclasses.replace(cfg, roots=self.roots)
        elif cfg.roots != self.roots:
            raise InputError(f"the loop's roots {cfg.roots} are not the platform's {self.roots}", "roots")
        self.loop = KernelLoop(targets, cfg, procfs=self.procs, topology=self.topology)
        return self.loop

    def advance(self) -> None:
        return None

    def pressure_io(self) -> KernelPressureIO:
        """The ladder's facts and actuators; its stall source runs on the loop's BPF host (one per
        process: its use counts decide when the BPF stats sysctl and tracefs go back)."""
        from tierctl.service.pressure_kernel import KernelPressureIO

        host = self.loop.bpf_host if self.loop is not None else None
        return KernelPressureIO(self.cgroups, self.procs, host=host, roots=self.roots)
