"""CgroupTree: the one cgroup v2 walker and id lookup, on fake trees (ids are directory inodes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tierctl.errors import InputError
from tierctl.kernel.cgroupfs import CgroupFS, CgroupTree, cgroup2_root, cgroup_id
from tierctl.kernel.procfs import ProcFS

FIX = Path(__file__).parents[1] / "fixtures"


@pytest.fixture
def tree(tmp_path: Path) -> CgroupTree:
    cg, proc = tmp_path / "cgroup", tmp_path / "proc"
    for d in ("a/b/c", "a/d", "e"):
        (cg / d).mkdir(parents=True)
    (cg / "cgroup.controllers").write_text("cpuset memory\n")
    (cg / "a" / "cgroup.procs").write_text("5\n7\n")
    (cg / "a" / "b" / "cgroup.procs").write_text("9\n")
    (cg / "e" / "link").symlink_to(cg / "a")  # not followed
    for pid, line in (
        (5, "0::/a\n"),
        (9, "0::/a/b\n"),
        (11, "12:memory:/x\n1:name=systemd:/x\n"),
        (12, "0::/\n"),
    ):
        (proc / str(pid)).mkdir(parents=True)
        (proc / str(pid) / "cgroup").write_text(line)
    t = CgroupTree.below(cg, ProcFS(proc))
    assert t is not None
    return t


def test_walk_is_parents_first_and_ids_are_inodes(tree: CgroupTree) -> None:
    got = list(tree.walk())
    rel = [str(d.relative_to(tree.root)) for d, _ in got]
    assert rel == [".", "a", "a/b", "a/b/c", "a/d", "e"]
    assert all(i == d.stat().st_ino == cgroup_id(d) for d, i in got)


def test_lookups_by_id_and_by_pid(tree: CgroupTree) -> None:
    a, b = cgroup_id(tree.root / "a"), cgroup_id(tree.root / "a" / "b")
    assert tree.path_of(b) == tree.root / "a" / "b"
    assert tree.path_of(12345678901) is None
    assert sorted(tree.descendant_ids(a)) == sorted(
        cgroup_id(tree.root / p) for p in ("a", "a/b", "a/b/c", "a/d")
    )
    assert tree.descendant_ids(42) == [42]  # unknown: just itself
    assert tree.pids([a, b]) == [5, 7, 9] and tree.pids([]) == []
    assert tree.pid_dir(9) == tree.root / "a" / "b" and tree.pid_id(9) == b
    assert tree.pid_dir(12) == tree.root and tree.pid_id(12) == cgroup_id(tree.root)
    assert tree.pid_id(11) is None and tree.pid_id(404) is None  # v1 only; gone


def test_the_v2_root_below_a_cgroup_root_and_from_mountinfo(tmp_path: Path) -> None:
    assert CgroupTree.below(tmp_path) is None
    (tmp_path / "unified").mkdir()
    (tmp_path / "unified" / "cgroup.procs").write_text("")
    hybrid = CgroupTree.below(tmp_path)
    assert hybrid is not None and hybrid.root == tmp_path / "unified"
    proc = tmp_path / "proc" / "self"
    proc.mkdir(parents=True)
    (proc / "mountinfo").write_text(
        "30 25 0:26 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n"
        "31 25 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
        "32 25 0:28 / /mnt/a/longer/path/my\\040cg rw - cgroup2 cgroup2 rw\n"
    )
    assert cgroup2_root(ProcFS(tmp_path / "proc")) == Path("/sys/fs/cgroup/unified")
    (proc / "mountinfo").write_text("32 25 0:28 / /mnt/a/longer/path/my\\040cg rw - cgroup2 cgroup2 rw\n")
    assert cgroup2_root(ProcFS(tmp_path / "proc")) == Path("/mnt/a/longer/path/my cg")
    (proc / "mountinfo").write_text("")
    assert (
        cgroup2_root(ProcFS(tmp_path / "proc")) is None
        and CgroupTree.mounted(ProcFS(tmp_path / "proc")) is None
    )


def test_cgroupfs_ids_are_the_same_lookup(tree: CgroupTree) -> None:
    fs = CgroupFS(tree.root, page_size=4096)
    assert fs.cgroup_id("a/b") == cgroup_id(tree.root / "a" / "b")
    with pytest.raises(InputError, match="no such cgroup"):
        cgroup_id(tree.root / "nope")
