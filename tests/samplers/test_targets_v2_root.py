"""TargetResolver finds the v2 hierarchy the one way (CgroupTree.find below its cgroup root): the same
tree CgroupFS and the pressure side see under the same ``--cgroup-root``, never a mount elsewhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from tierctl.errors import UnavailableError
from tierctl.kernel.cgroupfs import CgroupFS, CgroupTree, cgroup_id
from tierctl.kernel.procfs import ProcFS
from tierctl.samplers.base import Targets
from tierctl.samplers.targets import TargetResolver

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "cgroupfs"


def _proc(tmp_path: Path) -> ProcFS:
    """A procfs whose mountinfo has cgroup2 somewhere else than any root the tests pass."""
    (tmp_path / "proc" / "self").mkdir(parents=True)
    (tmp_path / "proc" / "self" / "mountinfo").write_text(
        "30 25 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"
    )
    return ProcFS(tmp_path / "proc")


@pytest.mark.parametrize(("name", "want"), [("guest-v2", "guest-v2"), ("host-hybrid", "host-hybrid/unified")])
def test_the_resolver_and_cgroupfs_see_one_v2_root(tmp_path: Path, name: str, want: str) -> None:
    proc = _proc(tmp_path)
    r = TargetResolver(proc, FIX / name)
    tree = CgroupFS(FIX / name, proc_root=proc.root, page_size=4096).tree()
    below = CgroupTree.below(FIX / name, proc)
    assert r.v2_root() == FIX / want
    assert tree is not None and below is not None and tree.root == below.root == FIX / want


def test_no_v2_below_the_root_is_none_not_the_mount(tmp_path: Path) -> None:
    proc = _proc(tmp_path)
    (tmp_path / "cg").mkdir()
    r = TargetResolver(proc, tmp_path / "cg")
    assert r.v2_root() is None and r.cgroup_id(1) == 0 and r.cgroup_dir(1) is None
    assert r.pids(Targets(pids=(3,))) == [3]
    with pytest.raises(UnavailableError, match="no cgroup v2 hierarchy"):
        r.pids(Targets(cgroup_ids=(1,)))


def test_target_pids_come_from_the_one_walk(tmp_path: Path) -> None:
    cg = tmp_path / "cg"
    for d in ("a/b", "c"):
        (cg / d).mkdir(parents=True)
    (cg / "cgroup.controllers").write_text("memory\n")
    (cg / "a" / "cgroup.procs").write_text("5\n")
    (cg / "a" / "b" / "cgroup.procs").write_text("9\n")
    r = TargetResolver(_proc(tmp_path), cg)
    a, b = cgroup_id(cg / "a"), cgroup_id(cg / "a" / "b")
    assert r.pids(Targets(cgroup_ids=(a,))) == [5]  # the cgroup itself, not its descendants
    assert r.pids(Targets(pids=(1,), cgroup_ids=(a, b, 1 << 40))) == [1, 5, 9]
