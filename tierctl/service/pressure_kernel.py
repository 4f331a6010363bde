"""The pressure ladder's facts and actuators on the running kernel, through tierctl/kernel adapters:
/proc/meminfo and /proc/pressure/memory for the machine; per cgroup memory.current, memory.pressure,
memory.stat (by kind, workingset refaults), memory.numa_stat and memory.events; memory.reclaim and
cgroup.kill to act. The stall source's BPF sampler runs on the process's one BpfHost (the daemon loop's,
handed in by the platform), so its tracefs mount and BPF stats are counted with the page samplers'."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from tierctl.core.ladder import Machine
from tierctl.errors import InputError, TierctlError
from tierctl.kernel.cgroupfs import CgroupFS, CgroupTree, Pressure, ReclaimIncompleteError
from tierctl.kernel.memstat import MemStat
from tierctl.kernel.procfs import ProcFS
from tierctl.kernel.psi import PsiWatcher
from tierctl.kernel.roots import Roots
from tierctl.samplers.base import Targets
from tierctl.samplers.registry import bpf_host
from tierctl.service.pressure import CgroupFacts, PsiFigures
from tierctl.service.pressure_wake import PressureWake

KINDS = ("anon", "file", "shmem", "kernel", "sock", "swap", "zswap", "dirty", "writeback")
EVENTS = ("low", "high", "max", "oom", "oom_kill")


def _psi(p: Pressure) -> PsiFigures | None:
    if p.some is None:
        return None
    return PsiFigures(
        some_avg10=p.some.avg10,
        some_total_us=p.some.total_us,
        full_avg10=None if p.full is None else p.full.avg10,
        full_total_us=None if p.full is None else p.full.total_us,
    )


if TYPE_CHECKING:
    from tierctl.kernel.bpfhost import BpfHost
    from tierctl.kernel.knobs import KnobGuard
    from tierctl.samplers.stall_fallback import StallChain


class KernelPressureIO:
    """``host``: the process's BpfHost (the daemon loop's) for the stall source; ``roots``: where a
    host made here (no ``host``) writes knobs and keeps its record (default: the live places, with
    ``procs``'s procfs and ``cgroups``'s cgroup root)."""

    def __init__(
        self, cgroups: CgroupFS, procs: ProcFS, *, host: BpfHost | None = None, roots: Roots | None = None
    ) -> None:
        self.cgroups = cgroups
        self.procs = procs
        self.host = host
        self.roots = roots if roots is not None else Roots(proc=procs.root, cgroup=cgroups.root)
        self.stat = MemStat(cgroups)
        self._tree: CgroupTree | None = None

    def machine(self) -> Machine:
        m = self.procs.meminfo()
        return Machine(total=m.total, available=m.available)

    def machine_psi(self) -> PsiFigures | None:
        return _psi(self.cgroups.pressure(""))

    def cgroup(self, path: str) -> CgroupFacts:
        """The ladder's three figures (memory.current, PSI some avg10, refaults: a missing one is an
        error or 0) and, for the front ends, what a kernel or layout may lack (left empty then)."""
        rel = path.strip("/")
        current = self.cgroups.memory_current(rel)
        pressure = self.cgroups.pressure(rel)
        kinds: dict[str, int | None] = {}
        refaults = 0  # a kernel without the counters: PSI alone tells the probe
        try:
            k = self.stat.memory_by_kind(rel)
        except TierctlError:
            pass
        else:
            refaults = k.refaults or 0
            kinds = {n: getattr(k, n) for n in KINDS}
        nodes: dict[str, int] = {}
        with contextlib.suppress(TierctlError):
            for node, by in self.stat.memory_by_node(rel).items():
                nodes[str(node)] = by["total"] if "total" in by else by.get("anon", 0) + by.get("file", 0)
        events: dict[str, int | None] = {}
        with contextlib.suppress(TierctlError):
            e = self.stat.memory_events(rel)
            events = {n: getattr(e, n) for n in EVENTS}
        return CgroupFacts(
            current=current,
            psi_some=pressure.some.avg10 if pressure.some is not None else 0.0,
            refaults=refaults,
            psi=_psi(pressure),
            kinds=kinds,
            nodes=nodes,
            events=events,
        )

    def reclaim(self, path: str, nbytes: int) -> bool:
        try:
            self.cgroups.reclaim(path.strip("/"), nbytes)
        except ReclaimIncompleteError:
            return False
        return True

    def kill(self, path: str) -> None:
        self.cgroups.kill(path.strip("/"))

    def stall_source(self, knobs: KnobGuard | None = None) -> StallChain:
        """Reclaim stalls and OOM victims: BPF on stable tracepoints, else memory.events and PSI, on the
        BpfHost given at construction (the process's), else one made below ``roots`` recording with
        ``knobs``; ``knobs``: the daemon's guard, which must be that host's."""
        from tierctl.samplers.stall_fallback import StallChain

        host = self.host
        if host is None:
            host = bpf_host(self.roots, knobs)
        elif knobs is not None and host.guard is not knobs:
            raise InputError(
                "the knob guard given is not the BPF host's: one guard per process", "stall source"
            )
        host.restore_leftovers()  # once per host
        chain = StallChain.default(host=host, cgfs=self.cgroups)
        chain.start(Targets())  # every cgroup: victims are attributed by their id
        return chain

    def cgroup_path(self, cgroup_id: int) -> str | None:
        """The path (below the v2 root) of a v2 cgroup id; None when it is gone or unknown."""
        if self._tree is None:
            self._tree = CgroupTree.find(self.cgroups.root, self.procs)
        if self._tree is None:
            return None
        try:
            d = self._tree.path_of(cgroup_id)
        except TierctlError:
            return None
        if d is None:
            return None
        rel = str(d.relative_to(self._tree.root))
        return "/" if rel == "." else "/" + rel

    def wake(self) -> PressureWake:
        """PSI poll triggers on the system and the managed cgroups, and the target after each wait."""
        return PressureWake(PsiWatcher(self.cgroups), self.machine)

    def own_cgroup(self) -> str:
        """This process's cgroup ("" when unknown): the ladder never kills it or its ancestors."""
        try:
            own = self.procs.cgroup_v2_path("self")
        except TierctlError:
            return ""
        return "" if own is None else "/" + own.strip("/")
