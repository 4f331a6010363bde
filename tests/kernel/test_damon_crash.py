"""DAMON kdamonds as a knob record: recorded before create(), dropped at teardown, restored after a crash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fixtures.damon.fake_damon import FakeDamonSysfs, make_admin_tree
from tests.kernel.test_kernel_damon import Clock
from tests.kernel.test_knobs import TableMounts
from tierctl.errors import InputError, KernelError, UnavailableError
from tierctl.kernel.damon import DamonBusyError, DamonSysfs, KdamondSpec
from tierctl.kernel.knobs import DAMON, DAMON_KDAMONDS, Drift, KnobGuard, KnobRecord, Restored, current_value

SPECS = (KdamondSpec("vaddr", 100), KdamondSpec("vaddr", 200))
EXPECTED = "2: vaddr 100, vaddr 200"


class Machine:
    """A fake root with DAMON's sysfs at its usual place, processes 100, 200 and 300, and a clock."""

    def __init__(self, tmp_path: Path) -> None:
        self.root = tmp_path / "root"
        self.proc = tmp_path / "proc"
        for pid in (100, 200, 300):
            (self.proc / str(pid)).mkdir(parents=True)
        self.admin = make_admin_tree(
            self.root / DAMON_KDAMONDS.lstrip("/").removesuffix("/kdamonds/nr_kdamonds")
        )
        self.state = tmp_path / "state" / "knobs.json"
        self.clock = Clock()
        self.made: list[FakeDamonSysfs] = []

    def fs(self, admin: Path | None = None) -> FakeDamonSysfs:
        """A fresh adapter over the tree (a new process sees the kernel's state, nothing else)."""
        fs = FakeDamonSysfs(admin or self.admin, self.proc, clock=self.clock, sleep=self.clock.sleep)
        self.made.append(fs)
        return fs

    def guard(self) -> KnobGuard:
        return KnobGuard(self.state, self.root, mounts=TableMounts(), damon=self.fs)

    def record(self) -> list[dict[str, str]]:
        return json.loads(self.state.read_text())["knobs"] if self.state.exists() else []


@pytest.fixture
def m(tmp_path: Path) -> Machine:
    return Machine(tmp_path)


def test_the_record_is_on_disk_before_nr_kdamonds_is_written(m: Machine) -> None:
    seen: list[tuple[str, str, list[dict[str, str]]]] = []

    class Spy(FakeDamonSysfs):
        def _write(self, path: Path, text: str) -> None:
            seen.append((self.rel(path), text, m.record()))
            super()._write(path, text)

    fs = Spy(m.admin, m.proc)
    fs.create(SPECS, guard=m.guard())
    rel, text, record = seen[0]
    assert (rel, text) == ("kdamonds/nr_kdamonds", "2")
    assert record == [{"knob": DAMON_KDAMONDS, "original": "0", "expected": EXPECTED, "kind": DAMON}]


def test_after_a_crash_the_next_guard_turns_the_kdamonds_off_and_damon_is_free_again(m: Machine) -> None:
    session = m.fs().create(SPECS, guard=m.guard())
    session.start()
    assert [k.state for k in m.fs().kdamonds()] == ["on", "on"]
    del session  # killed: no stop, no teardown; the record stays behind
    with pytest.raises(DamonBusyError, match="busy: kdamond 0 is running"):
        m.fs().check_free()

    after = m.guard()  # the next run adopts the record
    assert after.records == [KnobRecord(DAMON_KDAMONDS, "0", EXPECTED, DAMON)]
    assert after.records[0].interface == "damon"
    assert after.restore_all() == [Restored(DAMON_KDAMONDS, "0", "restored")]
    offs = [(w, t) for fs in m.made for w, t in fs.writes if w.endswith("/state")]
    assert offs[-2:] == [("kdamonds/0/state", "off"), ("kdamonds/1/state", "off")]  # off, then cleared
    fresh = m.fs()
    assert fresh.nr_kdamonds() == 0
    fresh.check_free()  # free: the damon sampler is available again
    assert not m.state.exists() and after.records == []


