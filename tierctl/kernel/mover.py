"""The real mover: carries out a Plan with move_pages, honestly accounted per page.

- Batches: consecutive plan rows of one process and one destination, at most
  ``batch_pages`` each; one query and one move syscall per batch, the move's
  addresses in ascending order (a plan in address order is passed as it is).
- Budget: moves start while fewer than ``budget_pages`` base pages were moved in
  this ``apply`` call (a huge page may overdraw by one unit), and a
  bandwidth cap (MB/s, token bucket carried across calls); a batch that would
  pass the deadline is not started. Rows not attempted are OVER_BUDGET: the
  next cycle re-plans them (resumption).
- THP: with a ``HugeResolver``, the subpages of a transparent huge page collapse
  to one move of its head; every subpage gets the huge page's outcome.
- Outcomes: the query before the move tells "already there" from "moved"; the
  move's per-page status maps to MOVED / BUSY / NOT_PRESENT / TARGET_FULL /
  NOT_PERMITTED; pages answered busy (or left unreported by a migration that
  failed part-way) are queried again, and those on the target now count as
  MOVED (a large folio moves whole on its first page); a process that exits
  mid-plan makes the rest of its rows GONE.
"""

from __future__ import annotations

import errno
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from tierctl.core.mover import MoveReport, Outcome
from tierctl.core.plan import Plan
from tierctl.errors import InputError, NoSuchProcessError
from tierctl.kernel.numa import NodeFullError, NumaSyscalls


