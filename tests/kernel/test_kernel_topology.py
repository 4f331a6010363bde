"""SysfsTopology against trees captured in the two-tier guest and on the host, plus tiny synthetic trees."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from tierctl.cli import topology_cmd
from tierctl.errors import KernelError
from tierctl.kernel.topology import (
    KernelTopology,
    SysfsTopology,
    demotion_preferred,
    parse_list,
    parse_meminfo_line,
)

FIXTURES = Path(__file__).parents[1] / "fixtures" / "topology"


def read_fixture(name: str) -> KernelTopology:
    root = FIXTURES / name
    return SysfsTopology(root / "sys", root / "proc", page_size=4096).read()


# ---------------------------------------------------------------------------------------------
# parsers


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        ("0", [0]),
        ("0-3,8,10-11\n", [0, 1, 2, 3, 8, 10, 11]),
        ("", []),
        ("\n", []),
        ("5,1-2", [1, 2, 5]),
        ("2-2", [2]),
    ],
)
def test_parse_list(text: str, ids: list[int]) -> None:
    assert parse_list(text) == ids


@pytest.mark.parametrize("text", ["a", "0-", "1,,2", "3-1", "0 1", "-1"])
def test_parse_list_rejects(text: str) -> None:
    with pytest.raises(KernelError) as e:
        parse_list(text, "some/cpulist:1")
    assert str(e.value).startswith("some/cpulist:1: ")


def test_parse_meminfo_line() -> None:
    assert parse_meminfo_line("Node 0 MemTotal:  1025024 kB") == (0, "MemTotal", 1025024 * 1024)
    assert parse_meminfo_line("Node 12 HugePages_Total:     3") == (12, "HugePages_Total", 3)
    with pytest.raises(KernelError):
        parse_meminfo_line("Node 0 MemTotal: lots kB")


# ---------------------------------------------------------------------------------------------
# captured trees (tests/fixtures/topology/README.md says how they were taken)


def test_guest_two_tiers() -> None:
    kt = read_fixture("guest-two-tier")
    t = kt.topology
    assert kt.tier_source == "memory_tiering"
    assert kt.memory_tiers == {"memory_tier4": [0], "memory_tier54": [1]}
    assert [(n.id, n.tier, n.cpus) for n in t.nodes] == [(0, 0, (0,)), (1, 1, ())]
    assert kt.memory_tier_of(1) == "memory_tier54"
    assert t.demotion_targets == {0: 1}
    assert t.demotion_target() == 1 and t.promotion_target() == 0
    assert kt.distances == {0: [10, 20], 1: [20, 10]}
    assert kt.distance(0, 1) == 20
    n0, n1 = t.nodes
    # HMAT as set by scripts/testbed: 100 ns / 20 GiB/s and 300 ns / 5 GiB/s (sysfs: ns, MiB/s)
    assert (n0.latency_ns, n0.bandwidth_mbps) == (100, 20480)
    assert (n1.latency_ns, n1.bandwidth_mbps) == (300, 5120)
    assert kt.hmat[1]["read_latency"] == 300 and kt.hmat[1]["class"] == "access1"
    # node1/meminfo: MemTotal 1029816 kB, MemFree 1018364 kB
    assert n1.capacity_pages == 1029816 * 1024 // 4096
    assert n1.free_pages == 1018364 * 1024 // 4096
    assert kt.knobs == {
        "demotion_enabled": False,
        "numa_balancing": 1,
        "numa_balancing_mode": "normal",
        "numa_balancing_promote_rate_limit_MBps": 65536,
    }


def test_guest_one_tier_control() -> None:
    kt = read_fixture("guest-one-tier")
    t = kt.topology
    assert kt.tier_source == "memory_tiering"
    assert kt.memory_tiers == {"memory_tier4": [0, 1]}
    assert [n.tier for n in t.nodes] == [0, 0]
    assert t.demotion_targets == {} and kt.demotion_preferred == {}
    assert t.nodes[1].latency_ns == t.nodes[0].latency_ns == 100


def test_host_single_node() -> None:
    kt = read_fixture("host-single-node")
    t = kt.topology
    assert [(n.id, n.tier, n.cpus) for n in t.nodes] == [(0, 0, (0, 1))]
    assert kt.tier_source == "memory_tiering"
    assert kt.memory_tiers == {"memory_tier4": [0]}
    assert t.nodes[0].latency_ns is None and kt.hmat == {}
    assert t.demotion_targets == {}
    assert kt.knobs["numa_balancing_mode"] == "off"


def test_page_size_defaults_to_the_system_one() -> None:
    import os

    root = FIXTURES / "host-single-node"
    kt = SysfsTopology(root / "sys", root / "proc").read()
    assert kt.topology.page_size == os.sysconf("SC_PAGE_SIZE")


# ---------------------------------------------------------------------------------------------
# synthetic trees


def meminfo(node: int, total_kb: int, free_kb: int) -> str:
    return (
        f"Node {node} MemTotal:       {total_kb} kB\n"
        f"Node {node} MemFree:        {free_kb} kB\n"
        f"Node {node} HugePages_Total:     0\n"
    )


def make_tree(
    root: Path,
    nodes: dict[int, tuple[str, list[int]]],
    *,
    tiers: dict[str, str] | None = None,
    knobs: bool = True,
) -> tuple[Path, Path]:
    """nodes: id -> (cpulist, distance row); tiers: memory_tierN -> nodelist (None: no memory_tiering)."""
    sys_root, proc_root = root / "sys", root / "proc"
    nd = sys_root / "devices/system/node"
    nd.mkdir(parents=True)
    (nd / "online").write_text(",".join(str(n) for n in nodes) + "\n")
    for nid, (cpulist, dist) in nodes.items():
        d = nd / f"node{nid}"
        d.mkdir()
        (d / "cpulist").write_text(cpulist + "\n")
        (d / "distance").write_text(" ".join(map(str, dist)) + "\n")
        (d / "meminfo").write_text(meminfo(nid, 1024 * 1024, 512 * 1024))
    if tiers is not None:
        td = sys_root / "devices/virtual/memory_tiering"
        td.mkdir(parents=True)
        for name, nodelist in tiers.items():
            (td / name).mkdir()
            (td / name / "nodelist").write_text(nodelist + "\n")
    proc_root.mkdir()
    if knobs:
        (sys_root / "kernel/mm/numa").mkdir(parents=True)
        (sys_root / "kernel/mm/numa/demotion_enabled").write_text("true\n")
        (proc_root / "sys/kernel").mkdir(parents=True)
        (proc_root / "sys/kernel/numa_balancing").write_text("2\n")
    return sys_root, proc_root


THREE_NODES = {0: ("0-3", [10, 20, 30]), 1: ("", [20, 10, 30]), 2: ("", [30, 30, 10])}


def test_missing_memory_tiering_falls_back_to_distance(tmp_path: Path) -> None:
    s, p = make_tree(tmp_path, THREE_NODES)
    kt = SysfsTopology(s, p, page_size=4096).read()
    assert kt.tier_source.startswith("distance heuristic: ")
    assert "memory_tiering missing" in kt.tier_source
    assert kt.memory_tiers == {}
    assert [n.tier for n in kt.topology.nodes] == [0, 1, 2]
    assert kt.topology.demotion_targets == {0: 1, 1: 2}
    assert kt.topology.nodes[0].capacity_pages == 256 * 1024
    assert kt.topology.nodes[0].free_pages == 128 * 1024


def test_kernel_tiers_win_over_distance(tmp_path: Path) -> None:
    # node 2 is farther but the kernel (HMAT) says it is faster than node 1
    s, p = make_tree(
        tmp_path, THREE_NODES, tiers={"memory_tier4": "0", "memory_tier22": "2", "memory_tier100": "1"}
    )
    kt = SysfsTopology(s, p, page_size=4096).read()
    assert list(kt.memory_tiers) == ["memory_tier4", "memory_tier22", "memory_tier100"]  # numeric, not text
    assert [n.tier for n in kt.topology.nodes] == [0, 2, 1]
    assert kt.topology.demotion_targets == {0: 2, 2: 1}


def test_empty_nodelists(tmp_path: Path) -> None:
    s, p = make_tree(tmp_path, THREE_NODES, tiers={"memory_tier4": "", "memory_tier54": ""})
    kt = SysfsTopology(s, p, page_size=4096).read()
    assert kt.memory_tiers == {"memory_tier4": [], "memory_tier54": []}
    assert "is empty" in kt.tier_source and kt.tier_source.startswith("distance heuristic")
    assert [n.tier for n in kt.topology.nodes] == [0, 1, 2]


def test_one_empty_nodelist_is_skipped(tmp_path: Path) -> None:
    s, p = make_tree(
        tmp_path, THREE_NODES, tiers={"memory_tier4": "0", "memory_tier20": "", "memory_tier54": "1-2"}
    )
    kt = SysfsTopology(s, p, page_size=4096).read()
    assert kt.tier_source == "memory_tiering"
    assert [n.tier for n in kt.topology.nodes] == [0, 1, 1]
    assert kt.topology.demotion_targets == {0: 1}  # node 1 is nearer than node 2
    assert kt.memory_tier_of(0) == "memory_tier4"


def test_node_in_no_memory_tier(tmp_path: Path) -> None:
    s, p = make_tree(tmp_path, THREE_NODES, tiers={"memory_tier4": "0", "memory_tier54": "1"})
    kt = SysfsTopology(s, p, page_size=4096).read()
    assert [n.tier for n in kt.topology.nodes] == [0, 1, 1]
    assert "node 2 in no memory tier" in kt.tier_source


def test_equal_distance_targets_are_all_preferred(tmp_path: Path) -> None:
    nodes = {0: ("0", [10, 20, 20]), 1: ("", [20, 10, 20]), 2: ("", [20, 20, 10])}
    s, p = make_tree(tmp_path, nodes, tiers={"memory_tier4": "0", "memory_tier54": "1-2"})
    kt = SysfsTopology(s, p, page_size=4096).read()
    assert kt.demotion_preferred == {0: [1, 2]}
    assert kt.topology.demotion_targets == {0: 1}


def test_demotion_preferred_prefers_cpu_less_nodes() -> None:
    ids = [0, 1, 2]
    dist = {0: [10, 20, 20], 1: [20, 10, 20], 2: [20, 20, 10]}
    got = demotion_preferred(ids, {0: 0, 1: 1, 2: 1}, dist, {0: (0,), 1: (1,), 2: ()})
    assert got == {0: [2, 1]}


def test_malformed_meminfo_names_file_and_line(tmp_path: Path) -> None:
    s, p = make_tree(tmp_path, THREE_NODES)
    f = s / "devices/system/node/node1/meminfo"
    f.write_text("Node 1 MemTotal:  1048576 kB\nNode 1 MemFree  1024 kB\n")
    with pytest.raises(KernelError) as e:
        SysfsTopology(s, p).read()
    assert e.value.where == f"{f}:2"
    assert str(e.value).startswith(f"{f}:2: ")
    assert "MemFree" in str(e.value)


def test_meminfo_of_another_node(tmp_path: Path) -> None:
    s, p = make_tree(tmp_path, THREE_NODES)
    f = s / "devices/system/node/node1/meminfo"
    f.write_text(meminfo(0, 10, 5))
    with pytest.raises(KernelError, match="node 0, expected node 1"):
        SysfsTopology(s, p).read()


def test_meminfo_without_memtotal(tmp_path: Path) -> None:
    s, p = make_tree(tmp_path, THREE_NODES)
    (s / "devices/system/node/node2/meminfo").write_text("Node 2 MemFree: 5 kB\n")
    with pytest.raises(KernelError, match="no MemTotal line"):
        SysfsTopology(s, p).read()


def test_malformed_cpulist(tmp_path: Path) -> None:
    s, p = make_tree(tmp_path, THREE_NODES)
    f = s / "devices/system/node/node0/cpulist"
    f.write_text("0-3,x\n")
    with pytest.raises(KernelError) as e:
        SysfsTopology(s, p).read()
    assert e.value.where == f"{f}:1"
    assert "0-3,x" in str(e.value)


def test_short_distance_row(tmp_path: Path) -> None:
    s, p = make_tree(tmp_path, THREE_NODES)
    f = s / "devices/system/node/node2/distance"
    f.write_text("30 10\n")
    with pytest.raises(KernelError, match="2 distances for 3 online nodes") as e:
        SysfsTopology(s, p).read()
    assert e.value.where == f"{f}:1"


def test_missing_knob_files_are_none(tmp_path: Path) -> None:
    s, p = make_tree(tmp_path, THREE_NODES, knobs=False)
    kt = SysfsTopology(s, p).read()
    assert kt.knobs == {
        "demotion_enabled": None,
        "numa_balancing": None,
        "numa_balancing_mode": None,
        "numa_balancing_promote_rate_limit_MBps": None,
    }


def test_knob_values(tmp_path: Path) -> None:
    s, p = make_tree(tmp_path, THREE_NODES)
    kt = SysfsTopology(s, p).read()
    assert kt.knobs["demotion_enabled"] is True
    assert (kt.knobs["numa_balancing"], kt.knobs["numa_balancing_mode"]) == (2, "tiering")
    (p / "sys/kernel/numa_balancing").write_text("3\n")
    assert SysfsTopology(s, p).knobs()["numa_balancing_mode"] == "normal+tiering"
    (p / "sys/kernel/numa_balancing").write_text("tiering\n")
    with pytest.raises(KernelError, match="not an integer"):
        SysfsTopology(s, p).knobs()
    (s / "kernel/mm/numa/demotion_enabled").write_text("maybe\n")
    with pytest.raises(KernelError, match="not a boolean"):
        SysfsTopology(s, p).knobs()


def test_hmat_access0_and_zero_is_unknown(tmp_path: Path) -> None:
    s, p = make_tree(tmp_path, THREE_NODES)
    d = s / "devices/system/node/node1/access0/initiators"
    d.mkdir(parents=True)
    for attr, v in {
        "read_latency": 250,
        "write_latency": 350,
        "read_bandwidth": 0,
        "write_bandwidth": 0,
    }.items():
        (d / attr).write_text(f"{v}\n")
    kt = SysfsTopology(s, p).read()
    n1 = kt.topology.node(1)
    assert n1.latency_ns == 300 and n1.bandwidth_mbps is None
    assert kt.hmat[1] == {"read_latency": 250, "write_latency": 350, "class": "access0"}
    assert kt.topology.node(0).latency_ns is None


def test_no_node_directory(tmp_path: Path) -> None:
    with pytest.raises(KernelError) as e:
        SysfsTopology(tmp_path / "sys", tmp_path / "proc").read()
    assert e.value.where == str(tmp_path / "sys/devices/system/node")


def test_online_node_without_directory(tmp_path: Path) -> None:
    s, p = make_tree(tmp_path, THREE_NODES)
    (s / "devices/system/node/online").write_text("0-3\n")
    with pytest.raises(KernelError, match="node 3 is online but has no directory"):
        SysfsTopology(s, p).read()


def test_missing_cpulist_names_the_path(tmp_path: Path) -> None:
    s, p = make_tree(tmp_path, THREE_NODES)
    f = s / "devices/system/node/node1/cpulist"
    f.unlink()
    with pytest.raises(KernelError) as e:
        SysfsTopology(s, p).read()
    assert e.value.where == str(f)


# ---------------------------------------------------------------------------------------------
# the command


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    topology_cmd.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


def fixture_args(name: str) -> list[str]:
    root = FIXTURES / name
    return ["topology", "--sys-root", str(root / "sys"), "--proc-root", str(root / "proc")]


def test_cli_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(fixture_args("guest-two-tier")) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == [
        "node", "tier", "memory", "tier", "cpus", "size", "free", "latency", "ns", "bandwidth",
        "demotes", "to",
    ]  # fmt: skip
    assert lines[2].split() == ["0", "0", "memory_tier4", "0", "969.0M", "886.9M", "100", "20.0G/s", "1"]
    assert lines[3].split() == ["1", "1", "memory_tier54", "-", "1005.7M", "994.5M", "300", "5.0G/s", "-"]
    assert "  0:   10  20" in lines
    assert "  1:   20  10" in lines
    assert "tier source   memory_tiering" in lines
    assert "memory tiers  memory_tier4 = 0, memory_tier54 = 1" in lines
    assert "demotion_enabled false, numa_balancing 1 (normal), promote rate limit 65536 MB/s" in out


def test_cli_text_one_tier(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(fixture_args("guest-one-tier")) == 0
    out = capsys.readouterr().out
    assert "memory_tier4 = 0-1" in out
    assert "one tier: nothing to demote into" in out


def test_cli_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli([*fixture_args("guest-two-tier"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["tier_source"] == "memory_tiering"
    assert doc["memory_tiers"] == {"memory_tier4": [0], "memory_tier54": [1]}
    assert doc["distances"] == {"0": [10, 20], "1": [20, 10]}
    n0, n1 = doc["nodes"]
    assert (n0["tier"], n0["memory_tier"], n0["cpus"], n0["demotion_target"]) == (0, "memory_tier4", [0], 1)
    assert (n1["tier"], n1["latency_ns"], n1["bandwidth_mbps"], n1["demotion_target"]) == (1, 300, 5120, None)
    assert n1["hmat"]["write_bandwidth"] == 5120
    assert n1["capacity_mib"] == pytest.approx(1029816 / 1024, abs=0.01)
    assert doc["knobs"]["numa_balancing_mode"] == "normal"


def test_cli_json_heuristic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    s, p = make_tree(tmp_path, THREE_NODES, knobs=False)
    assert run_cli(["topology", "--sys-root", str(s), "--proc-root", str(p), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert "memory_tiering missing" in doc["tier_source"]
    assert [n["tier"] for n in doc["nodes"]] == [0, 1, 2]
    assert doc["knobs"]["demotion_enabled"] is None


def test_cli_error_is_a_kernel_error(tmp_path: Path) -> None:
    with pytest.raises(KernelError, match="no NUMA node directory"):
        run_cli(["topology", "--sys-root", str(tmp_path)])
