"""The control loop on the real kernel: a hot set left on the slow node comes back to DRAM."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from tests.vm.test_vm_nonbpf import Child
from tierctl.cli import main
from tierctl.kernel.knobs import KnobGuard
from tierctl.kernel.numa import NumaSyscalls
from tierctl.samplers.hint import SETTINGS
from tierctl.service.kernel_loop import KernelLoop, LoopConfig

pytestmark = pytest.mark.vm
PAGE = 4096


def test_loop_promotes_the_hot_set_and_leaves_the_cold_on_the_slow_node(
    tmp_path: Path, capsys, record_property
) -> None:
    c = Child(48, 16)  # 48 MiB touched once, 16 MiB that the child keeps touching
    loop = None
    try:
        assert main(["move", str(c.pid), "--to", "slow"]) == 0
        capsys.readouterr()
        # the move took the child's interpreter (its heap, stack, libraries) to the slow node too:
        # those pages are hot as well, and bringing them back is right
        rss_kib = next(
            int(ln.split()[1])
            for ln in Path(f"/proc/{c.pid}/status").read_text().splitlines()
            if ln.startswith("VmRSS:")
        )
        other = max(0, rss_kib * 1024 // PAGE - (64 << 20) // PAGE)
        state = tmp_path / "knobs.json"
        before = {k: KnobGuard(state).get(k) for k, _, _ in SETTINGS if Path(k).exists()}
        cfg = LoopConfig(samplers=["bpf-fault"], knob_state=state, hint_faults="on")
        loop = KernelLoop(lambda: [(c.pid, "")], cfg)
        loop.start()
        assert loop.chain.running == ["bpf-fault"]
        c.send("loop")
        reports = []
        numa = NumaSyscalls()
        hot = np.arange(c.hot[0], c.hot[1], PAGE, dtype=np.uint64)
        cold = np.arange(c.cold[0], c.cold[1], PAGE, dtype=np.uint64)
        # the outcome is asserted, not the speed: hint faults under TCG arrive at an uneven pace (a run
        # in CI had one promotion in its first 8 cycles), so up to 30 cycles, stopping once it is there
        for _ in range(30):
            time.sleep(1.0)
            reports.append(loop.cycle())
            if len(reports) >= 8 and float((numa.query(c.pid, hot) == 0).mean()) >= 0.9:
                break
        on_fast_hot = float((numa.query(c.pid, hot) == 0).mean())
        on_fast_cold = float((numa.query(c.pid, cold) == 0).mean())
    finally:
        if loop is not None:
            loop.stop()
        c.kill()
    promoted = sum(r.promoted for r in reports)
    record_property("hot_on_fast", on_fast_hot)
    record_property("cold_on_fast", on_fast_cold)
    record_property("promoted", promoted)
    record_property("cycles", len(reports))
    print(
        f"\nloop: hot set on DRAM {on_fast_hot:.1%}, cold {on_fast_cold:.1%}, promoted {promoted} "
        f"in {len(reports)} cycles ({other} interpreter pages were moved to slow with the child)"
    )
    assert on_fast_hot >= 0.9  # the hot 16 MiB is back in DRAM
    assert on_fast_cold <= 0.05  # the cold 48 MiB stayed on the slow node
    record_property("interpreter_pages", other)
    # no more than the hot set and the interpreter's own pages (one guest run promoted 4096 + 1279)
    assert promoted <= 1.1 * (16 << 20) // PAGE + other + 512
    assert {k: KnobGuard(state).get(k) for k in before} == before  # every knob restored
