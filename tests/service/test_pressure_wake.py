"""Waking the ladder between cycles (service/pressure_wake.py): a PSI trigger that fires, the machine
above its target, triggers that follow the managed cgroups, and what happens where none can be armed.
Socket pairs stand in for the kernel's pressure files (tests/kernel/test_kernel_psi.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kernel.test_kernel_psi import PRESS_CG, PRESS_PROC, FakeKernel
from tierctl.core.ladder import Machine
from tierctl.kernel.cgroupfs import CgroupFS
from tierctl.kernel.psi import PsiWatcher
from tierctl.service.pressure_wake import PressureWake, Wake

GIB = 1 << 30
SYSTEM = PRESS_PROC / "pressure" / "memory"
CG = PRESS_CG / "tierctl-press" / "memory.pressure"


@pytest.fixture
def kernel() -> Iterator[FakeKernel]:
    k = FakeKernel()
    yield k
    k.close()


def wake(kernel: FakeKernel, used: list[int]) -> PressureWake:
    fs = CgroupFS(PRESS_CG, proc_root=PRESS_PROC, page_size=4096)
    return PressureWake(
        PsiWatcher(fs, opener=kernel.open, privileged=True), lambda: Machine(16 * GIB, 16 * GIB - used[0])
    )


def test_a_trigger_wakes_the_ladder_and_the_target_does_too(kernel: FakeKernel) -> None:
    used = [8 * GIB]
    w = wake(kernel, used)
    assert kernel.written(SYSTEM) == b"some 100000 1000000\0"  # armed on the system at once
    assert w.wait(0.01, 0.95) is None  # quiet and under the target: nothing to do
    kernel.fire(SYSTEM)
    assert w.wait(1.0, 0.95) == Wake("psi", ("",))
    kernel.consume(SYSTEM)
    used[0] = int(15.5 * GIB)
    assert w.wait(0.01, 0.95) == Wake("target")
    assert w.counts == {"psi": 1, "target": 1}
    w.close()


def test_triggers_follow_the_managed_cgroups(kernel: FakeKernel) -> None:
    w = wake(kernel, [0])
    w.sync(["/tierctl-press"])
    assert w.watcher is not None and w.watcher.keys == ["", "tierctl-press"]
    kernel.fire(CG)
    assert w.wait(1.0, 0.95) == Wake("psi", ("/tierctl-press",))
    kernel.consume(CG)
    w.sync([])  # no longer managed: its trigger is closed; the system's stays
    assert w.watcher.keys == [""]
    kernel.vanish(SYSTEM)  # even the system's source going away does not raise
    assert w.wait(0.01, 0.95) is None and w.watcher.keys == []
    w.close()


def test_where_no_trigger_can_be_armed_the_target_still_wakes_and_the_reason_is_noted(tmp_path: Path) -> None:
    cg = tmp_path / "cgroup"
    (cg / "tierctl-press").mkdir(parents=True)
    (cg / "cgroup.controllers").write_text("cpu memory\n")
    fs = CgroupFS(cg, proc_root=tmp_path / "proc", page_size=4096)  # no pressure files at all
    slept: list[float] = []
    w = PressureWake(PsiWatcher(fs, privileged=True), lambda: Machine(100, 1), sleep=slept.append)
    w.sync(["/tierctl-press"])
    assert len(w.notes) == 2 and "no PSI trigger on the system" in w.notes[0]
    assert "/tierctl-press" in w.notes[1]
    w.sync(["/tierctl-press"])  # a refused cgroup is not retried every cycle
    assert len(w.notes) == 2
    assert w.wait(0.05, 0.95) == Wake("target") and slept == [0.05]
