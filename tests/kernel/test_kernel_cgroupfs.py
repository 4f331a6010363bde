"""CgroupFS and `tierctl cgroups` against real captures (tests/fixtures/cgroupfs) and tiny trees."""

from __future__ import annotations

import argparse
import errno
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tierctl.cli import cgroups_cmd
from tierctl.errors import (
    InputError,
    KernelError,
    NoSuchProcessError,
    PermissionDeniedError,
    UnavailableError,
)
from tierctl.kernel import cgroupfs
from tierctl.kernel.cgroupfs import CgroupFS, Layout, Pressure, PressureLine, format_nodes

FIX = Path(__file__).parents[1] / "fixtures"
GUEST_CG = FIX / "cgroupfs" / "guest-v2"
HOST_CG = FIX / "cgroupfs" / "host-hybrid"
GUEST = CgroupFS(GUEST_CG, proc_root=FIX / "procfs" / "guest", page_size=4096)
HOST = CgroupFS(HOST_CG, proc_root=FIX / "procfs" / "host", page_size=4096)
CAP = "tierctl-cap"
PAPI = "process_api/60e8cdcd427b581812dcc3ad6de3c015"
ZERO = PressureLine(0.0, 0.0, 0.0, 0)


def tree(root: Path, files: dict[str, str]) -> Path:
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content)
    return root


def v2(tmp_path: Path, files: dict[str, str] | None = None, page_size: int = 4096) -> CgroupFS:
    base = {
        "cgroup.controllers": "cpuset cpu io memory pids\n",
        "cgroup.subtree_control": "",
        "a/cgroup.procs": "",
    }
    root = tree(tmp_path / "cg", {**base, **(files or {})})
    return CgroupFS(root, proc_root=tmp_path / "proc", page_size=page_size)


def v1(tmp_path: Path, files: dict[str, str] | None = None, page_size: int = 4096) -> CgroupFS:
    base = {
        "memory/memory.usage_in_bytes": "100\n",
        "memory/a/memory.usage_in_bytes": "10\n",
        "unified/cgroup.controllers": "",
        "cpuset/cpuset.mems": "0-1\n",
        "cpuset/a/cpuset.mems": "\n",
    }
    root = tree(tmp_path / "cg", {**base, **(files or {})})
    return CgroupFS(root, proc_root=tmp_path / "proc", page_size=page_size)


# --- layout and discovery --------------------------------------------------------------------
def test_layouts(tmp_path: Path) -> None:
    assert GUEST.layout is Layout.UNIFIED and GUEST.v2 and GUEST.memory_root == GUEST_CG
    assert HOST.layout is Layout.HYBRID and not HOST.v2 and HOST.memory_root == HOST_CG / "memory"
    assert HOST.cpuset_root == HOST_CG / "cpuset"
    legacy = tree(tmp_path / "legacy", {"memory/memory.usage_in_bytes": "1\n"})
    assert CgroupFS(legacy).layout is Layout.LEGACY
    no_mem = tree(tmp_path / "v2-no-memory", {"cgroup.controllers": "cpu io\n"})
    hybrid_at_root = tree(
        tmp_path / "v2-hybrid", {"cgroup.controllers": "cpu\n", "memory/memory.usage_in_bytes": "1"}
    )
    assert CgroupFS(hybrid_at_root).layout is Layout.HYBRID
    for root in (no_mem, tmp_path / "empty", tmp_path / "absent"):
        fs = CgroupFS(root)
        assert fs.layout is Layout.NONE
        with pytest.raises(UnavailableError, match="no memory cgroup controller"):
            fs.list()
        with pytest.raises(UnavailableError):
            fs.memory_current("x")


def test_list(tmp_path: Path) -> None:
    assert GUEST.list() == ["", CAP, "tierctl-empty"]
    assert HOST.list() == [
        "",
        "process_api",
        "process_api/60e8cdcd427b581812dcc3ad6de3c015",
        "process_api/c334b31a8d8113b8b11f808a6cb5d557",
    ]
    assert HOST.list("/process_api/") == HOST.list()[1:]
    fs = v2(tmp_path, {"b/c/cgroup.procs": "", "a.b/cgroup.procs": "", "a/z/cgroup.procs": ""})
    assert fs.list() == ["", "a", "a/z", "a.b", "b", "b/c"]  # parents first
    assert fs.list("b") == ["b", "b/c"]


