"""ProcFS against real captures (tests/fixtures/procfs/{guest,host}) and tiny synthetic trees."""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tierctl.errors import (
    InputError,
    KernelError,
    NoSuchProcessError,
    PermissionDeniedError,
    UnavailableError,
)
from tierctl.kernel import procfs
from tierctl.kernel.procfs import (
    KPF_ANON,
    KPF_COMPOUND_HEAD,
    KPF_COMPOUND_TAIL,
    KPF_THP,
    TIERING_COUNTERS,
    ProcFS,
    exclusive,
    file_or_shared,
    kpf,
    pfn,
    present,
    soft_dirty,
    swap_offset,
    swap_type,
    swapped,
)

FIX = Path(__file__).parents[1] / "fixtures" / "procfs"
GUEST = ProcFS(FIX / "guest", page_size=4096)
HOST = ProcFS(FIX / "host", page_size=4096)
MIB = 1 << 20


def tree(tmp_path: Path, files: dict[str, str | bytes]) -> ProcFS:
    for rel, content in files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content)
    return ProcFS(tmp_path, page_size=4096)


# --- maps ------------------------------------------------------------------------------------
def test_guest_maps_has_both_8mib_regions() -> None:
    vmas = GUEST.maps("self")
    assert len(vmas) == 58
    by_start = {v.start: v for v in vmas}
    for start in (0x7FEECD600000, 0x7FEECDE00000):
        v = by_start[start]
        assert v.size == 8 * MIB and v.pages(4096) == 2048 and v.pages(2 * MIB) == 4
        assert v.perms == "rw-p" and v.private and v.anonymous and v.path == ""
    assert vmas[0].path == "/usr/bin/python3.11" and vmas[0].inode == 260811 and vmas[0].dev == "00:2a"
    assert vmas[1].offset == 0x1F000 and vmas[1].perms == "r-xp" and not vmas[1].anonymous
    assert [v.path for v in vmas if v.path.startswith("[")] == ["[heap]", "[vvar]", "[vdso]", "[stack]"]
    shared = [v for v in vmas if not v.private]
    assert [v.path for v in shared] == ["/usr/lib/x86_64-linux-gnu/gconv/gconv-modules.cache"]


def test_host_maps_ends_with_vsyscall() -> None:
    vmas = HOST.maps("self")
    assert len(vmas) == 29
    assert vmas[-1].path == "[vsyscall]" and vmas[-1].start == 0xFFFFFFFFFF600000
    merged = next(v for v in vmas if v.start == 0x7FDA86600000)
    assert merged.size == 16 * MIB


def test_maps_path_with_spaces_and_deleted_marker(tmp_path: Path) -> None:
    fs = tree(
        tmp_path, {"5/maps": "7f0000000000-7f0000002000 rw-s 00000000 00:01 1234  /memfd:my buf (deleted)\n"}
    )
    (v,) = fs.maps(5)
    assert v.path == "/memfd:my buf (deleted)" and not v.private and v.pages() == 2


def test_maps_parse_error_names_file_and_line(tmp_path: Path) -> None:
    good = "00400000-00401000 r--p 00000000 00:2a 1 /bin/x\n"
    fs = tree(tmp_path, {"5/maps": good + "zzzz-00402000 r--p 0 0 0\n"})
    with pytest.raises(KernelError) as e:
        fs.maps(5)
    assert e.value.where == f"{tmp_path}/5/maps:2"


def test_maps_empty_for_kernel_threads(tmp_path: Path) -> None:
    assert tree(tmp_path, {"2/maps": ""}).maps(2) == []


def test_vma_pages_rejects_bad_page_size() -> None:
    with pytest.raises(InputError):
        GUEST.maps("self")[0].pages(0)


# --- numa_maps -------------------------------------------------------------------------------
def test_guest_numa_maps_bound_region_is_on_node_1() -> None:
    nm = {m.start: m for m in GUEST.numa_maps("self")}
    b = nm[0x7FEECD600000]
    assert b.policy == "bind:1" and b.pages_per_node == {1: 2048} and b.kernelpagesize_kb == 4
    assert b.anon == 2048 and b.dirty == 2048 and b.active == 0 and b.file is None
    assert b.bytes_per_node() == {1: 8 * MIB} and b.pages == 2048
    a = nm[0x7FEECDE00000]
    assert a.policy == "default" and a.pages_per_node == {0: 2048}


