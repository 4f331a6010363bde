"""The pressure ladder's facts and actuators on the running kernel, through tierctl/kernel adapters:
/proc/meminfo for the machine; per cgroup memory.current, the memory.pressure ``some`` avg10 and the
workingset refault counters; memory.reclaim and cgroup.kill to act."""

from __future__ import annotations

from tierctl.core.ladder import Machine
from tierctl.errors import TierctlError
from tierctl.kernel.cgroupfs import CgroupFS, ReclaimIncompleteError
from tierctl.kernel.memstat import MemStat
from tierctl.kernel.procfs import ProcFS
from tierctl.service.pressure import CgroupFacts


class KernelPressureIO:
    def __init__(self, cgroups: CgroupFS, procs: ProcFS) -> None:
        self.cgroups = cgroups
        self.procs = procs
        self.stat = MemStat(cgroups)

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

    def own_cgroup(self) -> str:
        """This process's cgroup ("" when unknown): the ladder never kills it or its ancestors."""
        try:
            own = self.procs.cgroup_v2_path("self")
        except TierctlError:
            return ""
        return "" if own is None else "/" + own.strip("/")
