"""One walker, one cgroup.procs reader, one way to the v2 root (issue 13), on fake trees.

``CgroupFS.list`` and every ``CgroupTree`` lookup go through ``cgroup_tree.walk``: the tests count the
directories listed and compare the answers — also with an unreadable cgroup and one removed while
the walk runs — against the former ``os.walk`` listing under the same conditions.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tierctl.errors import InputError, KernelError, UnavailableError
from tierctl.kernel.cgroupfs import CgroupFS, CgroupTree, cgroup2_root, cgroup_id, procs, v2_root, walk
from tierctl.kernel.procfs import ProcFS

FIX = Path(__file__).parents[1] / "fixtures" / "cgroupfs"


class _Listed:
    """What os.scandir returns (a context manager iterating DirEntry objects), over a list read earlier."""

    def __init__(self, entries: list[os.DirEntry[str]]) -> None:
        self._it = iter(entries)

    def __enter__(self) -> _Listed:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def __iter__(self) -> Iterator[os.DirEntry[str]]:
        return self

    def __next__(self) -> os.DirEntry[str]:
        return next(self._it)


def _os_walk_list(base: Path, under: str = "") -> list[str]:
    """The former CgroupFS.list (os.walk), kept here as the reference behaviour."""
    top = base / under if under else base
    out = [under]
    for dirpath, dirnames, _ in os.walk(top, followlinks=False):
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]
        rel = os.path.relpath(dirpath, base)
        out.extend(d if rel == "." else f"{rel}/{d}" for d in dirnames)
    return sorted(out, key=lambda p: p.split("/"))


@pytest.fixture
def stall_tree(tmp_path: Path) -> tuple[CgroupFS, Path]:
    """The stall-v2 capture plus a deeper branch and a symlink (not followed)."""
    shutil.copytree(FIX / "stall-v2", tmp_path / "t")
    root = tmp_path / "t" / "cgroup"
    for d in ("work/batch/b1", "work/batch/b0", "work/x.y", "idle/z"):
        (root / d).mkdir()
    (root / "idle" / "link").symlink_to(root / "work")
    return CgroupFS(root, proc_root=tmp_path / "t" / "proc", page_size=4096), root


def test_list_and_the_tree_are_one_walk(stall_tree: tuple[CgroupFS, Path], monkeypatch: Any) -> None:
    fs, root = stall_tree
    tree = fs.tree()
    assert tree is not None and tree.root == root
    listed: list[str] = []
    real = os.scandir

    def counting(p: Any) -> Any:
        listed.append(os.fspath(p))
        return real(p)

    monkeypatch.setattr(os, "scandir", counting)
    paths = fs.list()
    by_list, listed[:] = sorted(listed), []
    ids = tree.ids()
    assert sorted(listed) == by_list and len(set(by_list)) == len(by_list)  # each directory once
    assert paths == [p for p, _ in ids] == _os_walk_list(root)
    assert paths == [
        "", "idle", "idle/z", "nomem", "work", "work/batch", "work/batch/b0", "work/batch/b1", "work/x.y"
    ]  # fmt: skip
    assert all(i == cgroup_id(root / p if p else root) for p, i in ids)  # entry inodes are the ids
    assert fs.list("/work/") == [p for p, _ in tree.ids("work")] == _os_walk_list(root, "work")
    work = fs.cgroup_id("work")
    assert (
        tree.descendant_ids(work) == [i for _, i in tree.ids("work")] == [i for _, i in walk(root / "work")]
    )
    assert [(d, i) for d, i in tree.walk(root / "work")] == [(root / p, i) for p, i in tree.ids("work")]
    assert tree.paths_of([work, fs.cgroup_id("idle/z"), 1 << 40]) == {
        work: "work",
        fs.cgroup_id("idle/z"): "idle/z",
    }
    assert tree.path_of(work) == root / "work" and tree.path_of(1 << 40) is None


def test_unreadable_and_removed_mid_walk(stall_tree: tuple[CgroupFS, Path], monkeypatch: Any) -> None:
    """work/batch cannot be listed (EACCES); idle/z is removed after idle was listed, before its turn
    (on every walk): both are reported without children, by the list, the tree and the former os.walk
    alike."""
    fs, root = stall_tree
    real = os.scandir

    def scandir(p: Any) -> Any:
        p = os.fspath(p)
        if p == str(root / "work" / "batch"):
            raise PermissionError(13, "Permission denied", p)
        if p == str(root / "idle"):  # on every walk: idle/z (with a child) is listed, then removed
            (root / "idle" / "z" / "deep").mkdir(parents=True, exist_ok=True)
            with real(p) as it:
                entries = list(it)
            (root / "idle" / "z" / "deep").rmdir()
            (root / "idle" / "z").rmdir()
            return _Listed(entries)
        return real(p)

    monkeypatch.setattr(os, "scandir", scandir)
    tree = fs.tree()
    assert tree is not None
    want = ["", "idle", "idle/z", "nomem", "work", "work/batch", "work/x.y"]
    assert fs.list() == want == [p for p, _ in tree.ids()]
    assert _os_walk_list(root) == want  # what the former os.walk listing made of the same tree
    assert dict(tree.ids())["idle/z"] > 0  # its id from idle's listing, although it is gone now
    assert tree.descendant_ids(fs.cgroup_id("work")) == [i for _, i in tree.ids("work")]
    assert len(tree.descendant_ids(fs.cgroup_id("work"))) == 3  # work, work/batch (unlisted), work/x.y
    assert tree.ids("idle/z") == []  # a top that is gone: nothing
    with pytest.raises(InputError, match="no such cgroup"):
        fs.list("idle/z")  # the path is checked first, as before


def test_walk_of_a_missing_top_and_bad_paths(tmp_path: Path) -> None:
    assert list(walk(tmp_path / "absent")) == []
    tree = CgroupTree(tmp_path)
    assert tree.ids("nope") == [] and tree.paths_of([]) == {} and tree.pids([]) == []
    with pytest.raises(InputError):
        tree.ids("a/../..")


def test_one_procs_reader_strict_or_lenient(tmp_path: Path) -> None:
    f = tmp_path / "cgroup.procs"
    f.write_text("12\n\nabc\n7\n")
    assert procs(f) == [12, 7]  # lenient: what is a pid
    with pytest.raises(KernelError) as e:
        procs(f, strict=True)
    assert e.value.where == f"{f}:3"
    f.write_text("12\n7\n")
    assert procs(f) == procs(f, strict=True) == [12, 7]
    gone = tmp_path / "gone" / "cgroup.procs"
    assert procs(gone) == []
    with pytest.raises(UnavailableError) as e2:
        procs(gone, strict=True)
    assert e2.value.where == str(gone)
    cg = tmp_path / "cg"
    (cg / "a").mkdir(parents=True)
    (cg / "cgroup.controllers").write_text("memory\n")
    (cg / "a" / "cgroup.procs").write_text("5\nx\n3\n")
    fs = CgroupFS(cg, page_size=4096)
    tree = fs.tree()
    assert tree is not None
    assert tree.pids([fs.cgroup_id("a")]) == [3, 5]  # the tree: lenient
    with pytest.raises(KernelError, match="not a pid"):
        fs.pids("a")  # CgroupFS.pids: strict, naming the file and line


def _mountinfo(proc: Path, *points: str) -> ProcFS:
    (proc / "self").mkdir(parents=True, exist_ok=True)
    (proc / "self" / "mountinfo").write_text(
        "".join(f"{30 + n} 25 0:{26 + n} / {p} rw - cgroup2 cgroup2 rw\n" for n, p in enumerate(points))
    )
    return ProcFS(proc)


def test_one_way_to_the_v2_root(tmp_path: Path) -> None:
    unified = tmp_path / "unified-v2"
    unified.mkdir()
    (unified / "cgroup.controllers").write_text("cpuset memory\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = _mountinfo(tmp_path / "proc", "/mnt/cg", "/sys/fs/cgroup", "/mnt/cg2/unified")
    cases = [
        (unified, unified),
        (FIX / "host-hybrid", FIX / "host-hybrid" / "unified"),
        (FIX / "guest-v2", FIX / "guest-v2"),
        (empty, None),  # an explicit root never falls back to a mount elsewhere
    ]
    for root, want in cases:
        found = [
            v2_root(root, proc),
            getattr(CgroupTree.find(root, proc), "root", None),
            getattr(CgroupTree.below(root, proc), "root", None),
            getattr(CgroupFS(root, proc_root=proc.root, page_size=4096).tree(), "root", None),
        ]
        assert found == [want] * 4, root
    # no root given: this process's mountinfo, the default place first, then the shortest path
    assert v2_root(None, proc) == cgroup2_root(proc) == Path("/sys/fs/cgroup")
    mounted = CgroupTree.mounted(proc)
    assert mounted is not None and mounted.root == Path("/sys/fs/cgroup")
    assert v2_root(None, _mountinfo(tmp_path / "proc1", "/mnt/cg2/unified", "/mnt/cg")) == Path("/mnt/cg")
    assert getattr(CgroupTree.find(None, proc), "root", None) == mounted.root
    none = _mountinfo(tmp_path / "proc2")
    assert v2_root(None, none) is None and CgroupTree.mounted(none) is None
