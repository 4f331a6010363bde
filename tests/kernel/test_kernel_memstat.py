"""MemStat (memory by kind, memory events, memory by node) and ProcFS.meminfo against captures of the
guest under pressure (cgroup v2), the development host (hybrid v1) and tiny trees."""

from __future__ import annotations

from pathlib import Path

import pytest

from tierctl.errors import InputError, KernelError, PermissionDeniedError, UnavailableError
from tierctl.kernel.cgroupfs import CgroupFS
from tierctl.kernel.memstat import MemoryByKind, MemoryEvents, MemStat
from tierctl.kernel.procfs import ProcFS

FIX = Path(__file__).parents[1] / "fixtures"
PRESS_CG = FIX / "cgroupfs" / "guest-v2-pressure"
PRESS_PROC = FIX / "procfs" / "guest-pressure"
HOST_CG = FIX / "cgroupfs" / "host-hybrid-pressure"
GUEST = MemStat(CgroupFS(PRESS_CG, proc_root=PRESS_PROC, page_size=4096))
HOST = MemStat(CgroupFS(HOST_CG, proc_root=PRESS_PROC, page_size=4096))
PRESS = "tierctl-press"
MINE = "process_api/23c2eec628634bcff92ae0eac622332c"
KiB = 1024


def tree(root: Path, files: dict[str, str]) -> Path:
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content)
    return root


def v2(tmp_path: Path, files: dict[str, str]) -> MemStat:
    root = tree(tmp_path / "cg", {"cgroup.controllers": "memory\n", **files})
    return MemStat(CgroupFS(root, proc_root=tmp_path / "proc", page_size=4096))


def v1(tmp_path: Path, files: dict[str, str]) -> MemStat:
    base = {
        "memory/memory.usage_in_bytes": "1\n",
        "unified/cgroup.controllers": "",
        "memory/a/memory.stat": "",
    }
    root = tree(tmp_path / "cg", {**base, **files})
    return MemStat(CgroupFS(root, proc_root=tmp_path / "proc", page_size=4096))


# --- memory by kind --------------------------------------------------------------------------
def test_memory_by_kind_v2_capture() -> None:
    k = GUEST.memory_by_kind(PRESS)
    assert k == MemoryByKind(
        anon=6615040,
        file=52211712,
        shmem=41943040,  # the 40 MiB shared mapping: in "file", not droppable without swap
        kernel=8183808,  # the kernel's own "kernel" row
        slab=8006800,
        sock=0,
        zswap=0,
        swap=0,  # memory.swap.current
        dirty=0,
        writeback=0,
        refault_anon=0,
        refault_file=243885,
    )
    assert k.refaults == 243885
    root = GUEST.memory_by_kind("")
    assert root.swap is None and root.anon == 20844544  # no memory.swap.current on the root


def test_memory_by_kind_v1_capture() -> None:
    k = HOST.memory_by_kind(MINE)  # total_* rows (hierarchical)
    assert (k.anon, k.file, k.shmem, k.dirty, k.writeback) == (2039808, 172191744, 0, 339968, 0)
    assert k.kernel == 70656000 and k.sock == 0 and k.swap == 0  # memory.kmem.*, total_swap
    assert k.slab is None and k.zswap is None
    assert (k.refault_anon, k.refault_file) == (0, 102302)


def test_memory_by_kind_older_kernels(tmp_path: Path) -> None:
    ms = v2(
        tmp_path,
        {
            # 5.8-like: no "kernel" row, slab split, one workingset_refault, no swap file
            "a/memory.stat": "anon 10\nfile 20\nkernel_stack 1\npagetables 2\npercpu 3\nsock 4\n"
            "slab_reclaimable 5\nslab_unreclaimable 6\nworkingset_refault 7\n",
        },
    )
    k = ms.memory_by_kind("a")
    assert (k.kernel, k.slab, k.sock, k.refault_file, k.refault_anon) == (17, 11, 4, 7, None)
    assert k.refaults == 7 and k.shmem is None and k.swap is None and k.zswap is None
    bare = v2(tmp_path / "2", {"a/memory.stat": "anon 1\nfile 2\n"}).memory_by_kind("a")
    assert bare.kernel is None and bare.refaults is None
    old_v1 = v1(tmp_path / "3", {"memory/a/memory.stat": "cache 5\nrss 6\n"}).memory_by_kind("a")
    assert (old_v1.anon, old_v1.file, old_v1.kernel, old_v1.swap, old_v1.refaults) == (6, 5, None, None, None)


def test_memory_by_kind_errors(tmp_path: Path) -> None:
    ms = v2(tmp_path, {"a/memory.stat": "file 1\n", "b/memory.stat": "anon x\n", "c/cgroup.procs": ""})
    with pytest.raises(KernelError, match="'anon'") as e:
        ms.memory_by_kind("a")
    assert e.value.where == f"{tmp_path}/cg/a/memory.stat"
    with pytest.raises(KernelError) as e:
        ms.memory_by_kind("b")
    assert e.value.where == f"{tmp_path}/cg/b/memory.stat:1"
    with pytest.raises(UnavailableError) as e:
        ms.memory_by_kind("c")  # no memory controller here
    assert e.value.where == f"{tmp_path}/cg/c/memory.stat"
    with pytest.raises(InputError, match="no such cgroup"):
        ms.memory_by_kind("nope")
    bad_swap = v2(tmp_path / "2", {"a/memory.stat": "anon 1\nfile 2\n", "a/memory.swap.current": "lots\n"})
    with pytest.raises(KernelError) as e:
        bad_swap.memory_by_kind("a")
    assert e.value.where == f"{tmp_path}/2/cg/a/memory.swap.current:1"
    ms1 = v1(tmp_path / "3", {"memory/a/memory.stat": "cache 1\n"})
    with pytest.raises(KernelError, match="rss") as e:
        ms1.memory_by_kind("a")
    assert e.value.where == f"{tmp_path}/3/cg/memory/a/memory.stat"


