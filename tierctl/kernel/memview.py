"""The controller's memory view over real processes: tracked pages, their nodes and cgroups.

Each snapshot rebuilds the tracked page space from the target processes' present,
exclusively mapped pages (pagemap), finds every page's node with one move_pages query per process,
and tells the controller how the space changed (``remap``, ``new_pages``) so the
heat model follows the pages. A process that exits between listing and reading is
skipped and counted, never raised. The view is also the mover's page locator.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from tierctl.core.page_index import PageIndex, make_keys
from tierctl.core.policy import MemoryState
from tierctl.errors import NoSuchProcessError
from tierctl.kernel.numa import NumaSyscalls
from tierctl.kernel.pages import present_pages
from tierctl.kernel.procfs import ProcFS
from tierctl.kernel.topology import SysfsTopology

Target = tuple[int, str]  # (pid, cgroup path)


class KernelMemoryView:
    def __init__(
        self,
        procfs: ProcFS,
        numa: NumaSyscalls,
        topology: SysfsTopology,
        targets: Callable[[], Sequence[Target]],
    ) -> None:
        self.procfs = procfs
        self.numa = numa
        self.topology = topology
        self.targets = targets
        self.page_shift = procfs.page_size.bit_length() - 1
        self.index = PageIndex(np.zeros(0, dtype=np.uint64), self.page_shift)
        self.cgroups: list[str] = []  # cgroup index -> path; append-only, so indices stay stable
        self.vanished = 0  # processes that exited while being read
        self.unplaceable = 0  # present pages move_pages cannot place (not tracked)
        self._snapshots = 0
        self.last: MemoryState | None = None  # the latest snapshot (for status views)

    def _cgroup_index(self, path: str) -> int:
        try:
            return self.cgroups.index(path)
        except ValueError:
            self.cgroups.append(path)
            return len(self.cgroups) - 1

    def snapshot(self) -> MemoryState:
        keys, nodes, cgs = [], [], []
        for pid, cgroup in self.targets():
            try:
                # pages only this process maps: shared ones (libraries, COW after fork) cannot be
                # moved by move_pages without MPOL_MF_MOVE_ALL, so tracking them only wastes moves
                addrs = present_pages(self.procfs, pid, page_size=self.procfs.page_size, exclusive_only=True)
                where = self.numa.query(pid, addrs)
            except NoSuchProcessError:
                self.vanished += 1
                continue
            placed = where >= 0  # the rest (zero page, special mappings: -EFAULT/-ENOENT) cannot move
            self.unplaceable += int(placed.shape[0] - np.count_nonzero(placed))
            addrs, where = addrs[placed], where[placed]
            keys.append(make_keys(np.full(addrs.shape[0], pid), addrs >> np.uint64(self.page_shift)))
            nodes.append(where)
            cgs.append(np.full(addrs.shape[0], self._cgroup_index(cgroup), dtype=np.uint16))
        key = np.concatenate(keys) if keys else np.zeros(0, np.uint64)
        order = np.argsort(key, kind="stable")
        key = key[order]
        node = (np.concatenate(nodes) if nodes else np.zeros(0, np.int32))[order]
        node = node.astype(np.int16)
        cgroup = (np.concatenate(cgs) if cgs else np.zeros(0, np.uint16))[order]
        index = PageIndex(key, self.page_shift)
        remap = index.lookup_keys(self.index.keys)
        fresh = np.ones(key.shape[0], dtype=bool)
        fresh[remap[remap >= 0]] = False
        first = self._snapshots == 0
        self._snapshots += 1
        self.index = index
        self.last = MemoryState(
            node=node,
            cgroup=cgroup,
            n_cgroups=max(1, len(self.cgroups)),
            topology=self.topology.read().topology,
            new_pages=None if first else np.flatnonzero(fresh),  # at start, ages are unknown
            remap=remap,
        )
        return self.last

    def locate(self, pages: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.index.locate(pages)