def test_a_kdamond_stopped_with_its_target_is_cleared_too(m: Machine) -> None:
    m.fs().create(SPECS, guard=m.guard()).start()
    m.fs().exit_target(0)  # process 100 exited: DAMON turned kdamond 0 off
    with pytest.raises(DamonBusyError):
        m.fs().check_free()
    assert [r.outcome for r in m.guard().restore_all()] == ["restored"]
    m.fs().check_free()


def test_a_crash_while_create_configured_the_kdamonds_is_restored(m: Machine) -> None:
    fs = m.fs()
    guard = m.guard()
    guard.record_damon(DAMON_KDAMONDS, EXPECTED)
    fs._write(fs.nr_path, "2")
    fs._configure(0, SPECS[0])  # killed before kdamond 1 got its target
    with pytest.raises(UnavailableError, match="idle kdamond directories"):
        m.fs().check_free()
    assert [r.outcome for r in m.guard().restore_all()] == ["restored"]
    m.fs().check_free()


def test_a_normal_teardown_drops_the_record(m: Machine) -> None:
    guard = m.guard()
    session = m.fs().create(SPECS, guard=guard)
    session.start()
    assert guard.recorded(DAMON_KDAMONDS) is not None and m.state.exists()
    session.teardown()
    assert guard.records == [] and not m.state.exists()
    assert m.guard().pending() == []
    m.fs().check_free()


def test_a_failed_create_leaves_no_record(m: Machine) -> None:
    guard = m.guard()
    fs = m.fs()
    fs.fail["kdamonds/nr_kdamonds"] = 16  # EBUSY from the kernel: nothing was set up
    with pytest.raises(DamonBusyError):
        fs.create(SPECS, guard=guard)
    assert guard.records == [] and not m.state.exists()
    fs = m.fs()
    fs.fail["kdamonds/0/contexts/0/operations"] = 22  # EINVAL while configuring: torn down at once
    with pytest.raises(KernelError):
        fs.create(SPECS, guard=guard)
    assert guard.records == [] and not m.state.exists() and fs.nr_kdamonds() == 0


def test_a_teardown_that_stays_busy_keeps_the_record_for_a_later_restore(m: Machine) -> None:
    guard = m.guard()
    fs = m.fs()
    session = fs.create(SPECS, guard=guard)
    session.start()
    fs.busy_nr_writes = 10**6
    with pytest.raises(KernelError, match="teardown incomplete"):
        session.teardown()
    assert [r["kind"] for r in m.record()] == [DAMON]
    later = m.fs()  # the threads finished meanwhile
    restorer = KnobGuard(m.state, m.root, mounts=TableMounts(), damon=lambda _admin: later)
    later.busy_nr_writes = 3  # still finishing for a moment: the EBUSY retry waits
    assert [r.outcome for r in restorer.restore_all()] == ["restored"]
    assert later.nr_kdamonds() == 0 and not m.state.exists()


def test_a_restore_that_stays_busy_fails_and_keeps_the_record(m: Machine) -> None:
    m.fs().create(SPECS, guard=m.guard()).start()
    stuck = m.fs()
    stuck.busy_nr_writes = 10**6
    g = KnobGuard(m.state, m.root, mounts=TableMounts(), damon=lambda _admin: stuck)
    (res,) = g.restore_all()
    assert res.outcome == "failed" and "still busy" in res.error
    assert g.records == [KnobRecord(DAMON_KDAMONDS, "0", EXPECTED, DAMON)] and m.state.exists()


