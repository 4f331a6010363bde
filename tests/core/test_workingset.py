"""The working-set probe: steps while quiet, stops when PSI or refaults rise, backs off, floors."""

from __future__ import annotations

import pytest

from tierctl.core.workingset import MIB, ProbeLimits, Signals, WorkingSetProbe
from tierctl.errors import InputError


def run(probe: WorkingSetProbe, need: int, start: int, seconds: int = 600) -> list[int]:
    """A workload that needs ``need`` bytes: reclaim below it makes it refault and stall."""
    current, trace = start, []
    for t in range(seconds):
        short = max(0, need - current)
        s = Signals(current, psi_some=10.0 * short / need, refaults_per_s=short / 4096)
        n = probe.step(float(t), s)
        current -= n
        if short:  # it faults back what it needs
            current = min(need, current + short // 2 + 4096)
        trace.append(current)
    return trace


def test_the_probe_finds_the_working_set_and_stays_near_it() -> None:
    probe = WorkingSetProbe(ProbeLimits(step=32 * MIB, share=0.1, interval_s=1.0, backoff_s=30.0))
    trace = run(probe, need=300 * MIB, start=1000 * MIB)
    assert probe.estimate is not None and abs(probe.estimate - 300 * MIB) <= 40 * MIB
    assert probe.ended == "pressure"
    assert min(trace) >= 300 * MIB - 40 * MIB  # never far below what it needs


def test_no_steps_while_pressured_or_backing_off_and_at_most_one_per_interval() -> None:
    probe = WorkingSetProbe(ProbeLimits(interval_s=5.0, backoff_s=60.0))
    quiet = Signals(512 * MIB, psi_some=0.0, refaults_per_s=0.0)
    loud = Signals(512 * MIB, psi_some=5.0, refaults_per_s=0.0)
    assert probe.step(0.0, quiet) > 0
    assert probe.step(1.0, quiet) == 0  # within the interval
    assert probe.step(2.0, loud) == 0 and probe.estimate == 512 * MIB
    assert probe.step(30.0, quiet) == 0  # backing off
    assert probe.step(62.5, quiet) > 0


def test_the_floor_is_never_crossed_and_sets_the_estimate() -> None:
    probe = WorkingSetProbe(ProbeLimits(interval_s=0.0), floor=100 * MIB)
    current = 120 * MIB
    for t in range(50):
        current -= probe.step(float(t), Signals(current, 0.0, 0.0))
        assert current >= 100 * MIB
    assert probe.estimate == 100 * MIB and probe.ended == "floor"


def test_nothing_reclaimable_ends_the_probe() -> None:
    probe = WorkingSetProbe()
    s = Signals(64 * MIB, 0.0, 0.0)
    assert probe.step(0.0, s) > 0
    probe.stuck(0.5, s)
    assert probe.estimate == 64 * MIB and probe.step(10.0, s) == 0


def test_limits_are_checked() -> None:
    with pytest.raises(InputError):
        ProbeLimits(share=0.0)
