"""The real mover against a fake kernel (exact outcomes) and the host's real move_pages."""

from __future__ import annotations

import ctypes
import errno
import mmap
import os

import numpy as np
import pytest

from tierctl.core.mover import Outcome
from tierctl.core.plan import Plan
from tierctl.errors import InputError, NoSuchProcessError
from tierctl.kernel.mover import KernelMover, ProcessPages, TokenBucket, classify
from tierctl.kernel.numa import NumaSyscalls

PAGE = 4096
O = Outcome  # noqa: E741


class FakeNuma:
    """A kernel with nodes 0 (capacity ``room0``) and 1; pages keyed by (pid, addr)."""

    def __init__(self, where: dict[tuple[int, int], int], room0: int = 10**9, thp: int = 1) -> None:
        self.where = where
        self.room0 = room0
        self.gone: set[int] = set()
        self.die_after_calls: dict[int, int] = {}
        self.busy: set[int] = set()
        self.calls: list[tuple[str, int, int]] = []

    def _check(self, pid: int) -> None:
        left = self.die_after_calls.get(pid)
        if left is not None:
            if left <= 0:
                self.gone.add(pid)
            self.die_after_calls[pid] = left - 1
        if pid in self.gone:
            raise NoSuchProcessError("no such process", f"pid {pid}")

    def query(self, pid: int, addrs: np.ndarray) -> np.ndarray:
        self._check(pid)
        self.calls.append(("query", pid, addrs.shape[0]))
        return np.array([self.where.get((pid, int(a)), -errno.ENOENT) for a in addrs], dtype=np.int32)

    def move_pages(self, pid: int, addrs: np.ndarray, node: int) -> np.ndarray:
        self._check(pid)
        self.calls.append(("move", pid, addrs.shape[0]))
        out = []
        for a in addrs:
            key = (pid, int(a))
            if key not in self.where:
                out.append(-errno.ENOENT)
            elif int(a) in self.busy:
                out.append(-errno.EBUSY)
            elif node == 0 and self.room0 <= 0:
                out.append(-errno.ENOMEM)
            else:
                if node == 0:
                    self.room0 -= 1
                self.where[key] = node
                out.append(node)
        return np.array(out, dtype=np.int32)


def _plan(pages: list[int], dest: int) -> Plan:
    return Plan(np.array(pages, np.int64), np.full(len(pages), dest, np.int16), np.ones(len(pages), np.uint8))


def _setup(n: int = 8, node: int = 1, pid: int = 100) -> tuple[FakeNuma, ProcessPages]:
    addrs = np.arange(n, dtype=np.uint64) * PAGE + 0x10000
    return FakeNuma({(pid, int(a)): node for a in addrs}), ProcessPages(pid, addrs)


def test_outcomes_moved_already_absent_busy_full() -> None:
    numa, loc = _setup(6)
    numa.where[(100, int(loc.addrs[1]))] = 0  # already on the target
    del numa.where[(100, int(loc.addrs[2]))]  # not present
    numa.busy.add(int(loc.addrs[3]))
    numa.room0 = 1  # room for one page only
    mover = KernelMover(numa, loc)  # type: ignore[arg-type]
    report = mover.apply(_plan([0, 1, 2, 3, 4, 5], 0), budget_pages=100)
    assert report.outcome.tolist() == [
        O.MOVED,
        O.ALREADY_THERE,
        O.NOT_PRESENT,
        O.BUSY,
        O.TARGET_FULL,
        O.TARGET_FULL,
    ]
    assert mover.totals["moved"] == 1 and mover.totals["target_full"] == 2


def test_budget_stops_moves_and_leaves_the_rest_over_budget() -> None:
    numa, loc = _setup(8)
    mover = KernelMover(numa, loc, batch_pages=3)  # type: ignore[arg-type]
    report = mover.apply(_plan(list(range(8)), 0), budget_pages=4)
    assert report.outcome.tolist() == [O.MOVED] * 4 + [O.OVER_BUDGET] * 4
    # resumption: the next cycle moves the rest
    report = mover.apply(_plan(list(range(8)), 0), budget_pages=10)
    assert report.outcome.tolist() == [O.ALREADY_THERE] * 4 + [O.MOVED] * 4