def test_someone_elses_kdamonds_found_instead_are_left_alone(m: Machine) -> None:
    m.fs().create(SPECS, guard=m.guard()).start()
    other = m.fs()  # after the crash, someone stops ours and sets up their own
    for k in range(2):
        other._write(other.root / "kdamonds" / str(k) / "state", "off")
    theirs = other.create([KdamondSpec("vaddr", 300)], replace_idle=True)
    theirs.start()
    g = m.guard()
    assert g.verify() == [Drift(DAMON_KDAMONDS, EXPECTED, "1: vaddr 300")]
    (res,) = g.restore_all()
    assert res.outcome == "gone" and "not the kdamonds tierctl set up" in res.error
    assert m.fs().kdamonds()[0].state == "on"  # theirs still runs
    assert not m.state.exists()

    # the same number of kdamonds, another target: not ours either
    theirs.teardown()
    m.fs().create(SPECS, guard=m.guard())
    swap = m.fs()
    swap._write(swap.root / "kdamonds/1/contexts/0/targets/0/pid_target", "300")
    (res,) = m.guard().restore_all()
    assert res.outcome == "gone" and "kdamond 1 targets pid 300" in res.error
    assert m.fs().nr_kdamonds() == 2


def test_verify_and_current_value_read_the_kdamonds(m: Machine) -> None:
    guard = m.guard()
    session = m.fs().create(SPECS, guard=guard)
    session.start()
    assert guard.verify() == []
    (rec,) = guard.records
    assert current_value(m.root, TableMounts(), rec, damon=m.fs) == EXPECTED
    session.teardown()
    assert current_value(m.root, TableMounts(), rec, damon=m.fs) == "0"
    assert current_value(m.root / "elsewhere", TableMounts(), rec, damon=m.fs) is None  # no DAMON sysfs


def test_a_guard_below_another_root_is_refused_before_anything_is_written(m: Machine, tmp_path: Path) -> None:
    fs = m.fs()
    wrong = KnobGuard(tmp_path / "k.json", tmp_path / "other", mounts=TableMounts(), damon=m.fs)
    with pytest.raises(InputError, match="would restore"):
        fs.create(SPECS, guard=wrong)
    assert fs.writes == [] and not (tmp_path / "k.json").exists()


def test_release_refuses_a_malformed_record(m: Machine) -> None:
    with pytest.raises(InputError, match="not a count of kdamonds"):
        m.fs().release("two")


def test_sys_root_places_the_admin_directory(m: Machine) -> None:
    fs = DamonSysfs(sys_root=m.root / "sys")
    assert fs.root == m.admin and fs.nr_path == m.root / DAMON_KDAMONDS.lstrip("/")
    assert DamonSysfs().nr_path == Path(DAMON_KDAMONDS)


@pytest.mark.parametrize("busy_writes", [1, 10_000])
def test_a_kdamond_busy_at_restore_is_retried_and_never_drops_the_record(
    m: Machine, busy_writes: int
) -> None:
    """EBUSY on a kdamond's state (another sysfs user holds DAMON's lock) is retried for the settle
    time; if it stays busy the restore fails and the record is kept, never reported gone and dropped
    while the kdamond still runs."""
    import errno

    m.fs().create(SPECS, guard=m.guard()).start()  # ... and the daemon is killed

    class Busy(FakeDamonSysfs):
        left = busy_writes

        def _write(self, path: Path, text: str) -> None:
            if self.rel(path) == "kdamonds/0/state" and Busy.left > 0:
                Busy.left -= 1
                self.fail[self.rel(path)] = errno.EBUSY
            super()._write(path, text)

    def busy_fs(admin: Path) -> FakeDamonSysfs:
        return Busy(admin, m.proc, clock=m.clock, sleep=m.clock.sleep)

    done = KnobGuard(m.state, m.root, mounts=TableMounts(), damon=busy_fs).restore_all()
    (r,) = done
    if busy_writes == 1:
        assert r.outcome == "restored" and m.record() == []
        assert m.fs().nr_kdamonds() == 0
    else:
        assert r.outcome == "failed" and "busy" in (r.error or "")
        assert m.record() != [] and (m.admin / "kdamonds/0/state").read_text().strip() == "on"
