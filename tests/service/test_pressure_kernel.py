"""KernelPressureIO on the fake trees captured in the guest under pressure: the machine from
meminfo, a cgroup's charge, PSI some and refaults, and the actuators' writes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tierctl.kernel.cgroupfs import CgroupFS
from tierctl.kernel.procfs import ProcFS
from tierctl.service.pressure_kernel import KernelPressureIO

FIX = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture
def io(tmp_path: Path) -> KernelPressureIO:
    cg = tmp_path / "cgroup"
    shutil.copytree(FIX / "cgroupfs" / "guest-v2-pressure", cg)
    proc = tmp_path / "proc"
    shutil.copytree(FIX / "procfs" / "guest-pressure", proc)
    (cg / "tierctl-press" / "memory.reclaim").write_text("")
    (cg / "tierctl-press" / "cgroup.kill").write_text("")
    return KernelPressureIO(CgroupFS(cg, proc_root=proc, page_size=4096), ProcFS(proc))


def test_facts_come_from_the_captured_files(io: KernelPressureIO) -> None:
    m = io.machine()
    meminfo = (FIX / "procfs" / "guest-pressure" / "meminfo").read_text().split()
    assert m.total == int(meminfo[meminfo.index("MemTotal:") + 1]) * 1024
    f = io.cgroup("/tierctl-press")
    assert f.current == 67051520  # memory.current of the capture (README)
    assert f.psi_some == pytest.approx(6.99)
    assert f.refaults > 0


def test_actuators_write_the_kernel_files(io: KernelPressureIO) -> None:
    root = io.cgroups.root
    assert io.reclaim("/tierctl-press", 1 << 20) is True
    assert (root / "tierctl-press" / "memory.reclaim").read_text().strip() == str(1 << 20)
    io.kill("/tierctl-press")
    assert (root / "tierctl-press" / "cgroup.kill").read_text().strip() == "1"
