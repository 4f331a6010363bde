"""The DAMON and idle-page samplers against fake /proc, cgroup, DAMON and idle-bitmap trees."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures.damon.fake_damon import FakeDamonSysfs, make_admin_tree
from tierctl.errors import PermissionDeniedError, UnavailableError
from tierctl.kernel.damon import REGION_DTYPE, DamonSession, DamonSysfs, KdamondSpec
from tierctl.samplers.base import RAW_SAMPLE_DTYPE, Targets
from tierctl.samplers.bpf_layout import SampleFlag
from tierctl.samplers.damon import DamonSampler, clip_regions, expand_pieces
from tierctl.samplers.idle import IDLE_BITMAP, SAMPLE_IDLE, SAMPLE_SOFT_DIRTY, SAMPLE_WRITE, IdlePageSampler
from tierctl.samplers.registry import make_sampler
from tierctl.samplers.targets import TargetResolver

SAMPLE_DAMON = int(SampleFlag.DAMON)

PAGE = 4096
PRESENT = np.uint64(1 << 63)
SOFT_DIRTY = np.uint64(1 << 55)
FIXTURE = Path(__file__).parents[1] / "fixtures" / "damon" / "guest-6.12-vaddr"


# -- fake trees ---------------------------------------------------------------------------------
def add_process(
    proc: Path, pid: int, vmas: list[tuple[int, int, str]], cgroup: str = "/work/app", rss_pages: int = 8192
) -> Path:
    d = proc / str(pid)
    d.mkdir(parents=True, exist_ok=True)
    lines = []
    for start, end, path in vmas:
        inode = "0" if not path.startswith("/") else "1234"
        lines.append(f"{start:x}-{end:x} rw-p 00000000 00:00 {inode}".ljust(73) + path)
    (d / "maps").write_text("\n".join(lines) + "\n")
    (d / "cgroup").write_text(f"0::{cgroup}\n")
    (d / "pagemap").write_bytes(b"")
    (d / "clear_refs").write_text("")
    (d / "statm").write_text(f"{rss_pages * 2} {rss_pages} 0 1 0 {rss_pages} 0\n")
    return d


def set_pagemap(proc: Path, pid: int, first_vpn: int, entries: np.ndarray) -> None:
    with open(proc / str(pid) / "pagemap", "r+b") as fh:
        fh.seek(first_vpn * 8)
        fh.write(np.asarray(entries, dtype="<u8").tobytes())


def make_cgroups(root: Path, *paths: str) -> dict[str, int]:
    (root).mkdir(parents=True, exist_ok=True)
    (root / "cgroup.controllers").write_text("cpuset memory\n")
    ids = {}
    for p in paths:
        d = root / p.strip("/")
        d.mkdir(parents=True, exist_ok=True)
        ids[p] = d.stat().st_ino
    return ids


@pytest.fixture
def trees(tmp_path: Path) -> dict[str, Path]:
    t = {k: tmp_path / k for k in ("proc", "cgroup", "admin", "sys")}
    t["proc"].mkdir()
    make_admin_tree(t["admin"])
    return t


# -- TargetResolver --------------------------------------------------------------------------------
def test_resolver_cgroup_ids_and_pids(trees) -> None:
    ids = make_cgroups(trees["cgroup"], "/work/app", "/other")
    add_process(trees["proc"], 10, [], "/work/app")
    add_process(trees["proc"], 11, [], "/")
    (trees["proc"] / "12").mkdir()
    (trees["proc"] / "12" / "cgroup").write_text("12:memory:/x\n1:name=systemd:/x\n")  # v1 only
    (trees["cgroup"] / "work" / "app" / "cgroup.procs").write_text("10\n13\n")
    r = TargetResolver(trees["proc"], trees["cgroup"])
    assert r.cgroup_id(10) == ids["/work/app"]
    assert r.cgroup_id(11) == trees["cgroup"].stat().st_ino
    assert r.cgroup_id(12) == 0 and r.cgroup_id(99) == 0
    assert r.pids(Targets(pids=(11,), cgroup_ids=(ids["/work/app"],))) == [10, 11, 13]


def test_resolver_on_a_hybrid_host_uses_the_unified_mount(tmp_path: Path) -> None:
    cg = tmp_path / "cgroup"
    (cg / "memory").mkdir(parents=True)  # v1 controllers beside the v2 mount
    (cg / "unified" / "a").mkdir(parents=True)
    (cg / "unified" / "cgroup.procs").write_text("")
    proc = tmp_path / "proc"
    add_process(proc, 5, [], "/a")
    r = TargetResolver(proc, cg)
    assert r.v2_root() == cg / "unified"
    assert r.cgroup_id(5) == (cg / "unified" / "a").stat().st_ino


# -- DAMON: pure helpers -----------------------------------------------------------------------------
def regions(*rows: tuple[int, int, int, int]) -> np.ndarray:
    return np.array(list(rows), dtype=REGION_DTYPE)


def test_clip_regions_to_mappings() -> None:
    r = regions((0x1000, 0x5000, 3, 1), (0x5000, 0x9000, 0, 1), (0x9000, 0x20000, 7, 2))
    vs, ve = np.array([0x2000, 0xA000, 0x1F000]), np.array([0x6000, 0xC000, 0x30000])
    first, pages, count = clip_regions(r, vs, ve, PAGE)
    assert first.tolist() == [2, 10, 31] and pages.tolist() == [3, 2, 1] and count.tolist() == [3, 7, 7]
    assert clip_regions(r[1:2], vs, ve, PAGE)[0].size == 0  # nr_accesses 0: nothing


def test_expand_pieces_hottest_first_under_a_budget() -> None:
    first, pages, count = np.array([2, 10, 31]), np.array([3, 2, 1]), np.array([3, 7, 7])
    vpn, cnt, _kf, _kp, dropped = expand_pieces(first, pages, count, 100)
    assert vpn.tolist() == [10, 11, 31, 2, 3, 4] and cnt.tolist() == [7, 7, 7, 3, 3, 3] and dropped == 0
    vpn, _cnt, _kf, kp, dropped = expand_pieces(first, pages, count, 4)
    assert vpn.tolist() == [10, 11, 31, 2] and dropped == 2 and kp.tolist() == [2, 1, 1]


# -- DAMON sampler on the emulated sysfs ------------------------------------------------------------
A0, A1, B0, B1 = 0x10000000, 0x10010000, 0x10020000, 0x10030000  # two 16-page mappings


@pytest.fixture
def damon_setup(trees):
    ids = make_cgroups(trees["cgroup"], "/work/app")
    add_process(
        trees["proc"],
        321,
        [(A0, A1, ""), (B0, B1, "[heap]"), (0xFFFFFFFFFF600000, 0xFFFFFFFFFF601000, "[vsyscall]")],
    )
    ents = np.full(16, PRESENT) | np.arange(100, 116, dtype=np.uint64)
    ents[1] = 0  # page 1 of A is not present
    set_pagemap(trees["proc"], 321, A0 // PAGE, ents)
    set_pagemap(trees["proc"], 321, B0 // PAGE, np.full(16, PRESENT))
    s = DamonSampler(
        damon_root=trees["admin"], proc_root=trees["proc"], cgroup_root=trees["cgroup"], page_size=PAGE
    )
    fake = FakeDamonSysfs(trees["admin"], trees["proc"])
    s.fs = fake
    fake.regions[0] = [
        (A0, A0 + 0x8000, 5, 3),  # A's first half
        (A0 + 0x8000, B0 + 0x8000, 2, 1),  # A's second half, the gap, B's first half
        (B0 + 0x8000, B1, 0, 9),  # cold
    ]
    return s, fake, ids["/work/app"]


def test_damon_probe(trees) -> None:
    s = DamonSampler(damon_root=trees["admin"], proc_root=trees["proc"])
    a = s.probe()
    assert a.ok and "counts 0..20" in a.reason
    gone = DamonSampler(damon_root=trees["admin"] / "missing")
    assert not gone.probe().ok and "CONFIG_DAMON_SYSFS" in gone.probe().reason


def test_damon_probe_busy(trees) -> None:
    (trees["proc"] / "7").mkdir()
    fake = FakeDamonSysfs(trees["admin"], trees["proc"])
    fake.create([KdamondSpec("vaddr", 7)]).start()
    a = DamonSampler(damon_root=trees["admin"], proc_root=trees["proc"]).probe()
    assert not a.ok and a.reason.startswith(f"{trees['admin'] / 'kdamonds' / 'nr_kdamonds'}: busy: kdamond 0")


def test_damon_rows_per_present_page_of_accessed_regions(damon_setup) -> None:
    s, fake, cg = damon_setup
    s.start(Targets(pids=(321,)))
    assert fake.kdamonds()[0].state == "on"
    rows = s.drain()
    assert rows.dtype == RAW_SAMPLE_DTYPE
    got = dict(zip(rows["vpn"].tolist(), rows["count"].tolist(), strict=True))
    a, b = A0 // PAGE, B0 // PAGE
    want = (
        {a + i: 5 for i in range(8) if i != 1}
        | {a + i: 2 for i in range(8, 16)}
        | {b + i: 2 for i in range(8)}
    )
    assert got == want
    assert set(rows["pid"].tolist()) == {321} and set(rows["cgroup"].tolist()) == {cg}
    assert set(rows["flags"].tolist()) == {SAMPLE_DAMON}
    h = s.health()
    assert h.samples == 23 and h.dropped == 0
    s.stop()
    assert fake.nr_kdamonds() == 0


def test_damon_row_cap_keeps_the_hottest_and_counts_the_rest(damon_setup) -> None:
    s, _fake, _ = damon_setup
    s.max_rows = 10
    s.start(Targets(pids=(321,)))
    rows = s.drain()
    assert rows.shape[0] == 9  # 10 pages expanded, one of them not present
    assert (rows["count"] == 5).sum() == 7 and (rows["count"] == 2).sum() == 2
    assert s.health().dropped == 14  # mapped pages of accessed regions left out
    s.stop()


def test_damon_target_exit_ends_its_rows_with_a_note(damon_setup, trees) -> None:
    s, fake, _ = damon_setup
    s.start(Targets(pids=(321,)))
    assert s.drain().size
    fake.exit_target(0)
    shutil.rmtree(trees["proc"] / "321")
    assert s.drain().size == 0
    assert s.pids == []
    assert any("pid 321 exited" in n for n in s.health().notes)
    s.stop()
    assert fake.nr_kdamonds() == 0


def test_damon_start_needs_targets(trees) -> None:
    s = DamonSampler(damon_root=trees["admin"], proc_root=trees["proc"], cgroup_root=trees["cgroup"])
    with pytest.raises(UnavailableError, match="needs live target pids"):
        s.start(Targets())
    with pytest.raises(UnavailableError, match="needs live target pids"):
        s.start(Targets(pids=(4242,)))  # gone already


def test_damon_sampler_over_the_captured_guest_tree(tmp_path: Path) -> None:
    child = json.loads((FIXTURE / "child.json").read_text())
    admin = tmp_path / "admin"
    shutil.copytree(FIXTURE / "sys/kernel/mm/damon/admin", admin)
    proc = tmp_path / "proc"
    (proc / str(child["pid"])).mkdir(parents=True)
    shutil.copy(FIXTURE / "proc/target/maps", proc / str(child["pid"]) / "maps")

    class Captured(DamonSysfs):
        def _write(self, path: Path, text: str) -> None:
            assert text == "update_schemes_tried_regions"

    s = DamonSampler(
        damon_root=admin, proc_root=proc, cgroup_root=tmp_path / "none", present_only=False, page_size=PAGE
    )
    s.fs = Captured(admin, proc_root=proc)
    s._session, s._pids, s._live = (
        DamonSession(s.fs, (KdamondSpec("vaddr", child["pid"]),)),
        [child["pid"]],
        {0},
    )
    rows = s.drain()
    vpn = rows["vpn"].astype(np.int64)
    (h0, h1), (c0, c1) = child["hot"], child["cold"]
    in_hot = (vpn >= h0 // PAGE) & (vpn < h1 // PAGE)
    in_cold = (vpn >= c0 // PAGE) & (vpn < c1 // PAGE)
    assert in_hot.sum() == 4096 - 10  # every hot page but the 10 of the tail region that saw nothing
    assert in_cold.sum() == 0
    assert set(rows["count"][in_hot].tolist()) == {10, 8}
    assert rows["count"][in_hot].sum() > 50 * rows["count"][~in_hot].sum()  # only the stack besides
    assert set(rows["cgroup"].tolist()) == {0}  # no cgroup tree here


# -- idle page tracking ------------------------------------------------------------------------------
V0 = 0x20000000  # a 32-page mapping


def make_kpageflags(proc: Path, n_frames: int, flags: dict[int, int] | None = None) -> None:
    words = np.zeros(n_frames, dtype="<u8")
    for f, v in (flags or {}).items():
        words[f] = v
    (proc / "kpageflags").write_bytes(words.tobytes())


@pytest.fixture
def idle_setup(trees):
    bitmap = trees["sys"] / IDLE_BITMAP
    bitmap.parent.mkdir(parents=True)
    bitmap.write_bytes(bytes(8 * 1024))  # frames 0..65535
    make_kpageflags(trees["proc"], 65536)
    make_cgroups(trees["cgroup"], "/work/app")
    add_process(trees["proc"], 77, [(V0, V0 + 32 * PAGE, "")])
    frames = np.concatenate([np.arange(1000, 1020), np.arange(5000, 5010)]).astype(np.uint64)  # 30 present
    ents = np.zeros(32, np.uint64)
    ents[:30] = PRESENT | frames
    set_pagemap(trees["proc"], 77, V0 // PAGE, ents)
    s = IdlePageSampler(
        sys_root=trees["sys"], proc_root=trees["proc"], cgroup_root=trees["cgroup"], page_size=PAGE
    )
    return s, bitmap, frames


def idle_bits(bitmap: Path, frames: np.ndarray) -> np.ndarray:
    words = np.frombuffer(bitmap.read_bytes(), dtype="=u8")
    f = frames.astype(np.int64)
    return ((words[f >> 6] >> (f & 63).astype(np.uint64)) & np.uint64(1)) == 1


def kernel_sees_access(bitmap: Path, frames: np.ndarray) -> None:
    """What the kernel does for an accessed page: its idle bit reads 0."""
    words = np.frombuffer(bitmap.read_bytes(), dtype="=u8").copy()
    for f in frames.tolist():
        words[f >> 6] &= ~np.uint64(1 << (f & 63))
    bitmap.write_bytes(words.tobytes())


def test_idle_probe_without_the_bitmap_explains_why_no_fallback(trees) -> None:
    a = IdlePageSampler(sys_root=trees["sys"], proc_root=trees["proc"]).probe()
    assert not a.ok
    assert (
        "CONFIG_IDLE_PAGE_TRACKING" in a.reason and "KPF_REFERENCED" in a.reason and "soft-dirty" in a.reason
    )
    with pytest.raises(UnavailableError, match="CONFIG_IDLE_PAGE_TRACKING"):
        IdlePageSampler(sys_root=trees["sys"], proc_root=trees["proc"]).start(Targets(pids=(1,)))


def test_idle_marks_present_pages_and_reports_those_accessed(idle_setup, trees) -> None:
    s, bitmap, frames = idle_setup
    assert s.probe().ok
    s.start(Targets(pids=(77,)))
    assert idle_bits(bitmap, frames).all()
    assert int(np.unpackbits(np.frombuffer(bitmap.read_bytes(), np.uint8)).sum()) == 30  # nothing else
    kernel_sees_access(bitmap, frames[[0, 5, 25]])
    # a page faulted in since the scan (never marked) counts as accessed too
    set_pagemap(trees["proc"], 77, V0 // PAGE + 30, [PRESENT | np.uint64(7000)])
    rows = s.drain()
    assert sorted(rows["vpn"].tolist()) == [V0 // PAGE + i for i in (0, 5, 25, 30)]
    assert set(rows["count"].tolist()) == {1} and set(rows["flags"].tolist()) == {SAMPLE_IDLE}
    assert (
        set(rows["pid"].tolist()) == {77}
        and rows["cgroup"][0] == (trees["cgroup"] / "work/app").stat().st_ino
    )
    assert idle_bits(bitmap, np.append(frames, 7000)).all()  # marked again for the next interval
    assert s.drain().size == 0
    s.stop()


def test_idle_tracks_huge_pages_through_their_head_frame(trees) -> None:
    """A THP's idle flag lives on its head page: tails read and mark through it."""
    bitmap = trees["sys"] / IDLE_BITMAP
    bitmap.parent.mkdir(parents=True)
    bitmap.write_bytes(bytes(8 * 1024))
    head, tail, thp = 1 << 15, 1 << 16, 1 << 22
    flags = {2048: head | thp} | {2048 + i: tail | thp for i in range(1, 512)}
    flags |= {4096 + i: tail | thp for i in range(10)}  # tails of a THP whose head is not mapped here
    flags[9000] = 1 << 17  # a hugetlb page: never on an LRU, never tracked
    make_kpageflags(trees["proc"], 65536, flags)
    add_process(trees["proc"], 9, [(V0, V0 + 524 * PAGE, "")])
    frames = np.concatenate([np.arange(2048, 2560), np.arange(4096, 4106), [9000, 100]]).astype(np.uint64)
    set_pagemap(trees["proc"], 9, V0 // PAGE, PRESENT | frames)
    s = IdlePageSampler(
        sys_root=trees["sys"], proc_root=trees["proc"], cgroup_root=trees["cgroup"], page_size=PAGE
    )
    s.start(Targets(pids=(9,)))
    assert idle_bits(bitmap, np.array([2048, 100])).all()
    assert not idle_bits(bitmap, np.arange(2049, 2560)).any()  # only the head carries the THP's bit
    assert s.drain().size == 0  # nothing accessed; the 10 orphan tails and the hugetlb page unobservable
    assert s.health().dropped == 11
    kernel_sees_access(bitmap, np.array([2048]))
    rows = s.drain()
    assert sorted(rows["vpn"].tolist()) == list(range(V0 // PAGE, V0 // PAGE + 512))


def test_idle_needs_frame_numbers(idle_setup, trees) -> None:
    s, _bitmap, _ = idle_setup
    set_pagemap(trees["proc"], 77, V0 // PAGE, np.full(32, PRESENT))  # PFNs hidden: no CAP_SYS_ADMIN
    with pytest.raises(PermissionDeniedError, match="CAP_SYS_ADMIN") as ei:
        s.start(Targets(pids=(77,)))
    assert ei.value.where.endswith("77/pagemap")


def test_idle_process_exit_and_row_cap(idle_setup, trees) -> None:
    s, bitmap, frames = idle_setup
    s.max_rows = 2
    s.start(Targets(pids=(77,)))
    kernel_sees_access(bitmap, frames[:5])
    rows = s.drain()
    assert rows.shape[0] == 2 and s.health().dropped == 3
    shutil.rmtree(trees["proc"] / "77")
    assert s.drain().size == 0 and s.pids == []
    assert any("pid 77 exited" in n for n in s.health().notes)


def test_soft_dirty_mode_reports_written_pages(trees) -> None:
    add_process(trees["proc"], 88, [(V0, V0 + 8 * PAGE, "")])
    (trees["proc"] / "self").mkdir()
    (trees["proc"] / "self" / "clear_refs").write_text("")
    ents = np.full(8, PRESENT)
    set_pagemap(trees["proc"], 88, V0 // PAGE, ents)
    s = IdlePageSampler(
        mode="soft-dirty", proc_root=trees["proc"], cgroup_root=trees["cgroup"], page_size=PAGE
    )
    assert s.probe().ok and "writes only" in s.probe().reason
    s.start(Targets(pids=(88,)))
    assert (trees["proc"] / "88" / "clear_refs").read_text() == "4\n"
    (trees["proc"] / "88" / "clear_refs").write_text("")
    ents[[2, 3, 7]] |= SOFT_DIRTY
    set_pagemap(trees["proc"], 88, V0 // PAGE, ents)
    rows = s.drain()
    assert rows["vpn"].tolist() == [V0 // PAGE + i for i in (2, 3, 7)]
    assert set(rows["flags"].tolist()) == {SAMPLE_SOFT_DIRTY | SAMPLE_WRITE}
    assert (trees["proc"] / "88" / "clear_refs").read_text() == "4\n"  # cleared again for the next interval


def test_idle_scan_is_vectorised(trees) -> None:
    n = 1 << 17  # 512 MiB of 4 KiB pages
    bitmap = trees["sys"] / IDLE_BITMAP
    bitmap.parent.mkdir(parents=True)
    bitmap.write_bytes(bytes(8 * ((2 * n) // 64 + 1)))
    make_kpageflags(trees["proc"], 2 * n)
    add_process(trees["proc"], 5, [(V0, V0 + n * PAGE, "")])
    rng = np.random.default_rng(1)
    frames = rng.permutation(2 * n)[:n].astype(np.uint64)  # scattered frames
    set_pagemap(trees["proc"], 5, V0 // PAGE, PRESENT | frames)
    s = IdlePageSampler(
        sys_root=trees["sys"], proc_root=trees["proc"], cgroup_root=trees["cgroup"], page_size=PAGE
    )
    t0 = time.perf_counter()
    s.start(Targets(pids=(5,)))
    kernel_sees_access(bitmap, frames[:1000])
    rows = s.drain()
    elapsed = time.perf_counter() - t0
    assert rows.shape[0] == 1000
    assert elapsed < 5.0, f"{n} pages took {elapsed:.1f} s"


def test_registry_builds_both(trees) -> None:
    assert make_sampler("damon", damon_root=trees["admin"]).name == "damon"
    assert make_sampler("idle", sys_root=trees["sys"]).name == "idle"
    assert os.fspath(make_sampler("idle").bitmap_path) == "/sys/kernel/mm/page_idle/bitmap"
