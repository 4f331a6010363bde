"""The bcc samplers in the two-tier guest (Debian 6.12, headers through the modules' build link).

Few and fast on purpose: every bcc compile costs seconds under TCG. One bpf-fault session checks
header discovery, fault counts under pid and v2 cgroup, and migration counts by reason after a
move_pages; one bpf-perf session checks the software page-fault event with the shipped headers.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.samplers.test_bpf_samplers import SKIP, Child, in_mapping, spawn_child
from tierctl.kernel.cgroupfs import CgroupTree, cgroup2_root
from tierctl.kernel.numa import NumaSyscalls
from tierctl.samplers import bpf_layout as L
from tierctl.samplers.base import Targets
from tierctl.samplers.fault import FaultSampler
from tierctl.samplers.perf_addr import PerfAddrSampler

pytestmark = pytest.mark.vm
SLOW = 1


@pytest.fixture
def children() -> Iterator[list[Child]]:
    kids: list[Child] = []
    yield kids
    for c in kids:
        c.stop()


@pytest.fixture
def guest_cgroup() -> Iterator[Path]:
    root = cgroup2_root()
    assert root is not None, "the guest mounts cgroup v2"
    d = root / f"tierctl-bpf-vm-{os.getpid()}"
    d.mkdir()
    yield d
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            d.rmdir()
            break
        time.sleep(0.05)


def test_fault_sampler_with_kernel_headers_counts_pages_cgroup_and_migrations(
    guest_cgroup: Path, children: list[Child]
) -> None:
    assert SKIP is None, SKIP
    n = 1000
    child = spawn_child(n, guest_cgroup)
    children.append(child)
    s = FaultSampler(headers="kernel")  # auto prefers the shipped tree; this covers the kernel's own
    av = s.probe()
    assert av.ok, av.reason
    release = os.uname().release
    assert f"kernel headers at /lib/modules/{release}/build" in av.reason, av.reason
    s.start(Targets(pids=(child.pid,)))
    try:
        assert s.headers is not None and s.headers.kind == "kernel"
        assert s.with_migrations
        child.touch()
        raw = s.drain()
        mine = in_mapping(raw, child)
        print(f"guest: compile+attach with kernel headers {s.compile_seconds:.2f} s; ", end="")
        print(f"{n} pages touched, {int(mine['count'].sum())} faults counted; {s.health().notes}")
        assert abs(int(mine["count"].sum()) - n) <= n // 100
        tree = CgroupTree.mounted()
        assert tree is not None
        assert set(mine["cgroup"].tolist()) == {guest_cgroup.stat().st_ino} == {tree.pid_id(child.pid)}
        before = s.migrations()[L.MigrateReason.SYSCALL].copy()
        addrs = child.addr + np.arange(0, child.size, 4096, dtype=np.uint64)
        status = NumaSyscalls().move_pages(child.pid, addrs, SLOW)
        moved = int((status == SLOW).sum())
        assert moved >= n * 0.99
        after = s.migrations()[L.MigrateReason.SYSCALL]
        assert after["calls"] > before["calls"]
        assert after["succeeded"] - before["succeeded"] >= moved
        assert s.health().dropped == 0
    finally:
        s.stop()


def test_perf_sampler_software_event_with_the_shipped_headers(children: list[Child]) -> None:
    assert SKIP is None, SKIP
    n = 1000
    child = spawn_child(n)
    children.append(child)
    s = PerfAddrSampler(headers="shipped", sample_period=1)
    s.start(Targets(pids=(child.pid,)))
    try:
        assert s.chosen is not None
        child.touch()
        mine = in_mapping(s.drain(), child)
        print(
            f"guest: compile+attach with the shipped tree {s.compile_seconds:.2f} s; {s.chosen.label}; ",
            end="",
        )
        print(f"{n} pages touched, {int(mine['count'].sum())} samples in the mapping")
        if s.chosen.kind == "software":
            assert abs(int(mine["count"].sum()) - n) <= n // 100
        assert len(mine) > 0
    finally:
        s.stop()