class PageLocator(Protocol):
    def locate(self, pages: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(pid int64, virtual address uint64) of each tracked page index."""
        ...


class HugeResolver(Protocol):
    def units(self, pid: int, addrs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each address, the address to move (its huge page's head, or itself) and the number
        of base pages that unit holds (512 for a 2 MiB THP at 4 KiB, else 1)."""
        ...


@dataclass(frozen=True)
class ProcessPages:
    """Tracked pages of one process: page index i is at ``addrs[i]``."""

    pid: int
    addrs: np.ndarray  # uint64

    def locate(self, pages: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.full(pages.shape[0], self.pid, dtype=np.int64), self.addrs[pages]


def classify(status: np.ndarray, dest: int) -> np.ndarray:
    """Outcome of each page from move_pages' status after a move to ``dest``."""
    out = np.full(status.shape[0], Outcome.BUSY, dtype=np.int8)  # on another node: not moved
    out[status == dest] = Outcome.MOVED
    out[(status == -errno.ENOENT) | (status == -errno.EFAULT)] = Outcome.NOT_PRESENT
    out[status == -errno.ENOMEM] = Outcome.TARGET_FULL
    out[(status == -errno.EACCES) | (status == -errno.EPERM)] = Outcome.NOT_PERMITTED
    return out


@dataclass
class TokenBucket:
    """Bandwidth cap in bytes/s, with a burst of one second's worth."""

    rate_bps: float
    clock: Callable[[], float] = time.monotonic
    tokens: float = 0.0
    last: float | None = None

    def wait_time(self, nbytes: int) -> float:
        now = self.clock()
        if self.last is None:
            self.tokens = self.rate_bps
        else:
            self.tokens = min(self.rate_bps, self.tokens + (now - self.last) * self.rate_bps)
        self.last = now
        return max(0.0, (nbytes - self.tokens) / self.rate_bps)

    def spend(self, nbytes: int) -> None:
        self.tokens -= nbytes


@dataclass
class KernelMover:
    numa: NumaSyscalls
    locator: PageLocator
    page_size: int = 4096
    batch_pages: int = 16384  # 64 MiB of 4 KiB pages: 4 calls for the daemon's 65536-page budget
    rate_mbps: float | None = None
    huge: HugeResolver | None = None
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    totals: dict[str, int] = field(default_factory=lambda: {o.name.lower(): 0 for o in Outcome})
    _bucket: TokenBucket | None = None

    def __post_init__(self) -> None:
        if self.batch_pages <= 0:
            raise InputError(f"must be > 0, got {self.batch_pages}", "mover.batch_pages")
        if self.rate_mbps is not None:
            if self.rate_mbps <= 0:
                raise InputError(f"must be > 0 MB/s, got {self.rate_mbps}", "--rate")
            self._bucket = TokenBucket(self.rate_mbps * 1e6, self.clock)

    def apply(self, plan: Plan, budget_pages: int, *, deadline: float | None = None) -> MoveReport:
        """Carry out ``plan`` in order; ``deadline`` is a ``clock()`` time after which no batch starts."""
        n = len(plan)
        outcome = np.full(n, Outcome.OVER_BUDGET, dtype=np.int8)
        if n == 0:
            return MoveReport.from_outcomes(plan.pages, outcome)
        pids, addrs = self.locator.locate(plan.pages)
        left = budget_pages
        gone: set[int] = set()
        cut = np.flatnonzero((pids[1:] != pids[:-1]) | (plan.dest[1:] != plan.dest[:-1])) + 1
        for lo, hi in itertools.pairwise([0, *cut.tolist(), n]):
            pid, dest = int(pids[lo]), int(plan.dest[lo])
            if pid in gone:
                outcome[lo:hi] = Outcome.GONE
                continue
            if left <= 0 or self._past(deadline):
                continue  # stays OVER_BUDGET
            try:
                units, sizes, inv, ascending = self._units(pid, addrs[lo:hi])
            except NoSuchProcessError:
                gone.add(pid)
                outcome[lo:hi] = Outcome.GONE
                continue
            res = np.full(units.shape[0], Outcome.OVER_BUDGET, dtype=np.int8)
            for u_lo, u_hi in self._batches(sizes):
                if left <= 0 or self._past(deadline):
                    break
                try:
                    batch = units[u_lo:u_hi], sizes[u_lo:u_hi], res[u_lo:u_hi]
                    left -= self._batch(pid, dest, *batch, left, deadline, ascending)
                except NoSuchProcessError:
                    gone.add(pid)
                    rest = res[u_lo:]
                    rest[rest == Outcome.OVER_BUDGET] = Outcome.GONE
                    break
            outcome[lo:hi] = res if inv is None else res[inv]
        report = MoveReport.from_outcomes(plan.pages, outcome)
        for k, v in report.counts.items():
            self.totals[k] += v
        return report

    def _past(self, deadline: float | None) -> bool:
        return deadline is not None and self.clock() >= deadline

    def _batches(self, sizes: np.ndarray) -> list[tuple[int, int]]:
        """[lo, hi) unit ranges of at most ``batch_pages`` base pages each (a huge page never splits)."""
        n, b = sizes.shape[0], self.batch_pages
        if int(sizes[-1]) == 1 and int(sizes[0]) == 1 and int(sizes.max()) == 1:  # base pages only
            return [(i, min(i + b, n)) for i in range(0, n, b)]
        starts = (np.cumsum(sizes) - sizes) // b
        return list(itertools.pairwise(np.flatnonzero(np.r_[True, starts[1:] != starts[:-1], True]).tolist()))

    def _units(self, pid: int, addrs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, bool]:
        """Distinct units to move (huge-page heads or pages) in first-appearance (plan) order, their
        sizes in base pages, each row's unit index (None: row i is unit i) and whether the units
        ascend (then batches go to the kernel as they are, else sorted by address per call)."""
        if self.huge is not None:
            unit_addr, unit_size = self.huge.units(pid, addrs)
            unit_addr = np.asarray(unit_addr, dtype=np.uint64)
            unit_size = np.asarray(unit_size, dtype=np.int64)
        else:
            unit_addr = addrs.astype(np.uint64, copy=False)
            unit_size = np.ones(addrs.shape[0], dtype=np.int64)
        n = unit_addr.shape[0]
        if n <= 1:
            return unit_addr, unit_size, None, True
        # the common case, a plan in address order: repeats (subpages of one huge page) are adjacent,
        # so first-appearance order is address order and no sort is needed
        step = unit_addr[1:] > unit_addr[:-1]
        if step.all():
            return unit_addr, unit_size, None, True
        if (unit_addr[1:] >= unit_addr[:-1]).all():
            new = np.r_[True, step]
            return unit_addr[new], unit_size[new], np.cumsum(new) - 1, True
        uniq, first, inv = np.unique(unit_addr, return_index=True, return_inverse=True)
        order = np.argsort(first, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(order.shape[0])
        return uniq[order], unit_size[first[order]], rank[inv.reshape(-1)], False

    def _batch(
        self,
        pid: int,
        dest: int,
        units: np.ndarray,
        sizes: np.ndarray,
        res: np.ndarray,
        left: int,
        deadline: float | None,
        ascending: bool = False,
    ) -> int:
        """Move one batch of units, writing their outcomes into ``res``; returns base pages moved."""
        where = self.numa.query(pid, units)
        lowest, highest = int(where.min()), int(where.max())
        if 0 <= lowest == highest != dest:  # the common case: all on one other node (two passes)
            todo: np.ndarray | slice = slice(None)
            todo_sizes = sizes
        else:
            todo_mask = (where >= 0) & (where != dest)
            res[where == dest] = Outcome.ALREADY_THERE
            absent = where < 0
            res[absent] = classify(where[absent], dest)
            todo = np.flatnonzero(todo_mask)
            todo_sizes = sizes[todo]
        # in plan order, a unit starts while budget remains: a huge page may overdraw by one unit
        # (else a budget under 512 pages could never move a THP)
        total = int(todo_sizes.sum())
        if total > left:
            starts_at = np.cumsum(todo_sizes) - todo_sizes
            keep = np.flatnonzero(starts_at < left)
            todo = keep if isinstance(todo, slice) else todo[keep]
            todo_sizes = todo_sizes[keep]
            total = int(todo_sizes.sum())
        if total == 0:
            return 0
        if self._bucket is not None:
            wait = self._bucket.wait_time(total * self.page_size)
            if deadline is not None and self.clock() + wait >= deadline:
                return 0
            if wait > 0:
                self.sleep(wait)
        targets = units[todo]
        order = None if ascending else np.argsort(targets, kind="stable")
        try:
            # in address order: the kernel looks each address up in turn, and queues them all for one
            # migration per destination
            status = self.numa.move_pages(pid, targets if order is None else targets[order], dest)
        except NodeFullError:
            # the call stopped when the target filled up: what reached it moved, the rest found it full
            status = self.numa.query(pid, targets if order is None else targets[order])
            status = np.where(status == dest, dest, np.where(status >= 0, -errno.ENOMEM, status))
        if order is not None:
            unsorted = np.empty_like(status)
            unsorted[order] = status
            status = unsorted
        moved = status == dest
        if moved.all():
            res[todo] = Outcome.MOVED
            moved_pages = total
        else:
            out = classify(status, dest)
            # busy, or not reported (the kernel leaves the statuses of a failed migration unwritten):
            # where it is now tells. The kernel moves a whole folio on its first subpage and answers
            # -EBUSY for a second one it finds isolated: on ``dest`` now, it moved.
            busy = np.flatnonzero(out == Outcome.BUSY)
            if busy.shape[0]:
                now = self.numa.query(pid, targets[busy])
                out[busy[now == dest]] = Outcome.MOVED
            res[todo] = out
            moved_pages = int(todo_sizes[out == Outcome.MOVED].sum())
        if self._bucket is not None:
            self._bucket.spend(moved_pages * self.page_size)
        return moved_pages
