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


def test_front_end_facts_by_kind_node_psi_and_events(io: KernelPressureIO) -> None:
    f = io.cgroup("/tierctl-press")
    assert f.kinds["anon"] == 6615040 and f.kinds["file"] == 52211712 and f.kinds["shmem"] == 41943040
    assert f.kinds["kernel"] == 8183808 and f.kinds["sock"] == 0 and f.kinds["dirty"] == 0
    assert f.nodes == {"0": 6615040 + 52187136, "1": 0}  # anon + file per node (memory.numa_stat)
    assert f.events["max"] == 8713 and f.events["oom_kill"] == 0
    assert f.psi is not None and f.psi.full_avg10 == pytest.approx(6.99)
    assert f.psi.some_total_us == 1761676
    psi = io.machine_psi()
    assert psi is not None and psi.some_total_us > 0


def test_a_kernel_without_numa_stat_or_events_still_gives_the_ladder_its_facts(io: KernelPressureIO) -> None:
    d = io.cgroups.root / "tierctl-press"
    (d / "memory.numa_stat").unlink()
    (d / "memory.events").unlink()
    f = io.cgroup("/tierctl-press")
    assert f.current == 67051520 and f.nodes == {} and f.events == {}
    assert f.kinds["anon"] == 6615040
