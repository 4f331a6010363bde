"""The DAMON sampler records its kdamonds before creating them: in the daemon's guard, or in its own
record under the run folder; a killed run's kdamonds are turned off again."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.fixtures.damon.fake_damon import FakeDamonSysfs, make_admin_tree
from tests.kernel.test_knobs import TableMounts
from tests.samplers.test_damon_sampler_rate import big_process
from tests.samplers.test_samplers_nonbpf import PAGE, make_cgroups
from tierctl.kernel.knobs import DAMON, DAMON_KDAMONDS, KnobGuard
from tierctl.samplers.base import Targets
from tierctl.samplers.damon import RECORD_PREFIX, DamonSampler


class Host:
    def __init__(self, tmp_path: Path) -> None:
        self.root = tmp_path / "root"
        self.sys = self.root / "sys"
        self.admin = make_admin_tree(
            self.root / DAMON_KDAMONDS.lstrip("/").removesuffix("/kdamonds/nr_kdamonds")
        )
        self.run = tmp_path / "run"
        self.t = {"proc": tmp_path / "proc", "cgroup": tmp_path / "cgroup"}
        self.t["proc"].mkdir()
        make_cgroups(self.t["cgroup"], "/work/app")
        for pid in (321, 322):
            big_process(self.t, pid)

    def sampler(self, **kw: object) -> DamonSampler:
        s = DamonSampler(
            sys_root=self.sys,
            proc_root=self.t["proc"],
            cgroup_root=self.t["cgroup"],
            page_size=PAGE,
            run_dir=self.run,
            **kw,  # type: ignore[arg-type]
        )
        if "knob_root" in kw or "knobs" in kw:
            assert s.fs.root == self.admin
        s.fs = FakeDamonSysfs(s.fs.root, self.t["proc"])
        return s

    def fake(self) -> FakeDamonSysfs:
        return FakeDamonSysfs(self.admin, self.t["proc"])

    def run_files(self) -> list[str]:
        return sorted(p.name for p in self.run.iterdir()) if self.run.exists() else []


@pytest.fixture
def host(tmp_path: Path) -> Host:
    return Host(tmp_path)


def dead_pid() -> int:
    pid = 2**22 + 4321  # above the default pid_max
    while Path(f"/proc/{pid}").exists():
        pid += 1
    return pid


def test_without_a_guard_the_sampler_keeps_its_own_record_while_kdamonds_run(host: Host) -> None:
    s = host.sampler(knob_root=host.root)
    assert s.probe().ok and host.run_files() == []  # nothing recorded before anything is changed
    s.start(Targets(pids=(321, 322)))
    mine = f"{RECORD_PREFIX}{os.getpid()}.json"
    assert host.run_files() == [mine]
    knobs = json.loads((host.run / mine).read_text())["knobs"]
    assert knobs == [
        {"knob": DAMON_KDAMONDS, "original": "0", "expected": "2: vaddr 321, vaddr 322", "kind": DAMON}
    ]
    s.retarget(Targets(pids=(321,)))  # new kdamonds, a new record
    assert json.loads((host.run / mine).read_text())["knobs"][0]["expected"] == "1: vaddr 321"
    s.stop()
    assert host.run_files() == [] and host.fake().nr_kdamonds() == 0


def test_a_killed_one_shot_run_is_undone_by_the_next_sampler(host: Host) -> None:
    crashed = host.sampler(knob_root=host.root)
    crashed.start(Targets(pids=(321,)))
    assert host.fake().kdamonds()[0].state == "on"
    # killed: no stop; its record names a pid that is gone now
    (host.run / f"{RECORD_PREFIX}{os.getpid()}.json").rename(host.run / f"{RECORD_PREFIX}{dead_pid()}.json")
    del crashed

    nxt = host.sampler(knob_root=host.root)
    a = nxt.probe()
    assert a.ok, a.reason  # not "busy ... started by someone else"
    assert [(r.knob, r.outcome) for r in nxt.restored_at_start or []] == [(DAMON_KDAMONDS, "restored")]
    assert any("left by a crashed run" in n for n in nxt.health().notes)
    assert host.run_files() == [] and host.fake().nr_kdamonds() == 0
    nxt.start(Targets(pids=(322,)))
    nxt.stop()


def test_with_the_daemons_guard_the_record_is_the_daemons(host: Host, tmp_path: Path) -> None:
    state = tmp_path / "state" / "knobs.json"

    def guard() -> KnobGuard:
        return KnobGuard(state, host.root, mounts=TableMounts(), damon=lambda _admin: host.fake())

    s = host.sampler(knobs=guard())
    s.start(Targets(pids=(321,)))
    assert [k["kind"] for k in json.loads(state.read_text())["knobs"]] == [DAMON]
    assert host.run_files() == []  # no record of its own
    s.stop()
    assert not state.exists()

    s = host.sampler(knobs=guard())
    s.start(Targets(pids=(321,)))
    del s  # the daemon was killed
    restarted = guard()  # its next start restores the record before making samplers
    assert [r.outcome for r in restarted.restore_all()] == ["restored"]
    assert host.fake().nr_kdamonds() == 0 and not state.exists()
    assert host.sampler(knobs=restarted).probe().ok


def test_a_guard_below_another_root_makes_the_sampler_unavailable(host: Host, tmp_path: Path) -> None:
    s = host.sampler(knobs=KnobGuard(tmp_path / "k.json", tmp_path / "elsewhere", mounts=TableMounts()))
    a = s.probe()
    assert not a.ok and "would restore" in a.reason


def test_a_fake_tree_outside_the_knob_root_gets_no_record(host: Host, tmp_path: Path) -> None:
    admin = make_admin_tree(tmp_path / "admin")
    s = DamonSampler(
        damon_root=admin,
        proc_root=host.t["proc"],
        cgroup_root=host.t["cgroup"],
        page_size=PAGE,
        run_dir=host.run,
    )
    s.fs = FakeDamonSysfs(admin, host.t["proc"])
    assert s.knobs() is None
    s.start(Targets(pids=(321,)))
    assert host.run_files() == [] and s.restored_at_start == []
    s.stop()


def test_a_record_under_this_processs_own_pid_is_an_earlier_process_and_restored(host: Host) -> None:
    crashed = host.sampler(knob_root=host.root)
    crashed.start(Targets(pids=(321,)))
    del crashed  # killed; a new process got the same pid (here: the same test process)
    nxt = host.sampler(knob_root=host.root)
    assert nxt.probe().ok
    assert [r.outcome for r in nxt.restored_at_start or []] == ["restored"]
    assert host.run_files() == [] and host.fake().nr_kdamonds() == 0
