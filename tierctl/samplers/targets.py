"""What samplers share: resolving targets to pids and cgroup ids, and building raw rows."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tierctl.errors import UnavailableError
from tierctl.kernel.pages import UNMOVABLE
from tierctl.samplers.base import RAW_SAMPLE_DTYPE, Targets

# mappings no sampler reports (kernel-provided, not the process's memory)
SPECIAL_VMAS = UNMOVABLE


class TargetResolver:
    """Pids of the target cgroups and the cgroup v2 id of a pid, from /proc and the cgroup v2 tree."""

    def __init__(self, proc_root: Path = Path("/proc"), cgroup_root: Path = Path("/sys/fs/cgroup")) -> None:
        self.proc_root = Path(proc_root)
        self.cgroup_root = Path(cgroup_root)

    def v2_root(self) -> Path | None:
        """The cgroup v2 mount: ``cgroup_root`` itself, or its ``unified`` folder on hybrid hosts."""
        for cand in (self.cgroup_root, self.cgroup_root / "unified"):
            if (cand / "cgroup.controllers").is_file() or (
                cand != self.cgroup_root and (cand / "cgroup.procs").is_file()
            ):
                return cand
        return None

    def pids(self, targets: Targets) -> list[int]:
        """``targets.pids`` plus every process of the cgroups named by id, sorted, unique."""
        out = {int(p) for p in targets.pids}
        if targets.cgroup_ids:
            root = self.v2_root()
            if root is None:
                raise UnavailableError(
                    "no cgroup v2 hierarchy to find target cgroups in", str(self.cgroup_root)
                )
            want = {int(c) for c in targets.cgroup_ids}
            for dirpath, _dirs, _files in os.walk(root):
                try:
                    ino = os.stat(dirpath).st_ino
                except OSError:
                    continue
                if ino in want:
                    out.update(_read_pids(Path(dirpath) / "cgroup.procs"))
        return sorted(out)

    def cgroup_dir(self, pid: int) -> Path | None:
        """The process's cgroup v2 directory (from the ``0::`` line of /proc/PID/cgroup); None if unknown
        (no v2 line, no v2 mount, the process gone)."""
        root = self.v2_root()
        if root is None:
            return None
        try:
            text = (self.proc_root / str(pid) / "cgroup").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith("0::/"):
                rel = line[4:].strip().strip("/")
                return root / rel if rel else root
        return None

    def cgroup_id(self, pid: int) -> int:
        """Inode number of the process's cgroup v2 directory (what bpf_get_current_cgroup_id gives); 0 if
        unknown."""
        d = self.cgroup_dir(pid)
        try:
            return d.stat().st_ino if d is not None else 0
        except OSError:
            return 0


def _read_pids(path: Path) -> list[int]:
    try:
        return [int(x) for x in path.read_text().split() if x.isdigit()]
    except OSError:
        return []


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
