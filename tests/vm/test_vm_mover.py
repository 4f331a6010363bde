"""Moving a live process's memory between the guest's two real tiers."""

from __future__ import annotations

import numpy as np
import pytest

from tierctl.core.mover import Outcome
from tierctl.core.plan import Plan
from tierctl.kernel.mover import KernelMover, ProcessPages
from tierctl.kernel.numa import NumaSyscalls
from tierctl.kernel.procfs import ProcFS
from tierctl.kernel.thp import KpageflagsHugeResolver

pytestmark = pytest.mark.vm
FAST, SLOW = 0, 1


def plan_all(n: int, dest: int) -> Plan:
    return Plan(np.arange(n, dtype=np.int64), np.full(n, dest, np.int16), np.ones(n, np.uint8))


def numa_maps_pages(procfs: ProcFS, pid: int, addr: int) -> dict[int, int]:
    (m,) = [m for m in procfs.numa_maps(pid) if m.start == addr]
    return m.pages_per_node


@pytest.mark.parametrize("thp", [False, True], ids=["4k", "thp"])
def test_256mib_to_slow_and_back_content_unchanged(child_factory, thp: bool) -> None:
    child = child_factory(256, thp=thp)
    before = child.hash()
    numa, procfs = NumaSyscalls(), ProcFS()
    addrs = child.addrs()
    n = addrs.shape[0]
    resolver = KpageflagsHugeResolver(procfs)
    units, sizes = resolver.units(child.pid, addrs)
    assert resolver.reason is None
    n_units = np.unique(units).shape[0]
    if thp:
        assert n_units == n // 512 and (sizes == 512).all()  # one move (and status) per huge page
    else:
        assert n_units == n and (sizes == 1).all()
    mover = KernelMover(numa, ProcessPages(child.pid, addrs), batch_pages=8192, huge=resolver)
    assert (numa.query(child.pid, addrs) == FAST).all()
    assert numa_maps_pages(procfs, child.pid, child.addr) == {FAST: n}
    for dest in (SLOW, FAST):
        report = mover.apply(plan_all(n, dest), budget_pages=1 << 30)
        assert report.counts["moved"] == n, report.counts
        assert (numa.query(child.pid, addrs) == dest).all()
        # the kernel's own accounting agrees, page for page
        assert numa_maps_pages(procfs, child.pid, child.addr) == {dest: n}
        assert child.hash() == before
    report = mover.apply(plan_all(n, FAST), budget_pages=1 << 30)
    assert report.counts["already_there"] == n
    assert mover.totals["moved"] == 2 * n


def test_process_exiting_mid_move_is_counted_gone(child_factory) -> None:
    child = child_factory(64, thp=False)
    addrs = child.addrs()
    numa = NumaSyscalls()
    killed = []

    def sleep(_: float) -> None:  # the rate limit pauses between batches: the process dies there
        if not killed:
            child.proc.kill()
            child.proc.wait()
            killed.append(True)

    mover = KernelMover(numa, ProcessPages(child.pid, addrs), batch_pages=1024, rate_mbps=4.0, sleep=sleep)
    report = mover.apply(plan_all(addrs.shape[0], SLOW), budget_pages=1 << 30)
    assert killed
    assert report.counts["gone"] > 0
    assert report.counts["moved"] + report.counts["gone"] == addrs.shape[0]
    assert (report.outcome[report.outcome != Outcome.MOVED] == Outcome.GONE).all()
