"""The kernel layer on the guest's real two tiers: topology, target-full moves, cgroups, cpuset, CLI."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import numpy as np
import pytest

from tests.vm.conftest import remove_cgroup
from tierctl.cli import main
from tierctl.core.plan import Plan
from tierctl.kernel.cgroupfs import CgroupFS
from tierctl.kernel.mover import KernelMover, ProcessPages
from tierctl.kernel.numa import NumaSyscalls
from tierctl.kernel.procfs import ProcFS
from tierctl.kernel.thp import KpageflagsHugeResolver
from tierctl.kernel.topology import SysfsTopology

pytestmark = pytest.mark.vm
FAST, SLOW = 0, 1
MiB = 1 << 20


def plan_all(n: int, dest: int) -> Plan:
    return Plan(np.arange(n, dtype=np.int64), np.full(n, dest, np.int16), np.ones(n, np.uint8))


def in_cgroup(path: str) -> list[str]:
    """A command prefix that joins cgroup ``path`` before exec'ing the child (charges follow)."""
    return ["sh", "-c", f'echo $$ > /sys/fs/cgroup/{path}/cgroup.procs && exec "$@"', "sh"]


@pytest.fixture
def cgroup(request: pytest.FixtureRequest) -> Iterator[str]:
    fs = CgroupFS()
    path = f"tierctl-test-{os.getpid()}-{request.node.name.split('[')[0][-24:]}"
    fs.create(path)
    # into each ancestor's subtree_control (the root's); enabling for "" wrote nowhere, and the file
    # passed only after other guest tests had enabled memory in the root
    fs.enable_controllers(path, ("memory", "cpuset"))
    yield path
    remove_cgroup(fs, path)


def test_topology_sees_two_nodes_node1_in_the_lower_tier() -> None:
    kt = SysfsTopology().read()
    nodes = {n.id: n for n in kt.topology.nodes}
    assert sorted(nodes) == [0, 1]
    assert nodes[0].tier == 0 and nodes[1].tier == 1
    assert nodes[0].cpus and not nodes[1].cpus
    assert kt.tier_source == "memory_tiering"
    assert kt.topology.demotion_target() == SLOW and kt.topology.promotion_target() == FAST
    assert nodes[1].latency_ns is not None and nodes[1].latency_ns > nodes[0].latency_ns  # type: ignore[operator]


def test_cli_topology_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["topology", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["tier_source"] == "memory_tiering"
    assert {n["id"]: n["tier"] for n in out["nodes"]} == {0: 0, 1: 1}


def test_move_larger_than_slow_free_memory_reports_target_full_and_loses_nothing(child_factory) -> None:
    free1 = SysfsTopology().read().topology.node(SLOW).free_pages * 4096
    hog_mib = max(0, free1 // MiB - 96)
    child_factory(hog_mib, thp=False, prefix=["numactl", "--membind=1"])  # fills node 1 but ~96 MiB
    child = child_factory(256, thp=False)
    before = child.hash()
    addrs = child.addrs()
    numa = NumaSyscalls()
    report = KernelMover(numa, ProcessPages(child.pid, addrs)).apply(plan_all(addrs.shape[0], SLOW), 1 << 30)
    c = report.counts
    assert c["moved"] > 0 and c["target_full"] > 0, c
    assert c["moved"] + c["target_full"] == addrs.shape[0], c
    where = numa.query(child.pid, addrs)
    assert (where[report.outcome == 0] == SLOW).all()  # moved pages are on node 1
    assert (where[report.outcome == 5] == FAST).all()  # the rest stayed where they were
    assert child.hash() == before


def test_cgroup_numa_stat_follows_the_move(child_factory, cgroup: str) -> None:
    fs = CgroupFS()
    child = child_factory(128, thp=False, prefix=in_cgroup(cgroup))
    assert fs.pids(cgroup) == [child.pid]
    before = fs.numa_stat(cgroup)["anon"]
    assert before.get(FAST, 0) >= 128 * MiB and before.get(SLOW, 0) < 8 * MiB
    addrs = child.addrs()
    report = KernelMover(NumaSyscalls(), ProcessPages(child.pid, addrs)).apply(
        plan_all(addrs.shape[0], SLOW), 1 << 30
    )
    assert report.counts["moved"] == addrs.shape[0]
    after = fs.numa_stat(cgroup)["anon"]
    # the 128 MiB left node 0 for node 1. The interpreter's own few MiB stay on node 0 and may grow
    # meanwhile (a CI run saw node 0 lose 127.3 MiB while node 1 gained exactly 128): node 1 is exact,
    # node 0 is allowed that growth
    assert after.get(SLOW, 0) - before.get(SLOW, 0) >= 128 * MiB
    assert before[FAST] - after.get(FAST, 0) >= 124 * MiB


def test_cpuset_mems_pins_new_allocations_of_a_cgroup(child_factory, cgroup: str) -> None:
    fs = CgroupFS()
    procfs = ProcFS()
    child = child_factory(32, thp=False, prefix=in_cgroup(cgroup))
    fs.set_cpuset_mems(cgroup, [SLOW])
    assert fs.cpuset_mems(cgroup) == (SLOW,)
    _, addr, length = child.ask("alloc 32")
    maps = {m.start: m.pages_per_node for m in procfs.numa_maps(child.pid)}
    assert maps[int(addr)] == {SLOW: int(length) // 4096}  # new memory went to node 1
    # cgroup v2 has no memory_migrate switch: writing cpuset.mems also migrates what the cgroup
    # already had (measured here; v1 only does so with cpuset.memory_migrate=1)
    assert maps[child.addr] == {SLOW: child.length // 4096}


def test_cli_move_and_pages_on_real_tiers(child_factory, capsys: pytest.CaptureFixture[str]) -> None:
    child = child_factory(64, thp=True)
    assert main(["move", str(child.pid), "--to", "slow", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["to"] == SLOW and out["outcomes"]["moved"] >= 64 * 256
    assert out["thp"] == "detected via kpageflags"
    assert main(["pages", str(child.pid), "--json"]) == 0
    pages = json.loads(capsys.readouterr().out)
    assert pages["bytes_per_tier"]["1"] >= 64 * MiB
    assert (
        main(
            [
                "move",
                str(child.pid),
                "--to",
                "fast",
                "--range",
                f"{child.addr:#x}-{child.addr + 2 * MiB:#x}",
                "--json",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["pages"] == 512 and out["outcomes"]["moved"] == 512
    assert (NumaSyscalls().query(child.pid, child.addrs()[:512]) == FAST).all()


def test_thp_resolver_agrees_with_the_kernel(child_factory) -> None:
    child = child_factory(16, thp=True)
    units, sizes = KpageflagsHugeResolver(ProcFS()).units(child.pid, child.addrs())
    assert (sizes == 512).all()
    assert np.unique(units).tolist() == [child.addr + i * 2 * MiB for i in range(8)]