@pytest.mark.parametrize("bad", ["..", "a/../..", "./a", "a//b", "nope", "a/nope"])
def test_bad_cgroup_paths_are_input_errors(tmp_path: Path, bad: str) -> None:
    fs = v2(tmp_path)
    with pytest.raises(InputError) as e:
        fs.pids(bad)
    assert bad in str(e.value) or bad.strip("/") in str(e.value)


def test_pids(tmp_path: Path) -> None:
    assert GUEST.pids(CAP) == [192] and GUEST.pids("tierctl-empty") == []
    assert 24691 in HOST.pids(PAPI)
    fs = v2(tmp_path, {"a/cgroup.procs": "12\n\nabc\n"})
    with pytest.raises(KernelError) as e:
        fs.pids("a")
    assert e.value.where == f"{tmp_path}/cg/a/cgroup.procs:3"


def test_has_memory(tmp_path: Path) -> None:
    assert GUEST.has_memory("") and GUEST.has_memory(CAP) and HOST.has_memory(PAPI)
    assert not v2(tmp_path).has_memory("a")  # v2 cgroup without the memory controller


# --- memory ----------------------------------------------------------------------------------
def test_memory_current(tmp_path: Path) -> None:
    assert GUEST.memory_current(CAP) == 35315712 and GUEST.memory_current("tierctl-empty") == 0
    with pytest.raises(UnavailableError, match="root"):
        GUEST.memory_current("")
    assert HOST.memory_current("") == 659202048 and HOST.memory_current(PAPI) == 61820928
    fs = v2(tmp_path, {"a/memory.current": "12x\n", "b/memory.current": "", "c/memory.current": "1\n2\n"})
    with pytest.raises(KernelError) as e:
        fs.memory_current("a")
    assert e.value.where == f"{tmp_path}/cg/a/memory.current:1"
    with pytest.raises(KernelError, match="empty"):
        fs.memory_current("b")
    with pytest.raises(KernelError, match="one value"):
        fs.memory_current("c")
    (tmp_path / "cg" / "d").mkdir()
    with pytest.raises(UnavailableError, match="controller not enabled"):
        fs.memory_current("d")


def test_memory_max(tmp_path: Path) -> None:
    assert GUEST.memory_max(CAP) is None  # "max"
    assert GUEST.memory_max("") is None
    assert HOST.memory_max(PAPI) is None  # 9223372036854771712 = v1's "no limit"
    fs = v2(tmp_path, {"a/memory.max": "1073741824\n", "b/memory.max": "lots\n"})
    assert fs.memory_max("a") == 1 << 30
    with pytest.raises(KernelError):
        fs.memory_max("b")
    assert v1(tmp_path / "1", {"memory/a/memory.limit_in_bytes": "536870912\n"}).memory_max("a") == 1 << 29


def test_memory_stat(tmp_path: Path) -> None:
    st = GUEST.memory_stat(CAP)
    assert st["anon"] == 28340224 and st["anon_thp"] == 23068672 and st["pgfault"] == 1486
    assert HOST.memory_stat(PAPI)["rss"] == 42160128
    fs = v2(tmp_path, {"a/memory.stat": "anon 1\nfile\n", "b/memory.stat": ""})
    with pytest.raises(KernelError) as e:
        fs.memory_stat("a")
    assert e.value.where.endswith("a/memory.stat:2")
    assert fs.memory_stat("b") == {}


def test_numa_stat_v2_is_bytes() -> None:
    ns = GUEST.numa_stat(CAP)
    assert ns["anon"] == {0: 19951616, 1: 8388608}  # 8 MiB bound to node 1
    assert ns["anon_thp"] == {0: 14680064, 1: 8388608}
    assert sum(ns["anon"].values()) == GUEST.memory_stat(CAP)["anon"]
    assert ns["pgpromote_success"] == {0: 0, 1: 0}  # an event count, as read
    assert GUEST.node_memory(CAP) == {0: 19951616 + 6352896, 1: 8388608}
    assert GUEST.numa_stat("")["anon"] == {0: 33001472, 1: 8388608}


def test_numa_stat_v1_pages_become_bytes() -> None:
    ns = HOST.numa_stat(PAPI)
    assert ns["anon"] == {0: 10293 * 4096} and ns["hierarchical_total"] == {0: 14638 * 4096}
    assert "total" in ns and ns["total"] == {0: 14638 * 4096}  # the row named "total"
    assert sum(ns["anon"].values()) == HOST.memory_stat(PAPI)["rss"]
    assert HOST.node_memory(PAPI) == {0: (4345 + 10293) * 4096}  # hierarchical anon + file


