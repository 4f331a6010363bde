"""The fault sampler with NUMA hint faults on: it sees re-touched slow-tier pages, not idle ones."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.vm.test_vm_nonbpf import Child
from tierctl.cli import main
from tierctl.kernel.knobs import KnobGuard
from tierctl.kernel.procfs import ProcFS
from tierctl.samplers.base import Targets
from tierctl.samplers.bpf_layout import SampleFlag
from tierctl.samplers.fault import FaultSampler
from tierctl.samplers.hint import SETTINGS

pytestmark = pytest.mark.vm
PAGE = 4096


def test_hint_faults_sample_the_retouched_slow_region_only(tmp_path: Path, capsys, record_property) -> None:
    c = Child(16, 16)  # 16 MiB touched once (cold), 16 MiB touched again on request (hot)
    try:
        assert main(["move", str(c.pid), "--to", "slow"]) == 0
        capsys.readouterr()
        guard = KnobGuard(tmp_path / "knobs.json")
        before = {k: guard.get(k) for k, _, _ in SETTINGS if Path(k).exists()}
        vmstat0 = ProcFS().tiering_counters()
        sampler = FaultSampler(hint_faults=guard)
        sampler.start(Targets(pids=(c.pid,)))
        try:
            c.touch(6)
            rows = sampler.drain()
        finally:
            sampler.stop()
        vmstat1 = ProcFS().tiering_counters()
    finally:
        pid = c.pid
        c.kill()
    rows = rows[rows["pid"] == pid]
    addr = rows["vpn"].astype(np.int64) << 12
    hot = (addr >= c.hot[0]) & (addr < c.hot[1])
    cold = (addr >= c.cold[0]) & (addr < c.cold[1])
    hot_pages = int(np.count_nonzero(hot))
    record_property("hot_pages_sampled", hot_pages)
    record_property("cold_pages_sampled", int(np.count_nonzero(cold)))
    record_property("numa_hint_faults", vmstat1["numa_hint_faults"] - vmstat0["numa_hint_faults"])
    assert hot_pages >= 0.9 * (16 << 20) // PAGE  # nearly every re-touched slow page was sampled
    assert not cold.any()  # untouched slow pages stay unsampled
    # a NUMA hint fault hits a PROT_NONE PTE, whose hardware present bit is clear on x86: the error
    # code says user-mode, not-present (no PROT bit) — here writes, as the child writes
    flags = rows["flags"][hot]
    want = int(SampleFlag.FAULT | SampleFlag.USER | SampleFlag.WRITE)
    assert ((flags & want) == want).all() and not (flags & int(SampleFlag.PROT)).any()
    assert vmstat1["pgpromote_success"] == vmstat0["pgpromote_success"]  # the kernel promoted nothing
    assert {k: guard.get(k) for k in before} == before and guard.pending() == []  # knobs restored


def test_without_bcc_the_chain_falls_back_to_damon_and_says_why(tmp_path: Path) -> None:
    from tests.vm.test_vm_nonbpf import Child as Toucher
    from tierctl.samplers.chain import SamplerChain
    from tierctl.samplers.damon import DamonSampler
    from tierctl.samplers.perf_addr import PerfAddrSampler

    no_bcc = (str(tmp_path),)  # bcc "removed": its package is found nowhere
    c = Toucher(8, 8)
    chain = SamplerChain(
        [PerfAddrSampler(bcc_search=no_bcc), FaultSampler(bcc_search=no_bcc), DamonSampler()], max_running=1
    )
    try:
        chain.start(Targets(pids=(c.pid,)))
        status = {s.name: s for s in chain.status()}
        assert status["bpf-perf"].state == status["bpf-fault"].state == "unavailable"
        assert status["bpf-fault"].reason.startswith("bcc is not installed")
        assert chain.running == ["damon"]
        # DAMON reports the latest aggregation interval: drain while the child is touching, with a
        # busy second process (under TCG accessed bits are set on TLB refills; see test_vm_nonbpf)
        spinner = subprocess.Popen([sys.executable, "-c", "while 1: pass"])
        c.send("loop")
        rows = np.zeros(0, dtype=chain.drain().dtype)
        for _ in range(10):
            time.sleep(0.5)
            rows = np.concatenate([rows, chain.drain()])
        spinner.kill()
        spinner.wait()
    finally:
        chain.stop()
        c.kill()
    assert rows.shape[0] > 0 and set(rows["pid"].tolist()) == {c.proc.pid}