def test_memory_by_kind_permission(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ms = v2(tmp_path, {"a/memory.stat": "anon 1\nfile 2\n"})

    def denied(*a: object, **k: object) -> None:
        raise PermissionError(13, "denied")

    monkeypatch.setattr("builtins.open", denied)
    with pytest.raises(PermissionDeniedError) as e:
        ms.memory_by_kind("a")
    assert e.value.where == f"{tmp_path}/cg/a/memory.stat"


# --- memory events ---------------------------------------------------------------------------
def test_memory_events_v2_captures() -> None:
    assert GUEST.memory_events(PRESS) == MemoryEvents(0, 0, 8713, 0, 0, 0)
    assert GUEST.memory_events(PRESS, local=True) == MemoryEvents(0, 0, 8719, 0, 0, 0, local=True)
    oom = GUEST.memory_events("tierctl-oom")
    assert (oom.max, oom.oom, oom.oom_kill, oom.oom_group_kill, oom.under_oom) == (36, 1, 1, 0, None)


def test_memory_events_v1_oom_control() -> None:
    ev = HOST.memory_events(MINE)
    assert ev == MemoryEvents(None, None, None, None, 0, None, under_oom=False)
    assert HOST.memory_events("").under_oom is False


def test_memory_events_errors(tmp_path: Path) -> None:
    ms = v2(
        tmp_path,
        {
            "a/memory.events": "low 0\nhigh 0\n",
            "b/memory.events": "max 1 2\n",
            "c/memory.events": "",
            "d/memory.events": "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",  # pre-5.17: no oom_group_kill
            "e/cgroup.procs": "",
        },
    )
    with pytest.raises(KernelError, match="max, oom, oom_kill") as e:
        ms.memory_events("a")
    assert e.value.where == f"{tmp_path}/cg/a/memory.events"
    with pytest.raises(KernelError) as e:
        ms.memory_events("b")
    assert e.value.where == f"{tmp_path}/cg/b/memory.events:1"
    with pytest.raises(KernelError, match="empty"):
        ms.memory_events("c")
    assert ms.memory_events("d").oom_group_kill is None
    with pytest.raises(UnavailableError) as e:
        ms.memory_events("d", local=True)  # memory.events.local: 5.2+
    assert e.value.where == f"{tmp_path}/cg/d/memory.events.local"
    with pytest.raises(UnavailableError):
        ms.memory_events("")  # the v2 root has no memory.events
    ms1 = v1(tmp_path / "2", {"memory/b/memory.oom_control": "oom_kill_disable 0\n"})
    with pytest.raises(UnavailableError) as e:
        ms1.memory_events("a")
    assert e.value.where == f"{tmp_path}/2/cg/memory/a/memory.oom_control"
    with pytest.raises(UnavailableError, match=r"memory\.events\.local"):
        ms1.memory_events("a", local=True)
    with pytest.raises(KernelError, match="under_oom"):
        ms1.memory_events("b")
    old = v1(tmp_path / "3", {"memory/a/memory.oom_control": "oom_kill_disable 0\nunder_oom 1\n"})
    assert old.memory_events("a") == MemoryEvents(None, None, None, None, None, None, under_oom=True)


# --- memory by node --------------------------------------------------------------------------
def test_memory_by_node() -> None:
    nodes = GUEST.memory_by_node(PRESS)
    assert sorted(nodes) == [0, 1]
    assert nodes[0]["anon"] == 6615040 and nodes[0]["shmem"] == 41943040 and nodes[1]["file"] == 0
    assert not any(k.startswith(("workingset_", "pgdemote_", "pgpromote_")) for k in nodes[0])
    host = HOST.memory_by_node(MINE)  # v1 hierarchical_* rows, pages -> bytes
    assert set(host) == {0} and set(host[0]) == {"total", "file", "anon", "unevictable"}
    assert host[0]["anon"] % 4096 == 0


# --- /proc/meminfo ---------------------------------------------------------------------------
def test_meminfo_capture() -> None:
    m = ProcFS(PRESS_PROC).meminfo()
    assert (m.total, m.available, m.swap_total, m.swap_free) == (2022112 * KiB, 1779172 * KiB, 0, 0)
    assert m.used == (2022112 - 1779172) * KiB
    assert m.fields["Cached"] == 79804 * KiB and m.fields["HugePages_Total"] == 0  # no unit: as read


def test_meminfo_errors(tmp_path: Path) -> None:
    (tmp_path / "meminfo").write_text("MemTotal: 10 kB\nMemFree: 5 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n")
    with pytest.raises(KernelError, match="MemAvailable") as e:
        ProcFS(tmp_path).meminfo()  # before 3.14
    assert e.value.where == f"{tmp_path}/meminfo"
    for bad in ("MemTotal 10 kB\n", "MemTotal: ten kB\n", "MemTotal: 10 MB\n", "MemTotal:\n"):
        (tmp_path / "meminfo").write_text("MemFree: 1 kB\n" + bad)
        with pytest.raises(KernelError) as e:
            ProcFS(tmp_path).meminfo()
        assert e.value.where == f"{tmp_path}/meminfo:2"
    with pytest.raises(UnavailableError):
        ProcFS(tmp_path / "absent").meminfo()
