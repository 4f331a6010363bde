"""The controller's memory view over real processes: tracked pages, their nodes and cgroups.

Each snapshot rebuilds the tracked page space from the target processes' present,
exclusively mapped pages (pagemap), finds every page's node with one move_pages query per process,
and tells the controller how the space changed (``remap``, ``new_pages``) so the
heat model follows the pages. A process that exits between listing and reading is
skipped and counted, never raised. The view is also the mover's page locator.

That full read costs time in proportion to the tracked memory. With ``full_due`` cleared (the loop
does so between refreshes, under its CPU budget) a snapshot is *light*: the same page space, the
nodes as the last full read saw them updated with what the mover reported (``note_moved``), and
fresh free-memory figures. What the kernel or the processes changed meanwhile (new allocations,
kernel migrations) shows at the next full read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from tierctl.core.page_index import PageIndex, make_keys
from tierctl.core.policy import MemoryState
from tierctl.core.topology import Topology
from tierctl.errors import NoSuchProcessError, PermissionDeniedError
from tierctl.kernel.numa import NumaSyscalls
from tierctl.kernel.pages import present_pages
from tierctl.kernel.procfs import ProcFS
from tierctl.kernel.topology import SysfsTopology

Target = tuple[int, str]  # (pid, cgroup path)
MAX_REFUSED = 256  # refused pids remembered (reported once each)


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
        self.refused: dict[int, str] = {}  # pid -> why it may not be read (skipped, never fatal)
        self.unplaceable = 0  # present pages move_pages cannot place (not tracked)
        self._snapshots = 0
        self.last: MemoryState | None = None  # the latest snapshot (for status views)
        self.full_due = True  # the next snapshot re-reads every target (set by the loop)
        self.full_reads = 0
        self.full_read_cpu_s = 0.0  # this thread's CPU time in the latest full read

    def _cgroup_index(self, path: str) -> int:
        try:
            return self.cgroups.index(path)
        except ValueError:
            self.cgroups.append(path)
            return len(self.cgroups) - 1

    def note_moved(self, pages: np.ndarray, nodes: np.ndarray) -> None:
        """The mover put tracked ``pages`` on ``nodes`` (kept until the next full read)."""
        if self.last is not None and pages.shape[0]:
            self.last.node[pages] = np.asarray(nodes, dtype=self.last.node.dtype)

    def snapshot(self) -> MemoryState:
        if self.full_due or self.last is None:
            return self._full()
        last = self.last
        self.last = MemoryState(
            node=last.node,
            cgroup=last.cgroup,
            n_cgroups=last.n_cgroups,
            topology=self._with_free(last.topology),
            new_pages=None,
            remap=None,
        )
        return self.last

    def _with_free(self, topo: Topology) -> Topology:
        """``topo`` with each node's free pages read again (two small files, not the whole tree)."""
        free = self.topology.free_pages([n.id for n in topo.nodes])
        nodes = tuple(replace(n, free_pages=free.get(n.id, n.free_pages)) for n in topo.nodes)
        return replace(topo, nodes=nodes)

    def _full(self) -> MemoryState:
        c0 = time.thread_time()
        try:
            return self._read_all()
        finally:
            self.full_read_cpu_s = time.thread_time() - c0

    def _read_all(self) -> MemoryState:
        self.full_reads += 1
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
            except PermissionDeniedError as e:  # one process we may not read must not stop the rest
                if pid not in self.refused and len(self.refused) < MAX_REFUSED:
                    self.refused[pid] = str(e)
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
        first = self._snapshots == 0
        self._snapshots += 1
        remap: np.ndarray | None
        if not first and np.array_equal(key, self.index.keys):  # the same pages: nothing to re-index
            remap, new_pages = None, np.zeros(0, np.int64)
        else:
            index = PageIndex(key, self.page_shift)
            remap = index.lookup_keys(self.index.keys)
            fresh = np.ones(key.shape[0], dtype=bool)
            fresh[remap[remap >= 0]] = False
            new_pages = np.flatnonzero(fresh)
            self.index = index
        self.last = MemoryState(
            node=node,
            cgroup=cgroup,
            n_cgroups=max(1, len(self.cgroups)),
            topology=self.topology.read().topology,
            new_pages=None if first else new_pages,  # at start, ages are unknown
            remap=remap,
        )
        return self.last

    def locate(self, pages: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.index.locate(pages)