def test_guest_numa_maps_tags_files_and_empty_mappings() -> None:
    nm = GUEST.numa_maps("self")
    heap = next(m for m in nm if "heap" in m.tags)
    assert heap.start == 0x19ED0000 and heap.anon == 2211
    assert next(m for m in nm if "stack" in m.tags).pages_per_node == {0: 15}
    exe = nm[4]
    assert exe.file == "/usr/bin/python3.11" and exe.anon == 290 and exe.mapped == 319 and exe.mapmax == 2
    vvar = next(m for m in nm if m.start == 0x7FEECEDE5000)
    assert vvar.pages_per_node == {} and vvar.kernelpagesize_kb is None and vvar.bytes_per_node() == {}


def test_numa_maps_lines_match_maps_except_vsyscall() -> None:
    for fs in (GUEST, HOST):
        vmas = [v.start for v in fs.maps("self") if v.path != "[vsyscall]"]
        assert [m.start for m in fs.numa_maps("self")] == vmas


def test_host_numa_maps_merged_region_and_active_count() -> None:
    nm = {m.start: m for m in HOST.numa_maps("self")}
    assert nm[0x7FDA86600000].pages_per_node == {0: 4096}
    assert next(m for m in nm.values() if "stack" in m.tags).active == 1


def test_numa_maps_policies_hugetlb_and_unknown_counters(tmp_path: Path) -> None:
    lines = [
        "7f0000000000 prefer (many):0-1 anon=3 dirty=3 N0=1 N1=2 kernelpagesize_kB=4",
        "7f0000200000 weighted interleave:0-1 anon=2 N0=1 N1=1 kernelpagesize_kB=4",
        "7f0000400000 bind=static:1 file=/dev/hugepages/x huge dirty=1 N1=1 kernelpagesize_kB=2048",
        "7f0000600000 interleave:0-1 anon=4 swapcache=1 writeback=2 newthing=7 N0=4 kernelpagesize_kB=4",
        "7f0000800000 local",
    ]
    nm = tree(tmp_path, {"9/numa_maps": "\n".join(lines) + "\n"}).numa_maps(9)
    assert [m.policy for m in nm] == [
        "prefer (many):0-1",
        "weighted interleave:0-1",
        "bind=static:1",
        "interleave:0-1",
        "local",
    ]
    assert nm[0].pages_per_node == {0: 1, 1: 2} and nm[0].active == 3  # no active= means all active
    assert nm[2].tags == ("huge",) and nm[2].file == "/dev/hugepages/x"
    assert nm[2].bytes_per_node() == {1: 2 * MIB}  # N1 counts 2 MiB pages
    assert nm[3].swapcache == 1 and nm[3].writeback == 2 and nm[3].other == (("newthing", 7),)
    assert nm[4].pages == 0 and nm[4].kernelpagesize_kb is None


@pytest.mark.parametrize(
    "line",
    [
        "7f0000000000 default anon=x N0=1 kernelpagesize_kB=4",
        "7f0000000000 default anon=1 N0=1",  # pages without a page size
        "nothex default",
        "",
    ],
)
def test_numa_maps_parse_error_names_line(tmp_path: Path, line: str) -> None:
    text = "7f0000000000 default\n" + line + "\n"
    fs = tree(tmp_path, {"9/numa_maps": text})
    if not line:
        assert len(fs.numa_maps(9)) == 1  # blank lines are skipped
        return
    with pytest.raises(KernelError) as e:
        fs.numa_maps(9)
    assert e.value.where == f"{tmp_path}/9/numa_maps:2"


def test_numa_maps_empty_and_absent(tmp_path: Path) -> None:
    fs = tree(tmp_path, {"9/numa_maps": "", "10/maps": ""})
    assert fs.numa_maps(9) == []
    with pytest.raises(UnavailableError, match="CONFIG_NUMA"):
        fs.numa_maps(10)  # the process exists, the kernel has no numa_maps