def test_numa_stat_units_follow_page_size(tmp_path: Path) -> None:
    text = (
        "total=3 N0=1 N1=2\nanon=3 N0=1 N1=2\nhierarchical_anon=3 N0=1 N1=2\nhierarchical_file=0 N0=0 N1=0\n"
    )
    fs = v1(tmp_path, {"memory/a/memory.numa_stat": text}, page_size=65536)
    assert fs.numa_stat("a")["anon"] == {0: 65536, 1: 131072}
    assert fs.node_memory("a") == {0: 65536, 1: 131072}


@pytest.mark.parametrize(
    ("layout", "text", "line"),
    [
        ("v2", "anon N0=1 N1=2\nfile N0=x\n", 2),
        ("v2", "anon 5\n", 1),
        ("v1", "total=3 N0=3\nanon N0=3\n", 2),
        ("v1", "total=x N0=3\n", 1),
    ],
)
def test_numa_stat_parse_errors(tmp_path: Path, layout: str, text: str, line: int) -> None:
    if layout == "v2":
        fs, f = v2(tmp_path, {"a/memory.numa_stat": text}), "a/memory.numa_stat"
    else:
        fs, f = v1(tmp_path, {"memory/a/memory.numa_stat": text}), "memory/a/memory.numa_stat"
    with pytest.raises(KernelError) as e:
        fs.numa_stat("a")
    assert e.value.where == f"{tmp_path}/cg/{f}:{line}"


def test_numa_stat_empty_and_absent(tmp_path: Path) -> None:
    fs = v2(tmp_path, {"a/memory.numa_stat": ""})
    assert fs.numa_stat("a") == {}
    with pytest.raises(KernelError, match="no 'anon' row"):
        fs.node_memory("a")
    (tmp_path / "cg" / "b").mkdir()
    with pytest.raises(UnavailableError):
        fs.numa_stat("b")


# --- pressure --------------------------------------------------------------------------------
def test_pressure_from_captures() -> None:
    assert GUEST.pressure(CAP) == Pressure(ZERO, ZERO)
    assert GUEST.pressure("") == Pressure(ZERO, ZERO)
    assert HOST.pressure("") == Pressure(ZERO, ZERO)  # /proc/pressure/memory
    assert HOST.pressure(PAPI) == Pressure(None, None)  # v1: no per-cgroup PSI


def test_pressure_root_reads_proc(tmp_path: Path) -> None:
    fs = v2(
        tmp_path,
        {
            "memory.pressure": "some avg10=9.00 avg60=9.00 avg300=9.00 total=9\n",
            "a/memory.pressure": "some avg10=1.50 avg60=0.25 avg300=0.05 total=123456\n",
        },
    )
    psi = "some avg10=2.00 avg60=1.00 avg300=0.50 total=77\nfull avg10=1.00 avg60=0.50 avg300=0.25 total=33\n"
    tree(tmp_path / "proc", {"pressure/memory": psi})
    assert fs.pressure("") == Pressure(PressureLine(2.0, 1.0, 0.5, 77), PressureLine(1.0, 0.5, 0.25, 33))
    assert fs.pressure("a") == Pressure(PressureLine(1.5, 0.25, 0.05, 123456), None)


def test_pressure_absent_and_broken(tmp_path: Path) -> None:
    fs = v2(
        tmp_path,
        {
            "b/memory.pressure": "some avg10=1.00 avg60=x avg300=0 total=1\n",
            "c/memory.pressure": "",
            "d/memory.pressure": "half avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
        },
    )
    assert fs.pressure("a") == Pressure(None, None)  # no PSI in this kernel
    assert fs.pressure("") == Pressure(None, None)  # no /proc/pressure/memory either
    with pytest.raises(KernelError) as e:
        fs.pressure("b")
    assert e.value.where == f"{tmp_path}/cg/b/memory.pressure:1"
    with pytest.raises(KernelError, match="empty"):
        fs.pressure("c")
    with pytest.raises(KernelError, match="half"):
        fs.pressure("d")


def test_pressure_eopnotsupp_is_absent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fs = v2(tmp_path, {"a/memory.pressure": "x"})

    def unsupported(*a: object, **k: object) -> None:
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    monkeypatch.setattr("builtins.open", unsupported)
    assert fs.pressure("a") == Pressure(None, None)  # psi=0 on the kernel command line


