"""KnobGuard's damon records: their format, validation when loaded, and the records of dead processes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.fixtures.damon.fake_damon import FakeDamonSysfs, make_admin_tree
from tests.kernel.test_knobs import TableMounts
from tierctl.errors import InputError, TierctlError
from tierctl.kernel.damon import DAMON_ADMIN, KdamondSpec
from tierctl.kernel.knobs import (
    DAMON,
    DAMON_KDAMONDS,
    KnobGuard,
    KnobRecord,
    check_record,
    format_kdamonds,
    parse_kdamonds,
    restore_dead_records,
)
from tierctl.kernel.roots import LIVE_ROOT

NB = "/proc/sys/kernel/numa_balancing"


def test_the_damon_knob_is_the_adapters_nr_kdamonds() -> None:
    assert str(DAMON_ADMIN / "kdamonds" / "nr_kdamonds") == DAMON_KDAMONDS


@pytest.mark.parametrize(
    "kdamonds",
    [(), (("vaddr", 4242),), (("vaddr", 1), ("paddr", None), ("fvaddr", 77))],
)
def test_format_and_parse_round_trip(kdamonds: tuple[tuple[str, int | None], ...]) -> None:
    assert parse_kdamonds(format_kdamonds(kdamonds)) == kdamonds


def test_the_format_is_readable() -> None:
    assert format_kdamonds([("vaddr", 4242), ("paddr", None)]) == "2: vaddr 4242, paddr"
    assert format_kdamonds([]) == "0"


@pytest.mark.parametrize(
    "text", ["", "2", "1: vaddr 1, vaddr 2", "1: vaddr x", "1: vaddr 1 2", "x: vaddr", "-1"]
)
def test_parse_refuses_what_format_does_not_write(text: str) -> None:
    with pytest.raises(ValueError):
        parse_kdamonds(text)


def write_record(state: Path, *entries: dict[str, str]) -> None:
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps({"version": 1, "knobs": list(entries)}))


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        (
            {"knob": "/sys/kernel/mm/other", "original": "0", "expected": "1: vaddr 5", "kind": DAMON},
            "a damon",
        ),
        ({"knob": DAMON_KDAMONDS, "original": "0", "expected": "two", "kind": DAMON}, "not a count"),
        (
            {"knob": DAMON_KDAMONDS, "original": "0", "expected": "1: vaddr 5", "kind": "damon2"},
            "unknown kind",
        ),
    ],
)
def test_a_damon_record_that_cannot_be_restored_is_set_aside(tmp_path: Path, entry: dict, why: str) -> None:
    state = tmp_path / "knobs.json"
    write_record(state, entry)
    g = KnobGuard(state, tmp_path)
    assert g.records == [] and g.problem is not None and why in g.problem
    assert not state.exists() and state.with_name("knobs.json.corrupt").exists()


def test_a_damon_record_loads_and_is_written_back_the_same(tmp_path: Path) -> None:
    state = tmp_path / "knobs.json"
    entry = {"knob": DAMON_KDAMONDS, "original": "0", "expected": "1: vaddr 5", "kind": DAMON}
    write_record(state, entry)
    g = KnobGuard(state, tmp_path)
    assert g.problem is None and g.records == [KnobRecord(DAMON_KDAMONDS, "0", "1: vaddr 5", DAMON)]
    g.record_damon(DAMON_KDAMONDS, "1: vaddr 6")  # replaced: create() found DAMON free
    assert json.loads(state.read_text())["knobs"] == [{**entry, "expected": "1: vaddr 6"}]
    assert g.drop(DAMON_KDAMONDS) and not g.drop(DAMON_KDAMONDS)
    assert not state.exists()


def test_record_damon_checks_what_it_records(tmp_path: Path) -> None:
    g = KnobGuard(tmp_path / "k.json", tmp_path)
    with pytest.raises(ValueError):
        g.record_damon(DAMON_KDAMONDS, "2: vaddr 1")
    with pytest.raises(ValueError):
        g.record_damon(NB, "1: vaddr 1")
    assert not (tmp_path / "k.json").exists()


def test_a_value_and_a_damon_record_do_not_mix(tmp_path: Path) -> None:
    knob = tmp_path / DAMON_KDAMONDS.lstrip("/")
    knob.parent.mkdir(parents=True)
    knob.write_text("0\n")
    g = KnobGuard(tmp_path / "k.json", tmp_path)
    g.record_damon(DAMON_KDAMONDS, "1: vaddr 1")
    with pytest.raises(InputError, match="recorded as a damon"):
        g.set(DAMON_KDAMONDS, 3)


def test_check_record_accepts_the_three_kinds() -> None:
    check_record(KnobRecord(NB, "1", "2"))
    check_record(KnobRecord("/sys/kernel/tracing", "", "tracefs", "mount"))
    check_record(KnobRecord(DAMON_KDAMONDS, "0", "1: paddr", DAMON))


def test_the_records_of_dead_processes_are_restored_and_the_living_ones_kept(tmp_path: Path) -> None:
    root, run, proc = tmp_path / "root", tmp_path / "run", tmp_path / "proc"
    (proc / "100").mkdir(parents=True)
    admin = make_admin_tree(root / DAMON_KDAMONDS.lstrip("/").removesuffix("/kdamonds/nr_kdamonds"))

    def fs(a: Path) -> FakeDamonSysfs:
        return FakeDamonSysfs(a, proc)

    dead = 2**22 + 12345  # above pid_max's default: no such process
    while (Path("/proc") / str(dead)).exists():
        dead += 1
    crashed = KnobGuard(run / f"damon-knobs.{dead}.json", root, mounts=TableMounts(), damon=fs)
    fs(admin).create([KdamondSpec("vaddr", 100)], guard=crashed).start()
    alive = run / "damon-knobs.1.json"  # pid 1 runs
    alive.write_text((run / f"damon-knobs.{dead}.json").read_text())
    own = run / f"damon-knobs.{os.getpid()}.json"
    own.write_text(alive.read_text())

    done = restore_dead_records(run, "damon-knobs.", root=root, mounts=TableMounts(), damon=fs)
    assert [(r.knob, r.outcome) for r in done] == [(DAMON_KDAMONDS, "restored")]
    assert fs(admin).nr_kdamonds() == 0
    assert sorted(p.name for p in run.iterdir()) == sorted([alive.name, own.name])
    assert restore_dead_records(tmp_path / "missing", "damon-knobs.") == []


def test_the_guard_defaults_to_the_live_root(tmp_path: Path) -> None:
    assert KnobGuard(tmp_path / "k.json").root == LIVE_ROOT


def test_a_record_that_cannot_be_saved_is_not_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed save leaves the guard's records as they were: it never reports a knob it did not
    record (the metrics' knobs_set, a drift) because the disk refused the record."""
    from tierctl.kernel import knobs

    guard = KnobGuard(tmp_path / "state" / "knobs.json", tmp_path, mounts=TableMounts())

    def full(path: Path, data: bytes) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(knobs, "write_atomic", full)
    with pytest.raises(TierctlError):
        guard.record_damon(DAMON_KDAMONDS, "1: vaddr 4242")
    assert guard.records == [] and guard.verify() == []
    nb = tmp_path / NB.lstrip("/")
    nb.parent.mkdir(parents=True)
    nb.write_text("0\n")
    with pytest.raises(TierctlError):
        guard.set(NB, "2")
    assert guard.records == [] and nb.read_text() == "0\n"  # not written either
