"""What samplers share: resolving targets to pids and cgroup ids, and building raw rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tierctl.errors import UnavailableError
from tierctl.kernel.cgroupfs import CGROUP_ROOT, CgroupTree
from tierctl.kernel.pages import UNMOVABLE
from tierctl.kernel.procfs import LIVE_PROC, ProcFS
from tierctl.samplers.base import RAW_SAMPLE_DTYPE, Targets

# mappings no sampler reports (kernel-provided, not the process's memory)
SPECIAL_VMAS = UNMOVABLE


class TargetResolver:
    """Pids of the target cgroups and the cgroup v2 id of a pid: ``ProcFS`` and the v2 ``CgroupTree``
    found at (or, on hybrid hosts, below) ``cgroup_root``."""

    def __init__(self, proc: ProcFS | Path = LIVE_PROC, cgroup_root: Path = CGROUP_ROOT) -> None:
        self.proc = proc if isinstance(proc, ProcFS) else ProcFS(Path(proc))
        self.cgroup_root = Path(cgroup_root)

    def tree(self) -> CgroupTree | None:
        """The v2 hierarchy at or below ``cgroup_root`` (``CgroupTree.find``, the one way to find it;
        looked for on every call: it may be mounted or made after start)."""
        return CgroupTree.find(self.cgroup_root, self.proc)

    def v2_root(self) -> Path | None:
        """The cgroup v2 mount: ``cgroup_root`` itself, or its ``unified`` folder on hybrid hosts."""
        tree = self.tree()
        return None if tree is None else tree.root

    def pids(self, targets: Targets) -> list[int]:
        """``targets.pids`` plus every process of the cgroups named by id, sorted, unique."""
        out = {int(p) for p in targets.pids}
        if targets.cgroup_ids:
            tree = self.tree()
            if tree is None:
                raise UnavailableError(
                    "no cgroup v2 hierarchy to find target cgroups in", str(self.cgroup_root)
                )
            out.update(tree.pids(targets.cgroup_ids))
        return sorted(out)

    def cgroup_dir(self, pid: int) -> Path | None:
        """The process's cgroup v2 directory; None if unknown (no v2 line, no v2 mount, the process gone)."""
        tree = self.tree()
        return None if tree is None else tree.pid_dir(pid)

    def cgroup_id(self, pid: int) -> int:
        """The id of the process's cgroup v2 directory (what bpf_get_current_cgroup_id gives); 0 if
        unknown."""
        tree = self.tree()
        return (tree.pid_id(pid) if tree is not None else None) or 0


def cap_rows(rows: np.ndarray, max_rows: int) -> tuple[np.ndarray, int]:
    """At most ``max_rows`` rows (the first ones: callers put the most valuable first); and how many not."""
    if rows.shape[0] <= max_rows:
        return rows, 0
    return rows[:max_rows], int(rows.shape[0] - max_rows)


def make_rows(vpn: np.ndarray, count: np.ndarray | int, *, pid: int, cgroup: int, flags: int) -> np.ndarray:
    rows = np.zeros(vpn.shape[0], dtype=RAW_SAMPLE_DTYPE)
    rows["vpn"] = vpn
    rows["count"] = count
    rows["pid"] = pid
    rows["cgroup"] = cgroup
    rows["flags"] = flags
    return rows