# --- cpuset ----------------------------------------------------------------------------------
def test_cpuset_reads() -> None:
    assert GUEST.cpuset_mems(CAP) == () and GUEST.effective_mems(CAP) == (0, 1)
    assert GUEST.cpuset_mems("") == () and GUEST.effective_mems("") == (0, 1)
    assert HOST.cpuset_mems("") == (0,) and HOST.effective_mems("") == (0,)


def test_cpuset_node_lists(tmp_path: Path) -> None:
    fs = v2(tmp_path, {"a/cpuset.mems": "0-1,3,5-6\n", "b/cpuset.mems": "1-0\n", "c/cpuset.mems": "0,x\n"})
    assert fs.cpuset_mems("a") == (0, 1, 3, 5, 6)
    for bad in ("b", "c"):
        with pytest.raises(KernelError) as e:
            fs.cpuset_mems(bad)
        assert e.value.where == f"{tmp_path}/cg/{bad}/cpuset.mems:1"
    with pytest.raises(UnavailableError):
        fs.effective_mems("a")  # cpuset controller not enabled there
    assert format_nodes([3, 0, 1, 1, 5, 6]) == "0-1,3,5-6" and format_nodes([]) == ""
    for bad_nodes in ([-1], [True], ["1"]):
        with pytest.raises(InputError):
            format_nodes(bad_nodes)  # type: ignore[arg-type]


def test_set_cpuset_mems_v2(tmp_path: Path) -> None:
    root = tmp_path / "guest"
    shutil.copytree(GUEST_CG, root)
    fs = CgroupFS(root)
    fs.set_cpuset_mems(CAP, [1])
    assert (root / CAP / "cpuset.mems").read_text() == "1"
    assert fs.cpuset_mems(CAP) == (1,)
    fs.set_cpuset_mems(CAP, [3, 0, 1])
    assert (root / CAP / "cpuset.mems").read_text() == "0-1,3"
    fs.set_cpuset_mems(CAP, [])
    assert fs.cpuset_mems(CAP) == ()
    with pytest.raises(InputError):
        fs.set_cpuset_mems("", [0])
    with pytest.raises(InputError):
        fs.set_cpuset_mems(CAP, [-1])
    (root / "nocpuset").mkdir()
    with pytest.raises(UnavailableError, match="controller not enabled"):
        fs.set_cpuset_mems("nocpuset", [0])


def test_set_cpuset_mems_v1_uses_the_cpuset_hierarchy(tmp_path: Path) -> None:
    fs = v1(tmp_path)
    fs.set_cpuset_mems("a", [1])
    assert (tmp_path / "cg" / "cpuset" / "a" / "cpuset.mems").read_text() == "1"
    assert fs.cpuset_mems("a") == (1,) and fs.cpuset_mems("") == (0, 1)


