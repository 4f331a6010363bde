"""The kernel memory view on this host's real processes (one node: every page on node 0)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from tests.vm.conftest import start_child
from tierctl.errors import PermissionDeniedError
from tierctl.kernel.memview import KernelMemoryView
from tierctl.kernel.numa import NumaSyscalls
from tierctl.kernel.procfs import ProcFS
from tierctl.kernel.topology import SysfsTopology

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="reads another process's pagemap: needs root")


def test_snapshots_track_pages_follow_changes_and_survive_exits() -> None:
    child = start_child(8, thp=False)
    targets = [(child.pid, "/test/a")]
    view = KernelMemoryView(ProcFS(), NumaSyscalls(), SysfsTopology(), lambda: targets)
    try:
        s1 = view.snapshot()
        n1 = s1.node.shape[0]
        assert n1 >= 8 * 256 and (s1.node == 0).all() and s1.new_pages is None
        assert view.cgroups == ["/test/a"] and (s1.cgroup == 0).all()
        pids, addrs = view.locate(np.arange(n1))
        assert set(pids.tolist()) == {child.pid}
        assert np.isin(child.addrs(), addrs).all()  # the child's buffer is tracked, page by page
        before = dict(zip(addrs.tolist(), range(n1), strict=True))
        _, a, length = child.ask("alloc 4")
        s2 = view.snapshot()
        _, addrs2 = view.locate(np.arange(s2.node.shape[0]))
        assert s2.remap is not None and s2.remap.shape[0] == n1
        # every old page that is still there moved to its own new index
        kept = s2.remap >= 0
        old_addrs = np.array(list(before))
        assert (addrs2[s2.remap[kept]] == old_addrs[kept]).all()
        new_addrs = set(addrs2[s2.new_pages].tolist())
        assert set(range(int(a), int(a) + int(length), 4096)) <= new_addrs
        child.stop()
        s3 = view.snapshot()  # the process is gone: skipped and counted, not raised
        assert s3.node.shape[0] == 0 and (s3.remap == -1).all() and view.vanished == 1
    finally:
        child.stop()


def test_a_process_it_may_not_read_is_skipped_not_fatal() -> None:
    """Pid 1 here holds a capability this process lacks (the ptrace check refuses even root): before,
    the whole read failed and every cycle with it; now that process is skipped and reported."""
    child = start_child(4, thp=False)

    class Refusing(ProcFS):
        def maps(self, pid):  # type: ignore[no-untyped-def]
            if pid == 424242:
                raise PermissionDeniedError(
                    "permission denied: reading maps needs ptrace", f"/proc/{pid}/maps"
                )
            return super().maps(pid)

    targets = [(424242, "/test/denied"), (child.pid, "/test/a")]
    view = KernelMemoryView(Refusing(), NumaSyscalls(), SysfsTopology(), lambda: targets)
    try:
        s = view.snapshot()
        assert s.node.shape[0] >= 4 * 256  # the readable process is tracked
        assert list(view.refused) == [424242] and "ptrace" in view.refused[424242]
    finally:
        child.stop()