def test_process_exiting_mid_plan_is_gone_not_raised() -> None:
    numa, loc = _setup(10)
    numa.die_after_calls[100] = 2  # the first batch's query and move succeed, then it exits
    mover = KernelMover(numa, loc, batch_pages=4)  # type: ignore[arg-type]
    report = mover.apply(_plan(list(range(10)), 0), budget_pages=100)
    assert report.outcome.tolist() == [O.MOVED] * 4 + [O.GONE] * 6
    assert report.counts["gone"] == 6


def test_batches_follow_pid_and_destination_runs() -> None:
    numa, loc = _setup(10)
    mover = KernelMover(numa, loc, batch_pages=4)  # type: ignore[arg-type]
    plan = Plan(np.arange(10), np.array([0] * 6 + [1] * 4, np.int16), np.ones(10, np.uint8))
    mover.apply(plan, budget_pages=100)
    assert [c for c in numa.calls if c[0] == "move"] == [("move", 100, 4), ("move", 100, 2)]


class FakeHuge:
    """Pages 0..7 form one huge page (head = page 0), the rest are base pages."""

    def units(self, pid: int, addrs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        base = 0x10000
        head = (addrs - base) // PAGE < 8
        unit = np.where(head, np.uint64(base), addrs)
        return unit, np.where(head, 8, 1)


def test_thp_subpages_collapse_to_one_move_and_share_its_outcome() -> None:
    numa, loc = _setup(10)
    mover = KernelMover(numa, loc, huge=FakeHuge())  # type: ignore[arg-type]
    report = mover.apply(_plan(list(range(10)), 0), budget_pages=100)
    assert report.outcome.tolist() == [O.MOVED] * 10
    assert numa.calls[-1] == ("move", 100, 3)  # one head + two base pages
    # a budget smaller than the huge page neither splits it nor starves it: it overdraws once
    numa2, loc2 = _setup(10)
    mover2 = KernelMover(numa2, loc2, huge=FakeHuge())  # type: ignore[arg-type]
    report = mover2.apply(_plan(list(range(10)), 0), budget_pages=5)
    assert report.outcome.tolist() == [O.MOVED] * 8 + [O.OVER_BUDGET] * 2


def test_rate_limit_sleeps_for_the_tokens() -> None:
    numa, loc = _setup(8)
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    # 4 pages/batch = 16384 B; 8192 B/s → one second's burst covers half a batch
    mover = KernelMover(numa, loc, batch_pages=4, rate_mbps=0.008192, clock=lambda: now[0], sleep=sleep)  # type: ignore[arg-type]
    report = mover.apply(_plan(list(range(8)), 0), budget_pages=100)
    assert report.counts["moved"] == 8
    assert slept == pytest.approx([1.0, 2.0])


def test_deadline_leaves_batches_unstarted() -> None:
    numa, loc = _setup(8)
    now = [0.0]
    mover = KernelMover(
        numa,
        loc,
        batch_pages=2,
        rate_mbps=0.008192,
        clock=lambda: now[0],  # type: ignore[arg-type]
        sleep=lambda s: now.__setitem__(0, now[0] + s),
    )
    report = mover.apply(_plan(list(range(8)), 0), budget_pages=100, deadline=1.5)
    assert report.counts["moved"] == 4 and report.counts["over_budget"] == 4


def test_token_bucket_refills_up_to_one_second() -> None:
    t = [0.0]
    b = TokenBucket(1000.0, clock=lambda: t[0])
    assert b.wait_time(500) == 0
    b.spend(500)
    t[0] = 100.0
    assert b.wait_time(1500) == pytest.approx(0.5)


def test_classify_maps_errnos() -> None:
    st = np.array(
        [0, 1, -errno.ENOENT, -errno.EFAULT, -errno.ENOMEM, -errno.EACCES, -errno.EBUSY, -errno.EIO]
    )
    assert classify(st, 1).tolist() == [
        O.BUSY,
        O.MOVED,
        O.NOT_PRESENT,
        O.NOT_PRESENT,
        O.TARGET_FULL,
        O.NOT_PERMITTED,
        O.BUSY,
        O.BUSY,
    ]


@pytest.mark.parametrize("prefer_libnuma", [True, False])
def test_real_move_pages_on_this_host(prefer_libnuma: bool) -> None:
    """Node 0 exists everywhere: our own pages are already there; an absent node is a clear error."""
    numa = NumaSyscalls(prefer_libnuma=prefer_libnuma)
    buf = mmap.mmap(-1, 64 * PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    buf.write(b"x" * (32 * PAGE))  # touch half
    view = ctypes.c_char.from_buffer(buf)
    try:
        addrs = ctypes.addressof(view) + np.arange(64, dtype=np.uint64) * PAGE
        where = numa.query(os.getpid(), addrs)
        assert (where[:32] >= 0).all() and (where[32:] == -errno.ENOENT).all()
        mover = KernelMover(numa, ProcessPages(os.getpid(), addrs))
        node = int(where[0])
        report = mover.apply(_plan(list(range(64)), node), budget_pages=1000)
        assert report.counts["already_there"] == 32 and report.counts["not_present"] == 32
        with pytest.raises(InputError, match="not online"):
            numa.move_pages(os.getpid(), addrs[:1], 1000)
        with pytest.raises(NoSuchProcessError):
            numa.query(2**22 + 12345, addrs[:1])
    finally:
        del view
        buf.close()


class FullNuma(FakeNuma):
    """The kernel's other way of saying "target full": the whole call fails with ENOMEM after
    moving what fitted."""

    def move_pages(self, pid: int, addrs: np.ndarray, node: int) -> np.ndarray:
        from tierctl.kernel.numa import NodeFullError

        for a in addrs:
            if self.room0 <= 0:
                raise NodeFullError("move_pages: the target node is out of memory", f"pid {pid}")
            self.room0 -= 1
            self.where[(pid, int(a))] = node
        return np.full(addrs.shape[0], node, dtype=np.int32)


def test_whole_call_enomem_is_resolved_by_a_query() -> None:
    addrs = np.arange(6, dtype=np.uint64) * PAGE + 0x10000
    numa = FullNuma({(100, int(a)): 1 for a in addrs}, room0=2)
    report = KernelMover(numa, ProcessPages(100, addrs)).apply(_plan(list(range(6)), 0), budget_pages=100)  # type: ignore[arg-type]
    assert report.outcome.tolist() == [O.MOVED] * 2 + [O.TARGET_FULL] * 4


def test_budget_follows_plan_priority_not_address_order() -> None:
    numa, loc = _setup(8)
    mover = KernelMover(numa, loc)  # type: ignore[arg-type]
    report = mover.apply(_plan([7, 6, 5, 4, 3, 2, 1, 0], 0), budget_pages=2)  # hottest first, high addresses
    assert report.outcome.tolist() == [O.MOVED, O.MOVED] + [O.OVER_BUDGET] * 6


class FolioNuma(FakeNuma):
    """Pages 0..3 form one large folio the kernel moves on its first page: the second page of it in the
    same call finds the folio isolated (-EBUSY), the rest find it moved already. Page 6 is pinned: the
    migration fails and the kernel leaves its status unwritten (read as -EBUSY)."""

    def move_pages(self, pid: int, addrs: np.ndarray, node: int) -> np.ndarray:
        self._check(pid)
        self.calls.append(("move", pid, addrs.shape[0]))
        self.order.append([int(a) for a in addrs])
        folio = {0x10000 + i * PAGE for i in range(4)}
        out, seen = [], 0
        for a in (int(x) for x in addrs):
            if a in folio:
                seen += 1
                if seen == 1:
                    for f in folio:
                        self.where[(pid, f)] = node
                out.append(-errno.EBUSY if seen == 2 else node)
            elif a == 0x10000 + 6 * PAGE:
                out.append(-errno.EBUSY)
            else:
                self.where[(pid, a)] = node
                out.append(node)
        return np.array(out, dtype=np.int32)


def test_busy_pages_found_on_the_target_afterwards_count_as_moved() -> None:
    addrs = np.arange(8, dtype=np.uint64) * PAGE + 0x10000
    numa = FolioNuma({(100, int(a)): 1 for a in addrs})
    numa.order = []  # type: ignore[attr-defined]
    report = KernelMover(numa, ProcessPages(100, addrs)).apply(_plan(list(range(8)), 0), budget_pages=100)  # type: ignore[arg-type]
    assert report.outcome.tolist() == [O.MOVED] * 6 + [O.BUSY, O.MOVED]
    # one re-query, of the two busy pages only
    assert [c for c in numa.calls if c[0] == "query"] == [("query", 100, 8), ("query", 100, 2)]


def test_each_call_gets_its_addresses_in_ascending_order_outcomes_in_plan_order() -> None:
    addrs = np.arange(8, dtype=np.uint64) * PAGE + 0x10000
    numa = FolioNuma({(100, int(a)): 1 for a in addrs})
    numa.order = []  # type: ignore[attr-defined]
    numa.where[(100, int(addrs[5]))] = 0  # already there
    plan = _plan([7, 5, 6, 3, 2, 1, 0, 4], 0)  # priority order, not address order
    report = KernelMover(numa, ProcessPages(100, addrs), batch_pages=8).apply(plan, budget_pages=100)  # type: ignore[arg-type]
    assert numa.order == [sorted(numa.order[0])]  # type: ignore[attr-defined]
    assert len(numa.order[0]) == 7  # type: ignore[attr-defined]
    assert report.outcome.tolist() == [O.MOVED, O.ALREADY_THERE, O.BUSY] + [O.MOVED] * 5


def test_units_of_a_plan_in_address_order_need_no_sort() -> None:
    addrs = np.arange(10, dtype=np.uint64) * PAGE + 0x10000
    numa = FakeNuma({(100, int(a)): 1 for a in addrs})
    mover = KernelMover(numa, ProcessPages(100, addrs), huge=FakeHuge())  # type: ignore[arg-type]
    units, sizes, inv, ascending = mover._units(100, addrs)
    assert ascending and units.tolist() == [0x10000, 0x10000 + 8 * PAGE, 0x10000 + 9 * PAGE]
    assert sizes.tolist() == [8, 1, 1] and inv is not None and inv.tolist() == [0] * 8 + [1, 2]
    units, sizes, inv, ascending = mover._units(100, addrs[::-1].copy())
    assert not ascending and units.tolist() == [0x10000 + 9 * PAGE, 0x10000 + 8 * PAGE, 0x10000]
    assert inv is not None and inv.tolist() == [0, 1] + [2] * 8


def test_pagemap_scan_finds_this_hosts_huge_pages() -> None:
    """PAGEMAP_SCAN (Linux 6.7+) against kpageflags (root) on a THP-advised buffer of this process."""
    from tierctl.kernel.procfs import ProcFS
    from tierctl.kernel.thp import KpageflagsHugeResolver

    huge = 2 << 20
    buf = mmap.mmap(-1, 8 * huge, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    view = ctypes.c_char.from_buffer(buf)
    try:
        base = ctypes.addressof(view)
        start = (base + huge - 1) // huge * huge
        libc = ctypes.CDLL(None, use_errno=True)
        libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t(4 * huge), 14)  # MADV_HUGEPAGE
        ctypes.memset(start, 1, 4 * huge)
        addrs = start + np.arange(0, 4 * huge, PAGE, dtype=np.uint64)
        scan = KpageflagsHugeResolver(ProcFS())
        units, sizes = scan.units(os.getpid(), addrs)
        if scan.method != "pagemap-scan":
            pytest.skip("no PAGEMAP_SCAN on this kernel")
        if (sizes == 1).all():
            pytest.skip("the kernel gave this buffer no huge pages")
        assert set(np.unique(units[sizes == 512]).tolist()) <= {start + i * huge for i in range(4)}
        assert ((units == addrs) | (sizes == 512)).all()
        if os.geteuid() == 0:  # the kpageflags way agrees
            ref = KpageflagsHugeResolver(ProcFS(), scan=False)
            r_units, r_sizes = ref.units(os.getpid(), addrs)
            if ref.reason is None:
                assert (r_units == units).all() and (r_sizes == sizes).all()
        # scattered, unordered, repeated addresses resolve the same way
        rng = np.random.default_rng(0)
        pick = rng.choice(addrs.shape[0], 300)
        u2, s2 = scan.units(os.getpid(), addrs[pick])
        assert (u2 == units[pick]).all() and (s2 == sizes[pick]).all()
    finally:
        del view
        buf.close()
