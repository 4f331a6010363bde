"""``hint_faults = "auto"``: NUMA hint faults only where nothing else shows accesses to resident pages;
knobs a killed run left set are restored before deciding."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tierctl.errors import InputError
from tierctl.kernel.topology import SysfsTopology
from tierctl.samplers import perf_addr
from tierctl.service.kernel_loop import KernelLoop, LoopConfig

FIXTURES = Path(__file__).parents[1] / "fixtures" / "topology"


def machine(tmp_path: Path, name: str, mode: int) -> SysfsTopology:
    root = tmp_path / name
    shutil.copytree(FIXTURES / name, root)
    (root / "proc/sys/kernel/numa_balancing").write_text(f"{mode}\n")
    return SysfsTopology(root / "sys", root / "proc", page_size=4096)


def loop(tmp_path: Path, topo: SysfsTopology, **cfg: object) -> KernelLoop:
    state = tmp_path / "knobs.json"
    return KernelLoop(
        lambda: [],
        LoopConfig(samplers=[], knob_state=state, **cfg),
        topology=topo,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("name", "mode", "hint", "why"),
    [
        ("guest-two-tier", 0, "auto", ""),  # slow tier, no PMU, balancing off: on
        ("guest-two-tier", 1, "auto", "NUMA balancing is on (mode 1)"),
        ("guest-two-tier", 2, "auto", "NUMA balancing is on (mode 2)"),
        ("host-single-node", 0, "auto", "no slow tier"),
        ("guest-two-tier", 1, "on", ""),  # asked for: on whatever the machine does
        ("guest-two-tier", 0, "off", "off"),
    ],
)
def test_auto_turns_hint_faults_on_only_where_nothing_else_shows_accesses(
    tmp_path: Path, name: str, mode: int, hint: str, why: str
) -> None:
    kl = loop(tmp_path, machine(tmp_path, name, mode), hint_faults=hint)
    assert why in kl.hint_reason if why else kl.hint_reason == ""
    assert kl.guard is not None and kl.hint_faults_on == (not why)
    names = [e.sampler.name for e in kl.chain._entries]
    assert names == (["bpf-fault"] if not why else [])  # the hint-fault sampler leads the chain


def test_a_pmu_with_address_sampling_makes_them_unneeded(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(perf_addr, "hardware_sampling", lambda *_: "Intel PEBS cpu/mem-loads/")
    kl = loop(tmp_path, machine(tmp_path, "guest-two-tier", 0))
    assert kl.hint_reason == "not needed: Intel PEBS cpu/mem-loads/ samples data addresses"


def test_hardware_sampling_reads_the_event_sources(tmp_path: Path) -> None:
    assert perf_addr.hardware_sampling(tmp_path) is None
    (tmp_path / "ibs_op").mkdir()
    (tmp_path / "ibs_op" / "type").write_text("11\n")
    assert perf_addr.hardware_sampling(tmp_path) == "AMD IBS op"
    (tmp_path / "cpu/events").mkdir(parents=True)
    (tmp_path / "cpu/events/mem-loads").write_text("event=0xcd,umask=0x1,ldlat=3\n")
    assert perf_addr.hardware_sampling(tmp_path) == "Intel PEBS cpu/mem-loads/"


def test_knobs_a_killed_run_left_are_restored_before_auto_decides(tmp_path: Path) -> None:
    """A run with hint faults on was SIGKILLed: mode 2 and rate limit 0 stayed. The next start puts
    the originals back first, then sees balancing off, and turns hint faults on again itself."""
    topo = machine(tmp_path, "guest-two-tier", 2)
    proc = topo.proc_root
    (proc / "sys/kernel/numa_balancing_promote_rate_limit_MBps").write_text("0\n")
    knob = str(proc / "sys/kernel/numa_balancing")
    rate = str(proc / "sys/kernel/numa_balancing_promote_rate_limit_MBps")
    records = [
        {"knob": rate, "original": "65536", "expected": "0"},
        {"knob": knob, "original": "0", "expected": "2"},
    ]
    (tmp_path / "knobs.json").write_text(json.dumps({"version": 1, "knobs": records}))
    kl = loop(tmp_path, topo)
    assert (proc / "sys/kernel/numa_balancing").read_text().strip() == "0"
    assert (proc / "sys/kernel/numa_balancing_promote_rate_limit_MBps").read_text().strip() == "65536"
    assert [line.split(":")[0] for line in kl.restored_at_start] == [knob, rate]
    assert kl.hint_reason == ""


def test_a_bad_hint_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="must be auto, on or off"):
        loop(tmp_path, machine(tmp_path, "guest-two-tier", 0), hint_faults="sometimes")
