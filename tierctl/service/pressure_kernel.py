"""The pressure ladder's facts and actuators on the running kernel, through tierctl/kernel adapters:
/proc/meminfo for the machine; per cgroup memory.current, the memory.pressure ``some`` avg10 and the
workingset refault counters; memory.reclaim and cgroup.kill to act."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tierctl.core.ladder import Machine
from tierctl.errors import TierctlError
from tierctl.kernel.cgroupfs import CgroupFS, CgroupTree, ReclaimIncompleteError
from tierctl.kernel.memstat import MemStat
from tierctl.kernel.procfs import ProcFS
from tierctl.samplers.base import Targets
from tierctl.service.pressure import CgroupFacts

if TYPE_CHECKING:
    from tierctl.samplers.stall_fallback import StallChain


class KernelPressureIO:
    def __init__(self, cgroups: CgroupFS, procs: ProcFS) -> None:
        self.cgroups = cgroups
        self.procs = procs
        self.stat = MemStat(cgroups)
        self._tree: CgroupTree | None = None

    def machine(self) -> Machine:
        m = self.procs.meminfo()
        return Machine(total=m.total, available=m.available)

    def cgroup(self, path: str) -> CgroupFacts:
        rel = path.strip("/")
        current = self.cgroups.memory_current(rel)
        some = self.cgroups.pressure(rel).some
        try:
            refaults = self.stat.memory_by_kind(rel).refaults or 0
        except TierctlError:
            refaults = 0  # a kernel without the counters: PSI alone tells the probe
        return CgroupFacts(
            current=current, psi_some=some.avg10 if some is not None else 0.0, refaults=refaults
        )

    def reclaim(self, path: str, nbytes: int) -> bool:
        try:
            self.cgroups.reclaim(path.strip("/"), nbytes)
        except ReclaimIncompleteError:
            return False
        return True

    def kill(self, path: str) -> None:
        self.cgroups.kill(path.strip("/"))

    def stall_source(self, knobs: Any = None) -> StallChain:
        """Reclaim stalls and OOM victims: BPF on stable tracepoints, else memory.events and PSI."""
        from tierctl.kernel.bpfhost import BpfHost
        from tierctl.samplers.stall_fallback import StallChain

        chain = StallChain.default(host=BpfHost(knobs), cgfs=self.cgroups)
        chain.start(Targets())  # every cgroup: victims are attributed by their id
        return chain

    def cgroup_path(self, cgroup_id: int) -> str | None:
        """The path (below the v2 root) of a v2 cgroup id; None when it is gone or unknown."""
        if self._tree is None:
            self._tree = CgroupTree.below(self.cgroups.root, self.procs)
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

    def own_cgroup(self) -> str:
        """This process's cgroup ("" when unknown): the ladder never kills it or its ancestors."""
        try:
            own = self.procs.cgroup_v2_path("self")
        except TierctlError:
            return ""
        return "" if own is None else "/" + own.strip("/")