# --- small per-process files -----------------------------------------------------------------
def test_comm_uid_cgroup_from_captures() -> None:
    assert GUEST.comm("self") == "python3" and GUEST.uid("self") == 0
    assert GUEST.cgroup_path("self") == "tierctl-cap"
    assert HOST.comm("self") == "python3" and HOST.uid("self") == 0
    assert HOST.cgroup_path("self") == "process_api/60e8cdcd427b581812dcc3ad6de3c015"


def test_cgroup_path_variants(tmp_path: Path) -> None:
    fs = tree(
        tmp_path,
        {
            "1/cgroup": "0::/\n",
            "2/cgroup": "0::/system.slice/a:b.service\n",
            "3/cgroup": "2:cpu:/x\n",
            "4/cgroup": "2:cpu:/x\nnonsense\n",
            "5/cgroup": "",
            "6/cgroup": "3:memory,hugetlb:/m/\n0::/u\n",
        },
    )
    assert fs.cgroup_path(1) == ""
    assert fs.cgroup_path(2) == "system.slice/a:b.service"
    assert fs.cgroup_path(6) == "m"  # the v1 memory line wins over the v2 line
    with pytest.raises(UnavailableError):
        fs.cgroup_path(3)
    with pytest.raises(KernelError) as e:
        fs.cgroup_path(4)
    assert e.value.where == f"{tmp_path}/4/cgroup:2"
    with pytest.raises(UnavailableError):
        fs.cgroup_path(5)


def test_comm_and_uid_errors(tmp_path: Path) -> None:
    fs = tree(tmp_path, {"7/comm": "\n", "7/status": "Name:\tx\nUid:\tx\n", "8/status": "Name:\tx\n"})
    with pytest.raises(KernelError, match="empty"):
        fs.comm(7)
    with pytest.raises(KernelError) as e:
        fs.uid(7)
    assert e.value.where == f"{tmp_path}/7/status:2"
    with pytest.raises(KernelError, match="Uid"):
        fs.uid(8)


def test_pids_and_exists(tmp_path: Path) -> None:
    fs = tree(tmp_path, {"1/comm": "a\n", "42/comm": "b\n", "7/comm": "c\n", "self/comm": "d\n", "sys/x": ""})
    assert fs.pids() == [1, 7, 42]
    assert fs.exists(42) and fs.exists("self") and not fs.exists(43)
    with pytest.raises(UnavailableError):
        ProcFS(tmp_path / "nope").pids()


def test_vanished_pid_is_no_such_process(tmp_path: Path) -> None:
    fs = tree(tmp_path, {"1/comm": "init\n"})
    calls = [
        lambda: fs.maps(4242),
        lambda: fs.numa_maps(4242),
        lambda: fs.comm(4242),
        lambda: fs.uid(4242),
        lambda: fs.cgroup_path(4242),
        lambda: fs.pagemap(4242, 0, 1),
    ]
    for call in calls:
        with pytest.raises(NoSuchProcessError) as e:
            call()
        assert e.value.where == f"{tmp_path}/4242"
    assert not fs.exists(4242)


def test_esrch_while_reading_is_no_such_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fs = tree(tmp_path, {"5/maps": ""})

    def gone(*a: object, **k: object) -> None:
        raise ProcessLookupError(errno.ESRCH, "No such process")

    monkeypatch.setattr("builtins.open", gone)
    with pytest.raises(NoSuchProcessError):
        fs.maps(5)


