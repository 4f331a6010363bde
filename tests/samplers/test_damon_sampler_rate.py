"""The DAMON sampler's economy: which processes get a kdamond, rows only on news, throttling, retargeting."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.fixtures.damon.fake_damon import FakeDamonSysfs, make_admin_tree
from tests.samplers.test_samplers_nonbpf import PAGE, PRESENT, add_process, make_cgroups, set_pagemap
from tierctl.errors import InputError
from tierctl.kernel.damon import REGION_DTYPE, KdamondSpec
from tierctl.samplers.base import Targets
from tierctl.samplers.damon import DamonSampler, hot_buckets, new_buckets

MIB = 1 << 20
BASE = 0x40000000  # 2 MiB aligned


def regions(*rows: tuple[int, int, int]) -> np.ndarray:
    out = np.zeros(len(rows), dtype=REGION_DTYPE)
    for i, (s, e, n) in enumerate(rows):
        out[i] = (s, e, n, 0)
    return out


def test_hot_buckets_cover_every_2mib_bucket_an_accessed_region_touches() -> None:
    r = regions(
        (BASE, BASE + 4 * MIB, 3),
        (BASE + 5 * MIB, BASE + 5 * MIB + 4096, 1),
        (BASE + 8 * MIB, BASE + 9 * MIB, 0),
    )
    b0 = BASE // (2 * MIB)
    assert hot_buckets(r, PAGE).tolist() == [b0, b0 + 1, b0 + 2]  # the cold region adds nothing
    assert hot_buckets(regions(), PAGE).size == 0


def test_new_buckets_counts_additions_only() -> None:
    seen = np.arange(100)
    assert new_buckets(None, np.arange(3), 0.02)  # nothing seen yet: news
    assert not new_buckets(seen, np.arange(50), 0.02)  # fewer hot places: no news
    assert not new_buckets(seen, np.r_[np.arange(100), 100, 101], 0.02)  # 2 new of 100: within 2 %
    assert new_buckets(seen, np.r_[np.arange(100), 100, 101, 102], 0.02)
    assert new_buckets(np.zeros(0, np.int64), np.arange(1), 0.02)  # from nothing hot to something


@pytest.fixture
def proc_trees(tmp_path: Path) -> dict[str, Path]:
    t = {"proc": tmp_path / "proc", "cgroup": tmp_path / "cgroup", "admin": tmp_path / "admin"}
    t["proc"].mkdir()
    make_admin_tree(t["admin"])
    make_cgroups(t["cgroup"], "/work/app")
    return t


def sampler(t: dict[str, Path], **kw: object) -> tuple[DamonSampler, FakeDamonSysfs]:
    s = DamonSampler(
        damon_root=t["admin"], proc_root=t["proc"], cgroup_root=t["cgroup"], page_size=PAGE, **kw
    )
    fake = FakeDamonSysfs(t["admin"], t["proc"])
    s.fs = fake
    return s, fake


def big_process(t: dict[str, Path], pid: int, mib: int = 8, rss_pages: int = 8192) -> None:
    add_process(t["proc"], pid, [(BASE, BASE + mib * MIB, "")], rss_pages=rss_pages)
    set_pagemap(t["proc"], pid, BASE // PAGE, np.full(mib * MIB // PAGE, PRESENT))


def test_rows_only_when_new_places_get_hot_and_every_keepalive_drains(proc_trees) -> None:
    big_process(proc_trees, 321)
    s, fake = sampler(proc_trees, keepalive=4)
    s.start(Targets(pids=(321,)))
    fake.regions[0] = [(BASE, BASE + 2 * MIB, 10, 0), (BASE + 2 * MIB, BASE + 8 * MIB, 0, 0)]
    assert s.drain().shape[0] == 512  # first look: everything is news
    assert s.drain().shape[0] == 0  # the same bucket hot again: nothing new
    fake.regions[0] = [(BASE, BASE + 8 * MIB, 0, 0)]
    assert s.drain().shape[0] == 0  # it went quiet: no news either (the heat decays by itself)
    fake.regions[0] = [(BASE + 4 * MIB, BASE + 6 * MIB, 5, 0), (BASE, BASE + 4 * MIB, 0, 0)]
    rows = s.drain()
    assert rows.shape[0] == 512 and set(rows["count"].tolist()) == {5}  # a new place got hot: at once
    assert [s.drain().shape[0] for _ in range(4)] == [0, 0, 0, 512]  # the keepalive, every 4th drain


def test_only_accessed_regions_are_asked_for(proc_trees) -> None:
    big_process(proc_trees, 321)
    s, fake = sampler(proc_trees)
    s.start(Targets(pids=(321,)))
    path = "kdamonds/0/contexts/0/schemes/0/access_pattern/nr_accesses/min"
    assert (proc_trees["admin"] / path).read_text().strip() == "1"
    fake.regions[0] = [(BASE, BASE + 2 * MIB, 4, 0), (BASE + 2 * MIB, BASE + 8 * MIB, 0, 0)]
    s.drain()
    tried = proc_trees["admin"] / "kdamonds/0/contexts/0/schemes/0/tried_regions"
    assert sorted(p.name for p in tried.iterdir() if p.is_dir()) == ["0"]
    s.stop()


def test_small_processes_get_no_kdamond_and_the_largest_come_first(proc_trees) -> None:
    big_process(proc_trees, 10, rss_pages=100)  # 400 KiB: below 16 MiB
    big_process(proc_trees, 11, rss_pages=8192)
    big_process(proc_trees, 12, rss_pages=20000)
    big_process(proc_trees, 13, rss_pages=9000)
    s, fake = sampler(proc_trees, max_targets=2)
    s.start(Targets(pids=(10, 11, 12, 13)))
    assert s.pids == [12, 13]
    assert any("monitoring the 2 largest only" in n for n in s.health().notes)
    assert fake.nr_kdamonds() == 2
    s.stop()


def test_started_on_a_cgroup_without_big_processes_it_waits_for_retarget(proc_trees) -> None:
    s, fake = sampler(proc_trees)
    cg = (proc_trees["cgroup"] / "work" / "app").stat().st_ino
    s.start(Targets(cgroup_ids=(cg,)))
    assert s.pids == [] and fake.nr_kdamonds() == 0 and s.drain().shape[0] == 0
    big_process(proc_trees, 321)
    (proc_trees["cgroup"] / "work" / "app" / "cgroup.procs").write_text("321\n")
    s.retarget(Targets(cgroup_ids=(cg,)))
    assert s.pids == [321] and fake.kdamonds()[0].state == "on"
    fake.regions[0] = [(BASE, BASE + 2 * MIB, 3, 0)]
    assert s.drain().shape[0] == 512
    s.retarget(Targets(cgroup_ids=(cg,)))  # the same processes: the kdamond keeps running
    assert ("kdamonds/nr_kdamonds", "0") not in fake.writes
    big_process(proc_trees, 322)
    s.retarget(Targets(pids=(321, 322)))  # another one: new kdamonds for both
    assert s.pids == [321, 322] and fake.nr_kdamonds() == 2
    assert ("kdamonds/nr_kdamonds", "0") in fake.writes
    s.stop()
    assert fake.nr_kdamonds() == 0


def test_throttle_halves_the_rate_down_to_one_drain_in_8(proc_trees) -> None:
    big_process(proc_trees, 321)
    s, fake = sampler(proc_trees, keepalive=1)
    s.start(Targets(pids=(321,)))
    fake.regions[0] = [(BASE, BASE + 2 * MIB, 3, 0)]
    assert [s.throttle() for _ in range(4)] == [True, True, True, False]
    updates = lambda: sum(1 for _, text in fake.writes if text == "update_schemes_tried_regions")  # noqa: E731
    before = updates()
    got = [s.drain().shape[0] for _ in range(16)]
    assert updates() - before == 2 and got.count(512) == 2
    assert any("every 8 drains" in n for n in s.health().notes)
    s.stop()


def test_bad_rate_options_are_refused(proc_trees) -> None:
    with pytest.raises(InputError, match="keepalive"):
        sampler(proc_trees, keepalive=0)


def test_min_accesses_must_fit_the_aggregation() -> None:
    with pytest.raises(InputError, match=r"damon\.min_accesses"):
        KdamondSpec("vaddr", 1, min_accesses=21)  # 100 ms / 5 ms = 20 samples at most
