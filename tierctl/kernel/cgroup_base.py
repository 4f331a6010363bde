"""The cgroup layout below a root, and the directories of its memory and cpuset hierarchies.

``CgroupBase(root)`` detects the layout once (see ``Layout``) and finds a cgroup's directory;
``CgroupReads`` (``cgroup_reads``) adds the readers and CgroupFS (``tierctl.kernel.cgroupfs``) the
writers on top of it. File reading and error rules are ``tierctl.kernel.cgroup_files``'s.
"""

from __future__ import annotations

import os
from enum import Enum
from pathlib import Path

from tierctl.errors import InputError, UnavailableError
from tierctl.kernel import cgroup_files as files
from tierctl.kernel.cgroup_tree import CgroupTree
from tierctl.kernel.procfs import LIVE_PROC, ProcFS
from tierctl.kernel.roots import LIVE_CGROUP


class Layout(Enum):
    """``UNIFIED``: cgroup v2 at ``root`` with the memory controller (``root/cgroup.controllers``).
    ``HYBRID``: the memory controller on a v1 hierarchy at ``root/memory`` while v2 is mounted too (at
    ``root/unified``, as systemd's hybrid mode does, or at ``root`` without memory). ``LEGACY``: v1
    only (``root/memory``, no v2 anywhere under ``root``). ``NONE``: no memory controller."""

    UNIFIED = "unified"
    HYBRID = "hybrid"
    LEGACY = "legacy"
    NONE = "none"


class CgroupBase:
    """The layout below ``root`` and the directory of any cgroup in it.

    ``proc_root`` is where the root cgroup's pressure and this process's cgroup are read;
    ``page_size`` converts v1 memory.numa_stat pages into bytes (default: this machine's).
    """

    def __init__(
        self,
        root: Path = LIVE_CGROUP,
        *,
        proc_root: Path = LIVE_PROC,
        page_size: int | None = None,
    ) -> None:
        self.root = Path(root)
        self.proc_root = Path(proc_root)
        self.page_size = page_size if page_size is not None else os.sysconf("SC_PAGE_SIZE")
        if self.page_size <= 0:
            raise InputError(f"must be > 0, got {self.page_size}", "page_size")
        self.layout = self._detect()

    @property
    def v2(self) -> bool:
        return self.layout is Layout.UNIFIED

    @property
    def memory_root(self) -> Path:
        """Directory of the root cgroup of the memory hierarchy."""
        self._need_memory()
        return self.root if self.v2 else self.root / "memory"

    @property
    def cpuset_root(self) -> Path:
        """Directory of the root cgroup of the cpuset hierarchy (v1: ``root/cpuset``)."""
        self._need_memory()
        return self.root if self.v2 else self.root / "cpuset"

    def memory_dir(self, path: str) -> Path:
        """The directory of cgroup ``path`` in the memory hierarchy (InputError when there is none)."""
        return files.cgroup_dir(self.memory_root, path)

    def tree(self) -> CgroupTree | None:
        """The cgroup v2 hierarchy at or below ``root`` (``CgroupTree.find(root)``: ``root`` itself on
        a unified layout, ``root/unified`` on a hybrid one), with ids; None when there is none."""
        return CgroupTree.find(self.root, ProcFS(self.proc_root))

    # -- plumbing (tierctl.kernel.psi uses _dir) -------------------------------------------------
    def _detect(self) -> Layout:
        ctl = self.root / "cgroup.controllers"
        if ctl.is_file():
            text = files.read(ctl)
            if "memory" in text.split():
                return Layout.UNIFIED
        if (self.root / "memory" / "memory.usage_in_bytes").is_file():
            if ctl.is_file() or (self.root / "unified" / "cgroup.controllers").is_file():
                return Layout.HYBRID
            return Layout.LEGACY
        return Layout.NONE

    def _need_memory(self) -> None:
        if self.layout is Layout.NONE:
            raise UnavailableError("no memory cgroup controller (neither v2 nor v1)", str(self.root))

    def _dir(self, base: Path, path: str) -> Path:
        return files.cgroup_dir(base, path)