def test_permission_denied_names_the_privilege(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fs = tree(tmp_path, {"5/maps": "", "5/pagemap": b""})

    def denied(*a: object, **k: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr("builtins.open", denied)
    with pytest.raises(PermissionDeniedError, match="ptrace") as e:
        fs.maps(5)
    assert e.value.where == f"{tmp_path}/5/maps"
    monkeypatch.setattr(procfs.os, "open", denied)
    with pytest.raises(PermissionDeniedError, match="ptrace"):
        fs.pagemap(5, 0, 1)


@pytest.mark.parametrize("pid", [0, -3, True, "abc", 1.5, "12"])
def test_bad_pid_is_input_error(pid: object) -> None:
    with pytest.raises(InputError) as e:
        GUEST.maps(pid)  # type: ignore[arg-type]
    assert e.value.where == "pid"


# --- pagemap ---------------------------------------------------------------------------------
PRESENT, SWAPPED, FILE, EXCL, SOFT = 1 << 63, 1 << 62, 1 << 61, 1 << 56, 1 << 55
ENTRIES = [
    PRESENT | EXCL | 0x1234,  # private page, frame 0x1234
    SWAPPED | (0x55 << 5) | 3,  # swapped: type 3, offset 0x55
    0,  # not mapped / not touched
    PRESENT | FILE | SOFT | 7,  # file page, soft-dirty
    PRESENT,  # present, frame hidden (no CAP_SYS_ADMIN)
]


def pagemap_file(base: int, entries: list[int], total: int = 32) -> bytes:
    words = np.zeros(total, dtype="<u8")
    words[base : base + len(entries)] = np.array(entries, dtype=np.uint64)
    return words.tobytes()


def test_pagemap_reads_entries_at_the_address(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fs = tree(tmp_path, {"123/pagemap": pagemap_file(16, ENTRIES)})
    preads: list[tuple[int, int]] = []
    real = os.pread

    def counting(fd: int, n: int, off: int) -> bytes:
        preads.append((n, off))
        return real(fd, n, off)

    monkeypatch.setattr(procfs.os, "pread", counting)
    e = fs.pagemap(123, 16 * 4096, 5)
    assert preads == [(40, 128)]  # one pread: 8 bytes per page at (addr / page) * 8
    assert e.dtype == np.uint64 and e.tolist() == ENTRIES
    assert fs.pagemap(123, 0, 0).shape == (0,)


def test_pagemap_decoders() -> None:
    e = np.array(ENTRIES, dtype=np.uint64)
    assert present(e).tolist() == [True, False, False, True, True]
    assert swapped(e).tolist() == [False, True, False, False, False]
    assert pfn(e).tolist() == [0x1234, 0, 0, 7, 0]
    assert swap_type(e).tolist() == [0, 3, 0, 0, 0]
    assert swap_offset(e).tolist() == [0, 0x55, 0, 0, 0]
    assert exclusive(e).tolist() == [True, False, False, False, False]
    assert file_or_shared(e).tolist() == [False, False, False, True, False]
    assert soft_dirty(e).tolist() == [False, False, False, True, False]
    assert pfn(np.array([PRESENT | ((1 << 55) - 1)], dtype=np.uint64)).tolist() == [(1 << 55) - 1]


def test_pagemap_bad_arguments(tmp_path: Path) -> None:
    fs = tree(tmp_path, {"123/pagemap": pagemap_file(0, [])})
    for addr, n in ((4095, 1), (-4096, 1), (0, -1), (0, 1.5)):
        with pytest.raises(InputError):
            fs.pagemap(123, addr, n)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="beyond the address space"):
        fs.pagemap(123, 30 * 4096, 4)  # the file (address space) ends at page 32
    with pytest.raises(UnavailableError, match="CONFIG_PROC_PAGE_MONITOR"):
        tree(tmp_path, {"124/maps": ""}).pagemap(124, 0, 1)


def test_pagemap_of_this_process_sees_a_touched_page() -> None:
    m = mmap.mmap(-1, 4 * 4096, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        m[4096] = 1
        buf = ctypes.c_char.from_buffer(m)
        addr = ctypes.addressof(buf)
        del buf
        e = ProcFS(page_size=mmap.PAGESIZE).pagemap(os.getpid(), addr, 4)
        assert present(e).tolist() == [False, True, False, False]
        assert exclusive(e)[1] and not file_or_shared(e)[1]
    finally:
        m.close()


# --- kpageflags ------------------------------------------------------------------------------
def flags_file(n: int = 300) -> tuple[bytes, np.ndarray]:
    frames = np.arange(n, dtype=np.uint64)
    words = frames | np.where(frames % 2 == 1, np.uint64(1 << KPF_THP), np.uint64(1 << KPF_ANON))
    return words.astype("<u8").tobytes(), words


def test_kpageflags_batches_contiguous_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data, words = flags_file()
    fs = tree(tmp_path, {"kpageflags": data})
    preads: list[tuple[int, int]] = []
    real = os.pread

    def counting(fd: int, n: int, off: int) -> bytes:
        preads.append((n, off))
        return real(fd, n, off)

    monkeypatch.setattr(procfs.os, "pread", counting)
    pfns = np.array([5, 3, 4, 100, 5, 250, 0])
    out = fs.kpageflags(pfns)
    assert out.dtype == np.uint64 and out.tolist() == words[pfns].tolist()
    assert preads == [(8 * 251, 0)]  # frames less than KPAGEFLAGS_GAP apart: one read of 0..250
    preads.clear()
    monkeypatch.setattr(procfs, "KPAGEFLAGS_GAP", 2)  # only frames 1 apart join: runs of consecutive frames
    assert fs.kpageflags(pfns).tolist() == words[pfns].tolist()
    assert sorted(preads, key=lambda p: p[1]) == [(8, 0), (24, 24), (8, 800), (8, 2000)]  # 4 runs
    assert kpf(out, KPF_THP).tolist() == [True, True, False, False, True, False, False]
    preads.clear()
    monkeypatch.setattr(procfs, "KPAGEFLAGS_MAX_RUN", 2)
    assert fs.kpageflags(np.arange(10, 15, dtype=np.uint64)).tolist() == words[10:15].tolist()
    assert [n for n, _ in preads] == [16, 16, 8]


def test_kpageflags_compound_bits() -> None:
    head = (1 << KPF_COMPOUND_HEAD) | (1 << KPF_THP)
    tail = (1 << KPF_COMPOUND_TAIL) | (1 << KPF_THP)
    f = np.array([head, tail, 0], dtype=np.uint64)
    assert kpf(f, KPF_COMPOUND_HEAD).tolist() == [True, False, False]
    assert kpf(f, KPF_COMPOUND_TAIL).tolist() == [False, True, False]


def test_kpageflags_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fs = tree(tmp_path, {"kpageflags": flags_file(10)[0]})
    assert fs.kpageflags(np.array([], dtype=np.uint64)).shape == (0,)
    with pytest.raises(InputError, match="beyond physical memory"):
        fs.kpageflags(np.array([8, 9, 10]))
    for bad in (np.array([-1, 2]), np.zeros((2, 2), dtype=np.uint64), np.array([0.5])):
        with pytest.raises(InputError):
            fs.kpageflags(bad)
    with pytest.raises(UnavailableError):
        ProcFS(tmp_path / "empty").kpageflags(np.array([1]))

    def denied(*a: object, **k: object) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(procfs.os, "open", denied)
    with pytest.raises(PermissionDeniedError, match="root") as e:
        fs.kpageflags(np.array([1]))
    assert e.value.where == f"{tmp_path}/kpageflags"


# --- vmstat ----------------------------------------------------------------------------------
def test_vmstat_and_tiering_counters_from_captures() -> None:
    guest = GUEST.vmstat()
    assert len(guest) == 185 and guest["thp_fault_alloc"] == 15 and guest["numa_other"] == 1687
    tc = GUEST.tiering_counters()
    assert list(tc) == [
        c for c in TIERING_COUNTERS if c not in ("pgpromote_candidate_nrl", "pgdemote_proactive")
    ]
    assert set(tc.values()) == {0}
    assert list(HOST.tiering_counters()) == list(TIERING_COUNTERS)  # 6.18 has the newer two too


def test_vmstat_errors(tmp_path: Path) -> None:
    with pytest.raises(KernelError) as e:
        tree(tmp_path / "a", {"vmstat": "nr_free_pages 10\npgpromote_success x\n"}).vmstat()
    assert e.value.where == f"{tmp_path}/a/vmstat:2"
    with pytest.raises(KernelError, match="empty"):
        tree(tmp_path / "b", {"vmstat": ""}).vmstat()
    with pytest.raises(UnavailableError):
        tree(tmp_path / "c", {}).vmstat()
    assert tree(tmp_path / "d", {"vmstat": "nr_free_pages 10\n"}).tiering_counters() == {}


def test_page_size_must_be_a_power_of_two() -> None:
    with pytest.raises(InputError):
        ProcFS(FIX / "guest", page_size=3000)


# --- in the two-tier guest (run through tests/test_guest_suite.py) ---------------------------
@pytest.mark.vm
def test_vm_bound_region_in_numa_maps_pagemap_and_kpageflags(tmp_path: Path) -> None:

    ready = tmp_path / "ready"
    child = subprocess.Popen([sys.executable, str(FIX / "alloc_child.py"), str(ready), "bind1"])
    try:
        deadline = time.monotonic() + 60
        while not (ready.exists() and ready.read_text().endswith("\n")):
            assert child.poll() is None and time.monotonic() < deadline, "alloc_child did not start"
            time.sleep(0.05)
        pid, a_addr, b_addr = (int(x, 16) if i else int(x) for i, x in enumerate(ready.read_text().split()))
        fs = ProcFS()
        nm = {m.start: m for m in fs.numa_maps(pid)}
        assert nm[b_addr].policy == "bind:1" and nm[b_addr].pages_per_node == {1: 2048}
        assert nm[a_addr].pages_per_node.get(1, 0) == 0
        vma = next(v for v in fs.maps(pid) if v.start == b_addr)
        e = fs.pagemap(pid, b_addr, vma.pages(fs.page_size))
        assert present(e).all() and not file_or_shared(e).any() and (pfn(e) > 0).all()
        flags = fs.kpageflags(pfn(e))
        assert kpf(flags, KPF_ANON).all()
        thp = kpf(flags, KPF_THP)
        assert (~thp | kpf(flags, KPF_COMPOUND_HEAD) | kpf(flags, KPF_COMPOUND_TAIL)).all()
        assert fs.cgroup_path(pid) == fs.cgroup_path("self")
        assert "numa_pages_migrated" in fs.tiering_counters()
    finally:
        child.kill()
        child.wait()
    with pytest.raises(NoSuchProcessError):
        ProcFS().maps(child.pid)


def test_pagemap_scan_on_a_captured_tree_is_unsupported(tmp_path: Path) -> None:
    from tierctl.kernel.procfs import PagemapScanUnsupportedError

    (tmp_path / "7").mkdir()
    (tmp_path / "7" / "pagemap").write_bytes(b"\0" * 64)
    with pytest.raises(PagemapScanUnsupportedError) as e:
        ProcFS(tmp_path, page_size=4096).pagemap_scan(7, [(0, 4096 * 8)], huge_only=True)
    assert e.value.where == str(tmp_path / "7" / "pagemap")


def test_pagemap_scan_finds_our_own_present_pages() -> None:
    """On this kernel (6.7+ has PAGEMAP_SCAN): 16 written pages of a fresh private mapping are
    reported present, a never-touched page after them is not."""
    from tierctl.kernel.procfs import PagemapScanUnsupportedError

    ps = mmap.PAGESIZE
    m = mmap.mmap(-1, 32 * ps, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        for i in range(16):
            m[i * ps] = 1
        buf = ctypes.c_char.from_buffer(m)
        addr = ctypes.addressof(buf)
        del buf
        try:
            starts, ends = ProcFS().pagemap_scan("self", [(addr, addr + 32 * ps)], huge_only=False)
        except PagemapScanUnsupportedError as e:
            pytest.skip(f"this kernel has no PAGEMAP_SCAN: {e}")
        covered = sum(
            int(min(e, addr + 32 * ps)) - int(max(s, addr)) for s, e in zip(starts, ends, strict=True)
        )
        assert covered == 16 * ps
    finally:
        m.close()


def test_soft_dirty_probe_only_on_the_live_procfs(tmp_path: Path) -> None:
    assert ProcFS(tmp_path, page_size=4096).reports_soft_dirty() is None
    assert isinstance(ProcFS().reports_soft_dirty(), bool)
