"""Page index lookups and the chain -> controller bridge, end to end on the simulated machine."""

from __future__ import annotations

import numpy as np

from tierctl.core.controller import Controller
from tierctl.core.heat import HeatModel
from tierctl.core.page_index import PageIndex
from tierctl.core.policies.tierctl import TierctlPolicy
from tierctl.samplers.base import RAW_SAMPLE_DTYPE, Availability, Health, Targets
from tierctl.samplers.bridge import ChainSampler
from tierctl.samplers.chain import SamplerChain
from tierctl.sim.machine import MachineSpec, SimMachine, SimMemory, SimMover


def test_lookup_and_locate_round_trip() -> None:
    pid = np.array([7, 7, 7, 9, 9])
    vpn = np.array([100, 101, 5000, 100, 2**39])
    idx = PageIndex.build(pid, vpn)
    assert len(idx) == 5
    found = idx.lookup(np.array([9, 7, 7, 8]), np.array([100, 101, 102, 100]))
    assert (found[:2] >= 0).all() and found[2:].tolist() == [-1, -1]
    p, a = idx.locate(found[:2])
    assert p.tolist() == [9, 7] and a.tolist() == [100 << 12, 101 << 12]
    assert idx.pids().tolist() == [7, 9]


class Source:
    name = "fake"

    def __init__(self) -> None:
        self.batches: list[np.ndarray] = []

    def probe(self) -> Availability:
        return Availability(True, "fake")

    def start(self, targets: Targets) -> None:
        pass

    def drain(self) -> np.ndarray:
        return self.batches.pop(0) if self.batches else np.zeros(0, RAW_SAMPLE_DTYPE)

    def stop(self) -> None:
        pass

    def health(self) -> Health:
        return Health()


def test_controller_promotes_what_the_chain_sees_hot() -> None:
    # 8 pages of pid 42 at vpn 1000..1007; the fast tier holds 4, first touch put 0..3 there
    index = PageIndex.build(np.full(8, 42), np.arange(1000, 1008))
    machine = SimMachine(MachineSpec(fast_pages=4), 8)
    machine.touch(np.arange(8))
    src = Source()
    chain = SamplerChain([src])
    chain.start(Targets(pids=(42,)))
    sampler = ChainSampler(chain, lambda: index, weight=100.0)
    ctl = Controller(
        sampler=sampler,
        memory=SimMemory(machine),
        policy=TierctlPolicy(),
        mover=SimMover(machine),
        heat=HeatModel(8),
        budget_pages=8,
    )
    hot = np.zeros(5, RAW_SAMPLE_DTYPE)
    hot["pid"], hot["vpn"], hot["count"] = 42, [1004, 1005, 1006, 1007, 999], 50  # 999: untracked
    for now in range(1, 6):
        src.batches.append(hot.copy())
        ctl.cycle(now)
    assert machine.node[4:].tolist() == [0, 0, 0, 0]
    assert sampler.untracked == 5
