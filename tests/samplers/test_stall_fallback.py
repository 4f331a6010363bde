"""stall-fallback reads memory.events through the kernel adapter (MemStat) and finds cgroups and their
ids through one CgroupTree walk (issue 13): no file read of its own, no stat per cgroup."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from tierctl.errors import InputError, KernelError, PermissionDeniedError
from tierctl.kernel.cgroupfs import CgroupFS, cgroup_id
from tierctl.kernel.memstat import MemoryEvents, MemStat
from tierctl.samplers import stall_fallback
from tierctl.samplers.base import Targets
from tierctl.samplers.stall import CgroupStall
from tierctl.samplers.stall_fallback import StallFallback

STALL_FIX = Path(__file__).resolve().parents[1] / "fixtures" / "cgroupfs" / "stall-v2"


def _tree(tmp_path: Path) -> tuple[CgroupFS, Path]:
    shutil.copytree(STALL_FIX, tmp_path / "t")
    root = tmp_path / "t" / "cgroup"
    return CgroupFS(root, proc_root=tmp_path / "t" / "proc", page_size=4096), root


def _write_events(d: Path, **counts: int) -> None:
    keys = ("low", "high", "max", "oom", "oom_kill", "oom_group_kill")
    (d / "memory.events").write_text("".join(f"{k} {counts.get(k, 0)}\n" for k in keys))


def test_the_fallback_reports_memory_events_read_by_the_adapter(tmp_path: Path, monkeypatch: Any) -> None:
    fs, root = _tree(tmp_path)
    _write_events(root / "work", max=10, high=1, oom_kill=0)
    read: list[str] = []
    real = MemStat.memory_events

    def spy(self: MemStat, path: str, *, local: bool = False) -> MemoryEvents:
        assert self.fs is fs and not local
        read.append(path)
        return real(self, path, local=local)

    monkeypatch.setattr(MemStat, "memory_events", spy)
    fb = StallFallback(fs)
    fb.start(Targets())
    assert sorted(read) == ["idle", "nomem", "work", "work/batch"]  # every cgroup but the v2 root
    _write_events(root / "work", max=17, high=4, oom_kill=2)  # +7 max, +3 high, +2 kills
    rep = fb.drain()
    work = cgroup_id(root / "work")
    assert rep.cgroups == (CgroupStall(work, 10, 0, memcg_episodes=10, oom_kills=2, path="work"),)
    assert not hasattr(stall_fallback, "memory_events")  # no reader of its own any more


def test_adapter_errors_reach_the_fallback(tmp_path: Path) -> None:
    fs, root = _tree(tmp_path)
    fb = StallFallback(fs)
    fb.start(Targets())
    (root / "idle" / "memory.events").write_text("low 0\nhigh many\n")
    with pytest.raises(KernelError) as e:
        fb.drain()  # the adapter's parse error, naming file and line
    assert e.value.where == f"{root / 'idle' / 'memory.events'}:2"
    (root / "idle" / "memory.events").write_text("low 0\nhigh 0\n")  # no max/oom/oom_kill lines
    with pytest.raises(KernelError, match="no max, oom, oom_kill line"):
        fb.drain()


def test_unreadable_memory_events_is_permission_denied(tmp_path: Path, monkeypatch: Any) -> None:
    fs, root = _tree(tmp_path)
    fb = StallFallback(fs)
    fb.start(Targets())
    real_open = open
    f = str(root / "work" / "memory.events")

    def deny(file: Any, *a: Any, **k: Any) -> Any:
        if os.fspath(file) == f:
            raise PermissionError(13, "Permission denied", f)
        return real_open(file, *a, **k)

    monkeypatch.setattr("builtins.open", deny)
    with pytest.raises(PermissionDeniedError) as e:
        fb.drain()
    assert e.value.where == f


def test_targets_and_rows_use_the_tree_ids(tmp_path: Path, monkeypatch: Any) -> None:
    """Target ids are looked up in one walk, row ids come from the walk: no per-cgroup id lookups."""
    fs, root = _tree(tmp_path)
    monkeypatch.setattr(CgroupFS, "cgroup_id", lambda self, path: pytest.fail(f"cgroup_id({path!r})"))
    monkeypatch.setattr(CgroupFS, "list", lambda self, under="": pytest.fail(f"list({under!r})"))
    batch, idle = cgroup_id(root / "work" / "batch"), cgroup_id(root / "idle")
    fb = StallFallback(fs)
    fb.start(Targets(cgroup_ids=(batch, idle)))
    _write_events(root / "work" / "batch", max=60, oom_kill=1)  # was max 40
    _write_events(root / "work", max=99)  # not a target
    rep = fb.drain()
    assert [(c.cgroup_id, c.path, c.memcg_episodes) for c in rep.cgroups] == [(batch, "work/batch", 20)]
    root_id = cgroup_id(root)
    with pytest.raises(InputError, match="name only 0 cgroups"):
        StallFallback(fs).start(Targets(cgroup_ids=(root_id,)))  # the root has no memory.events
    shutil.rmtree(root / "idle")
    assert StallFallback(fs).probe().ok
    assert fb.drain().cgroups == ()  # a target removed since: no rows, no error
