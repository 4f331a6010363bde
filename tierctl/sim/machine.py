"""A simulated two-tier machine: node 0 = fast (DRAM), node 1 = slow (CXL / CPU-less).

It provides the three adapter roles the Controller needs: ``SimMemory``
(memory view), ``SimMover`` (mover) and ``SimSampler`` (sampler).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from tierctl.core.mover import MoveReport, Outcome
from tierctl.core.plan import Plan
from tierctl.core.policy import MemoryState
from tierctl.core.samples import empty_batch
from tierctl.core.topology import Node, Topology
from tierctl.errors import InputError

FAST, SLOW = 0, 1


@dataclass(frozen=True)
class MachineSpec:
    fast_pages: int
    page_size: int = 4096
    fast_latency_ns: float = 100.0
    slow_latency_ns: float = 300.0
    fast_bandwidth_mbps: float = 20_000.0
    slow_bandwidth_mbps: float = 5_000.0


class SimMachine:
    def __init__(self, spec: MachineSpec, n_pages: int, cgroup: np.ndarray | None = None) -> None:
        if spec.fast_pages <= 0:
            raise InputError(f"fast tier needs > 0 pages, got {spec.fast_pages}", "--fast-pages")
        if spec.fast_pages > n_pages:
            raise InputError(
                f"fast tier ({spec.fast_pages} pages) exceeds the trace's n_pages={n_pages}", "--fast-pages"
            )
        self.spec = spec
        self.n_pages = n_pages
        self.node = np.full(n_pages, -1, dtype=np.int16)
        self.cgroup = np.zeros(n_pages, np.uint16) if cgroup is None else cgroup.astype(np.uint16)
        self.n_cgroups = int(self.cgroup.max()) + 1 if n_pages else 1
        self.fast_used = 0
        self.present = 0
        self._new: list[np.ndarray] = []

    # ---- the kernel's allocator -------------------------------------------------------------
    def touch(self, pages: np.ndarray) -> int:
        """First-touch allocation, in row order: fast while it has room, then slow. Returns new pages."""
        new = pages[self.node[pages] < 0]
        if new.shape[0] == 0:
            return 0
        _, first = np.unique(new, return_index=True)
        new = new[np.sort(first)]
        room = self.spec.fast_pages - self.fast_used
        n_fast = min(room, new.shape[0])
        self.node[new[:n_fast]] = FAST
        self.node[new[n_fast:]] = SLOW
        self.fast_used += n_fast
        self.present += int(new.shape[0])
        self._new.append(new)
        return int(new.shape[0])

    def topology(self) -> Topology:
        s = self.spec
        slow_cap = max(self.n_pages, 1)
        return Topology(
            nodes=(
                Node(
                    FAST,
                    0,
                    s.fast_pages,
                    s.fast_pages - self.fast_used,
                    (0,),
                    s.fast_latency_ns,
                    s.fast_bandwidth_mbps,
                ),
                Node(
                    SLOW,
                    1,
                    slow_cap,
                    slow_cap - (self.present - self.fast_used),
                    (),
                    s.slow_latency_ns,
                    s.slow_bandwidth_mbps,
                ),
            ),
            page_size=s.page_size,
            demotion_targets={FAST: SLOW},
        )

    def take_new(self) -> np.ndarray:
        """Pages first touched since the last call."""
        out = np.concatenate(self._new) if self._new else np.zeros(0, np.int64)
        self._new = []
        return out

    def fast_mask(self) -> np.ndarray:
        return self.node == FAST

    # ---- moves ------------------------------------------------------------------------------
    def move(self, plan: Plan, budget: int) -> MoveReport:
        pages, dest = plan.pages, plan.dest
        outcome = np.full(pages.shape[0], Outcome.OVER_BUDGET, dtype=np.int8)
        if pages.shape[0] == 0:
            return MoveReport.from_outcomes(pages, outcome)
        bad = (pages < 0) | (pages >= self.n_pages) | ((dest != FAST) & (dest != SLOW))
        if bad.any():
            i = int(np.argmax(bad))
            raise InputError(
                f"plan row {i}: page {pages[i]} -> node {dest[i]} is outside the machine", "plan"
            )
        left = budget
        # runs of equal destination, in plan order; the node state carries over between runs
        bounds = np.flatnonzero(np.r_[True, dest[1:] != dest[:-1], True])
        for lo, hi in itertools.pairwise(bounds):
            p, d = pages[lo:hi], int(dest[lo])
            out = outcome[lo:hi]
            uniq, first, inverse = np.unique(p, return_index=True, return_inverse=True)
            rows = np.sort(first)  # first occurrence of each page in this run, in order
            cur = self.node[p[rows]]
            res = np.full(rows.shape[0], Outcome.OVER_BUDGET, dtype=np.int8)
            res[cur < 0] = Outcome.NOT_PRESENT
            res[cur == d] = Outcome.ALREADY_THERE
            todo = np.flatnonzero((cur >= 0) & (cur != d))
            n = min(left, todo.shape[0])
            if d == FAST:
                n = min(n, self.spec.fast_pages - self.fast_used)
                if left > n:  # budget remains, the fast tier does not: every other one finds it full
                    res[todo[n:]] = Outcome.TARGET_FULL
                self.fast_used += n
            else:
                self.fast_used -= n
            moved = todo[:n]
            res[moved] = Outcome.MOVED
            self.node[p[rows[moved]]] = d
            left -= n
            # every row gets its page's outcome; a repeat of a page this run moved is already there
            by_page = np.empty(uniq.shape[0], dtype=np.int8)
            by_page[np.searchsorted(uniq, p[rows])] = res
            out[:] = by_page[inverse]
            repeat = np.ones(p.shape[0], dtype=bool)
            repeat[rows] = False
            out[repeat & (out == Outcome.MOVED)] = Outcome.ALREADY_THERE
        return MoveReport.from_outcomes(pages, outcome)


class SimMemory:
    def __init__(self, machine: SimMachine) -> None:
        self.machine = machine

    def snapshot(self) -> MemoryState:
        m = self.machine
        return MemoryState(
            node=m.node, cgroup=m.cgroup, n_cgroups=m.n_cgroups, topology=m.topology(), new_pages=m.take_new()
        )


class SimMover:
    def __init__(self, machine: SimMachine) -> None:
        self.machine = machine

    def apply(self, plan: Plan, budget_pages: int) -> MoveReport:
        return self.machine.move(plan, budget_pages)


class SimSampler:
    """Hands the controller what the simulated sampling saw since the last drain."""

    name = "sim"

    def __init__(self) -> None:
        self._pending: list[np.ndarray] = []

    def push(self, batch: np.ndarray) -> None:
        self._pending.append(batch)

    def drain(self) -> np.ndarray:
        if not self._pending:
            return empty_batch()
        out = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        self._pending = []
        return out
