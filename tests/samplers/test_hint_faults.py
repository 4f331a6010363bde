"""Turning NUMA hint faults on for sampling, and back off, against a fake /proc + debugfs tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from tierctl.errors import UnavailableError
from tierctl.kernel.knobs import BPF_STATS_ENABLED, KnobGuard
from tierctl.samplers.hint import NUMA_BALANCING, PROMOTE_RATE_LIMIT, SCAN, SETTINGS, HintFaults


def tree(root: Path, *, debugfs: bool = True, sysctl: bool = True) -> None:
    files = {NUMA_BALANCING: "1", PROMOTE_RATE_LIMIT: "65536"} if sysctl else {NUMA_BALANCING: "1"}
    if debugfs:
        files |= {
            f"{SCAN}/scan_delay_ms": "1000",
            f"{SCAN}/scan_period_min_ms": "1000",
            f"{SCAN}/scan_period_max_ms": "60000",
            f"{SCAN}/scan_size_mb": "256",
        }
    for knob, value in files.items():
        p = root / knob.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(value + "\n")


def read(root: Path, knob: str) -> str:
    return (root / knob.lstrip("/")).read_text().strip()


def test_apply_sets_every_knob_mode_last_and_restore_puts_them_back(tmp_path: Path) -> None:
    tree(tmp_path)
    guard = KnobGuard(tmp_path / "state.json", root=tmp_path)
    hint = HintFaults(guard)
    assert hint.apply() == []
    assert [r.knob for r in guard.records][-1] == NUMA_BALANCING  # recorded (and set) last
    for knob, value, _ in SETTINGS:
        assert read(tmp_path, knob) == value
    hint.restore()
    assert read(tmp_path, NUMA_BALANCING) == "1" and read(tmp_path, PROMOTE_RATE_LIMIT) == "65536"
    assert read(tmp_path, f"{SCAN}/scan_size_mb") == "256"
    assert guard.pending() == []


def test_without_debugfs_scan_tuning_is_skipped_and_said(tmp_path: Path) -> None:
    tree(tmp_path, debugfs=False)
    hint = HintFaults(KnobGuard(tmp_path / "state.json", root=tmp_path))
    notes = hint.apply()
    assert len(notes) == 4 and all("kernel default scan pace" in n for n in notes)
    assert read(tmp_path, NUMA_BALANCING) == "2"
    hint.restore()
    assert read(tmp_path, NUMA_BALANCING) == "1"


def test_missing_required_knob_restores_and_says_which(tmp_path: Path) -> None:
    tree(tmp_path, sysctl=False)  # a kernel without the promote rate limit (before 6.1)
    guard = KnobGuard(tmp_path / "state.json", root=tmp_path)
    with pytest.raises(UnavailableError, match="cannot set up NUMA hint faults") as err:
        HintFaults(guard).apply()
    assert PROMOTE_RATE_LIMIT in str(err.value)
    assert read(tmp_path, NUMA_BALANCING) == "1" and guard.pending() == []


def test_restore_leaves_the_other_knobs_of_a_shared_guard_set(tmp_path: Path) -> None:
    """The daemon's one guard also holds the BPF host's sysctl (and tracefs mount): the hint-fault
    sampler stopping (watchdog, failed apply, its own stop) must not restore them under the BPF samplers."""
    tree(tmp_path)
    stats = tmp_path / BPF_STATS_ENABLED.lstrip("/")
    stats.write_text("0\n")
    guard = KnobGuard(tmp_path / "state.json", root=tmp_path)
    guard.set(BPF_STATS_ENABLED, 1)  # a BPF sampler's host, before the hint faults
    hint = HintFaults(guard)
    hint.apply()
    out = hint.restore()
    assert [r.knob for r in out] == [k for k, _, _ in reversed(SETTINGS)]
    assert all(r.outcome == "restored" for r in out)
    assert read(tmp_path, NUMA_BALANCING) == "1" and read(tmp_path, PROMOTE_RATE_LIMIT) == "65536"
    assert stats.read_text() == "1\n"
    assert [r.knob for r in guard.pending()] == [BPF_STATS_ENABLED]
    guard.restore_all()
    assert stats.read_text() == "0\n" and guard.pending() == []


def test_a_failed_apply_leaves_the_other_knobs_of_a_shared_guard_set(tmp_path: Path) -> None:
    tree(tmp_path, sysctl=False)
    stats = tmp_path / BPF_STATS_ENABLED.lstrip("/")
    stats.write_text("0\n")
    guard = KnobGuard(tmp_path / "state.json", root=tmp_path)
    guard.set(BPF_STATS_ENABLED, 1)
    with pytest.raises(UnavailableError):
        HintFaults(guard).apply()
    assert stats.read_text() == "1\n" and [r.knob for r in guard.pending()] == [BPF_STATS_ENABLED]