def test_writes_map_errno(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fs = v2(tmp_path, {"a/cpuset.mems": ""})

    def fail(code: int) -> object:
        def raiser(*a: object, **k: object) -> None:
            raise OSError(code, errno.errorcode[code])

        return raiser

    monkeypatch.setattr(cgroupfs.os, "open", fail(errno.EACCES))
    with pytest.raises(PermissionDeniedError, match="needs root") as e:
        fs.set_cpuset_mems("a", [0])
    assert e.value.where == f"{tmp_path}/cg/a/cpuset.mems"
    monkeypatch.undo()
    monkeypatch.setattr(cgroupfs.os, "write", fail(errno.EINVAL))
    with pytest.raises(KernelError, match="'7'") as e:
        fs.set_cpuset_mems("a", [7])
    assert e.value.where == f"{tmp_path}/cg/a/cpuset.mems"
    monkeypatch.setattr(cgroupfs.os, "write", fail(errno.ESRCH))
    with pytest.raises(NoSuchProcessError):
        fs.attach("a", 4242)


# --- test / ops helpers ----------------------------------------------------------------------
def test_create_attach_remove(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fs = v2(tmp_path)
    fs.create("a/b")
    assert (tmp_path / "cg" / "a" / "b").is_dir()
    with pytest.raises(InputError, match="exists"):
        fs.create("a/b")
    fs.create("/a/b/", exist_ok=True)
    with pytest.raises(InputError, match="no such cgroup"):
        fs.create("x/y")
    with pytest.raises(InputError):
        fs.create("")
    fs.attach("a", 123)
    assert (tmp_path / "cg" / "a" / "cgroup.procs").read_text() == "123"
    for bad in (0, -1, True, "123"):
        with pytest.raises(InputError):
            fs.attach("a", bad)  # type: ignore[arg-type]
    with pytest.raises(KernelError):
        fs.remove("a")  # not empty
    fs.remove("a/b")
    assert not (tmp_path / "cg" / "a" / "b").exists()
    with pytest.raises(InputError):
        fs.remove("")
    with pytest.raises(InputError):
        fs.remove("a/b")  # gone


def test_enable_controllers(tmp_path: Path) -> None:
    fs = v2(tmp_path, {"a/cgroup.subtree_control": "memory\n", "a/b/cgroup.procs": ""})
    fs.enable_controllers("a/b")
    assert (tmp_path / "cg" / "cgroup.subtree_control").read_text() == "+memory +cpuset"
    assert (tmp_path / "cg" / "a" / "cgroup.subtree_control").read_text() == "+cpuset"
    (tmp_path / "cg" / "cgroup.subtree_control").write_text("cpuset memory\n")
    (tmp_path / "cg" / "a" / "cgroup.subtree_control").write_text("cpuset memory\n")
    fs.enable_controllers("a/b", ["memory"])  # nothing missing: nothing written
    assert (tmp_path / "cg" / "a" / "cgroup.subtree_control").read_text() == "cpuset memory\n"
    fs.enable_controllers("")
    with pytest.raises(InputError):
        fs.enable_controllers("a", ["memory; rm"])
    with pytest.raises(InputError):
        fs.enable_controllers("nope")
    with pytest.raises(UnavailableError, match="subtree_control"):
        v1(tmp_path / "1").enable_controllers("a")


# --- tierctl cgroups -------------------------------------------------------------------------
def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    parser = argparse.ArgumentParser()
    cgroups_cmd.register(parser.add_subparsers())
    args = parser.parse_args(["cgroups", *argv])
    assert args.func(args) == 0
    return capsys.readouterr().out


GUEST_ARGS = ("--cgroup-root", str(GUEST_CG), "--proc-root", str(FIX / "procfs" / "guest"))


def test_cli_text_on_the_guest(capsys: pytest.CaptureFixture[str]) -> None:
    out = cli(capsys, *GUEST_ARGS)
    lines = out.splitlines()
    assert lines[0].split() == ["cgroup", "memory", "N0", "N1", "some", "avg10", "full", "avg10"]
    assert lines[2].split()[:2] == ["/", "-"]  # the v2 root has no memory.current
    assert lines[3].split() == ["/tierctl-cap", "33.7M", "25.1M", "8.0M", "0.00", "0.00"]  # tierctl.fmt
    assert "tierctl-empty" not in out
    out_all = cli(capsys, *GUEST_ARGS, "--all")
    assert out_all.splitlines()[4].split()[:2] == ["/tierctl-empty", "0B"]


def test_cli_json_on_the_guest(capsys: pytest.CaptureFixture[str]) -> None:
    rows = json.loads(cli(capsys, *GUEST_ARGS, "--json", "--all"))
    assert [r["path"] for r in rows] == ["/", "/tierctl-cap", "/tierctl-empty"]
    assert rows[0]["memory_current"] is None
    assert rows[1] == {
        "path": "/tierctl-cap",
        "memory_current": 35315712,
        "node_bytes": {"0": 19951616 + 6352896, "1": 8388608},
        "some_avg10": 0.0,
        "full_avg10": 0.0,
    }


def test_cli_on_the_hybrid_host(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ("--cgroup-root", str(HOST_CG), "--proc-root", str(FIX / "procfs" / "host"), "--json")
    rows = json.loads(cli(capsys, *argv))
    assert [r["path"] for r in rows] == [
        "/",
        "/process_api",
        "/process_api/c334b31a8d8113b8b11f808a6cb5d557",
        f"/{PAPI}",
    ]
    assert rows[0]["some_avg10"] == 0.0 and rows[1]["some_avg10"] is None
    assert [r["memory_current"] for r in rows] == [659202048, 763400192, 232341504, 61820928]
    text = cli(capsys, *argv[:-1])
    assert "N1" not in text and text.splitlines()[3].split()[-2:] == ["-", "-"]


def test_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(InputError, match="not a directory"):
        cli(capsys, "--cgroup-root", str(tmp_path / "nope"))
    with pytest.raises(UnavailableError):
        cli(capsys, "--cgroup-root", str(tmp_path))


# --- in the two-tier guest (run through tests/test_guest_suite.py) ---------------------------
@pytest.mark.vm
def test_vm_cgroup_lifecycle_on_cgroup_v2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:

    fs = CgroupFS()
    assert fs.layout is Layout.UNIFIED and fs.effective_mems("") == (0, 1)
    name = f"tierctl-test-{os.getpid()}"
    fs.create(name)
    ready = tmp_path / "ready"
    child = None
    try:
        fs.enable_controllers(name)
        assert {"memory", "cpuset"} <= set((fs.root / "cgroup.subtree_control").read_text().split())
        fs.set_cpuset_mems(name, [0, 1])
        assert fs.cpuset_mems(name) == (0, 1) and fs.effective_mems(name) == (0, 1)
        with pytest.raises(KernelError):
            fs.set_cpuset_mems(name, [7])  # no node 7: EINVAL
        argv = [sys.executable, str(FIX / "procfs" / "alloc_child.py"), str(ready), "bind1"]
        child = subprocess.Popen(argv, preexec_fn=lambda: fs.attach(name, os.getpid()))
        deadline = time.monotonic() + 60
        while not (ready.exists() and ready.read_text().endswith("\n")):
            assert child.poll() is None and time.monotonic() < deadline, "alloc_child did not start"
            time.sleep(0.05)
        assert fs.pids(name) == [child.pid]
        assert fs.memory_current(name) >= 16 << 20 and fs.memory_max(name) is None
        assert fs.numa_stat(name)["anon"][1] >= 8 << 20  # bytes on node 1
        assert fs.node_memory(name)[1] >= 8 << 20
        assert fs.pressure(name).some is not None and fs.pressure("").full is not None
        with pytest.raises(KernelError, match="busy"):
            fs.remove(name)
        parser = argparse.ArgumentParser()
        cgroups_cmd.register(parser.add_subparsers())
        args = parser.parse_args(["cgroups", "--json"])
        args.func(args)
        rows = {r["path"]: r for r in json.loads(capsys.readouterr().out)}
        assert rows[f"/{name}"]["node_bytes"]["1"] >= 8 << 20
    finally:
        if child is not None:
            child.kill()
            child.wait()
        fs.remove(name)
    assert name not in fs.list()


def test_exists(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    (root / "a" / "b").mkdir(parents=True)
    (root / "cgroup.controllers").write_text("cpuset memory\n")
    fs = CgroupFS(root)
    assert fs.exists("a/b") and fs.exists("/a") and not fs.exists("a/c") and not fs.exists("../x")


def test_cgroup_id_is_the_v2_directory_inode(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    (root / "a").mkdir(parents=True)
    (root / "cgroup.controllers").write_text("cpuset memory\n")
    assert CgroupFS(root).cgroup_id("a") == (root / "a").stat().st_ino


# --- actuators: memory.reclaim and cgroup.kill ------------------------------------------------
def test_reclaim_writes_memory_reclaim(tmp_path: Path) -> None:
    fs = v2(tmp_path, {"a/memory.reclaim": "", "memory.reclaim": ""})
    fs.reclaim("a", 64 << 20)
    assert (tmp_path / "cg" / "a" / "memory.reclaim").read_text() == str(64 << 20)
    fs.reclaim("/a/", 4096, swappiness=0)
    assert (tmp_path / "cg" / "a" / "memory.reclaim").read_text() == "4096 swappiness=0"
    fs.reclaim("", 1 << 20, swappiness=200)  # the root has one: global proactive reclaim
    assert (tmp_path / "cg" / "memory.reclaim").read_text() == f"{1 << 20} swappiness=200"


@pytest.mark.parametrize(
    ("nbytes", "swappiness", "where"),
    [(0, None, "nbytes"), (-1, None, "nbytes"), (True, None, "nbytes"), (1.5, None, "nbytes"),
     (1, -1, "swappiness"), (1, 201, "swappiness"), (1, True, "swappiness"), (1, "max", "swappiness")],
)  # fmt: skip
def test_reclaim_rejects_bad_arguments(
    tmp_path: Path, nbytes: object, swappiness: object, where: str
) -> None:
    fs = v2(tmp_path, {"a/memory.reclaim": ""})
    with pytest.raises(InputError) as e:
        fs.reclaim("a", nbytes, swappiness)  # type: ignore[arg-type]
    assert e.value.where == where
    assert (tmp_path / "cg" / "a" / "memory.reclaim").read_text() == ""


def test_reclaim_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fs = v2(tmp_path, {"a/memory.reclaim": ""})
    f = f"{tmp_path}/cg/a/memory.reclaim"

    def fail(code: int) -> object:
        def raiser(*a: object, **k: object) -> None:
            raise OSError(code, errno.errorcode[code])

        return raiser

    monkeypatch.setattr(cgroupfs.os, "write", fail(errno.EAGAIN))
    with pytest.raises(cgroupfs.ReclaimIncompleteError, match=r"re-read memory\.current") as e:
        fs.reclaim("a", 1 << 30)
    assert e.value.where == f and isinstance(e.value, KernelError)
    monkeypatch.setattr(cgroupfs.os, "write", fail(errno.EINVAL))
    with pytest.raises(KernelError, match="swappiness=") as e:
        fs.reclaim("a", 1, swappiness=10)  # a kernel without the swappiness= key
    assert e.value.where == f
    with pytest.raises(KernelError, match="'1'"):
        fs.reclaim("a", 1)
    monkeypatch.setattr(cgroupfs.os, "write", fail(errno.EPERM))
    with pytest.raises(PermissionDeniedError):
        fs.reclaim("a", 1)
    monkeypatch.undo()
    (tmp_path / "cg" / "b").mkdir()
    with pytest.raises(UnavailableError, match=r"5\.19") as e:
        fs.reclaim("b", 1)  # no memory.reclaim: old kernel or no memory controller
    assert e.value.where == f"{tmp_path}/cg/b/memory.reclaim"
    with pytest.raises(InputError, match="no such cgroup"):
        fs.reclaim("nope", 1)
    with pytest.raises(UnavailableError, match="v1") as e:
        HOST.reclaim(PAPI, 1)
    assert e.value.where == f"{HOST_CG}/memory/{PAPI}/memory.reclaim"


def test_kill_writes_cgroup_kill(tmp_path: Path) -> None:
    fs = v2(tmp_path, {"a/cgroup.kill": "", "a/b/cgroup.kill": "", "proc/self/cgroup": "0::/x\n"})
    fs.kill("a/b")
    assert (tmp_path / "cg" / "a" / "b" / "cgroup.kill").read_text() == "1"
    fs.kill("/a/")
    assert (tmp_path / "cg" / "a" / "cgroup.kill").read_text() == "1"


def test_kill_refusals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fs = v2(tmp_path, {"init.scope/cgroup.kill": "", "s/init.scope/cgroup.kill": "", "me/x/cgroup.kill": ""})
    tree(tmp_path / "proc", {"self/cgroup": "0::/me/x\n"})
    tree(tmp_path / "elsewhere", {"cgroup.kill": ""})
    (tmp_path / "cg" / "link").symlink_to(tmp_path / "elsewhere")
    for path, match in [
        ("", "root"),
        ("/", "root"),
        ("init.scope", "init.scope"),
        ("s/init.scope", "init.scope"),
        ("..", "'..'"),
        ("link", "outside"),
        ("me", "this process runs in"),
        ("me/x", "this process runs in"),
        ("nope", "no such cgroup"),
    ]:
        with pytest.raises(InputError, match=match):
            fs.kill(path)
    assert (tmp_path / "elsewhere" / "cgroup.kill").read_text() == ""
    assert (tmp_path / "cg" / "init.scope" / "cgroup.kill").read_text() == ""
    with pytest.raises(InputError, match="runs in"):
        GUEST.kill(CAP)  # the captured "self" (pid 192) is in /tierctl-cap


def test_kill_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fs = v2(tmp_path, {"a/cgroup.kill": ""})
    (tmp_path / "cg" / "old").mkdir()
    with pytest.raises(UnavailableError, match=r"5\.14") as e:
        fs.kill("old")
    assert e.value.where == f"{tmp_path}/cg/old/cgroup.kill"
    with pytest.raises(UnavailableError, match="v1"):
        HOST.kill(PAPI)
    monkeypatch.setattr(cgroupfs.os, "open", lambda *a, **k: (_ for _ in ()).throw(PermissionError(13, "no")))
    with pytest.raises(PermissionDeniedError) as e:
        fs.kill("a")
    assert e.value.where == f"{tmp_path}/cg/a/cgroup.kill"
