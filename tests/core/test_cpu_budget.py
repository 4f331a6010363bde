"""The loop's CPU budget (token bucket), the cycle gate, and the sampler chain's hand-over."""

from __future__ import annotations

import numpy as np
import pytest

from tierctl.core.budget import CpuBudget, CycleGate
from tierctl.errors import InputError
from tierctl.samplers.base import Availability, Health, Targets, empty_raw
from tierctl.samplers.chain import Budget, SamplerChain


def test_bucket_starts_full_refills_at_the_share_and_caps_at_the_burst() -> None:
    b = CpuBudget(share=0.1, burst_s=1.0)
    assert b.allows(0.0) and b.tokens == 1.0
    b.charge(1.5)  # into debt
    assert not b.allows(0.0) and b.denied == 1
    assert not b.allows(4.0)  # 0.4 s of refill: still -0.1
    assert b.allows(6.0)  # +0.2 more: 0.1
    assert b.tokens == pytest.approx(0.1)
    b.refill(1000.0)
    assert b.tokens == 1.0  # never above the burst
    assert b.spent_s == 1.5


def test_long_run_share_is_bounded_whatever_each_step_costs() -> None:
    b = CpuBudget(share=0.05, burst_s=2.0)
    spent, t = 0.0, 0.0
    while t < 1000.0:  # a step that costs 0.3 s, attempted every second
        if b.allows(t):
            b.charge(0.3)
            spent += 0.3
        t += 1.0
    assert spent <= 0.05 * 1000 + 2.0 + 0.3


@pytest.mark.parametrize(("share", "burst"), [(0.0, 1.0), (1.5, 1.0), (0.1, -1.0)])
def test_bucket_rejects_bad_settings(share: float, burst: float) -> None:
    with pytest.raises(InputError):
        CpuBudget(share=share, burst_s=burst)


def test_bucket_rejects_negative_charges() -> None:
    with pytest.raises(InputError):
        CpuBudget().charge(-1.0)


def test_gate_decides_only_on_news_and_only_within_budget() -> None:
    g = CycleGate(CpuBudget(share=0.1, burst_s=1.0))
    assert not g.decide(0.0, news=0, changed=False) and g.quiet == 1  # nothing new: skip
    assert g.decide(0.0, news=64, changed=False)  # min_news samples outside the fast tier
    g.finish(2.0, moved=256)  # expensive, and it moved pages: keep going next cycle ...
    assert not g.decide(1.0, news=0, changed=False)  # ... unless the budget is in debt
    assert g.held == 1
    assert g.decide(12.0, news=0, changed=False)  # refilled; the move in progress goes on
    g.finish(0.0, moved=255)  # a trickle: not a move in progress
    assert not g.decide(13.0, news=0, changed=False)
    assert g.decide(13.0, news=0, changed=True)  # a changed page space is news too


def test_a_trickle_of_news_waits_for_more_or_for_trickle_s() -> None:
    g = CycleGate(CpuBudget(share=1.0, burst_s=5.0), min_news=64, trickle_s=10.0)
    assert g.decide(0.0, news=1, changed=False)  # the first news: nothing decided before
    assert not g.decide(1.0, news=1, changed=False)  # a stray sample: waits
    assert not g.decide(2.0, news=40, changed=False)
    assert g.decide(3.0, news=23, changed=False)  # 64 since the last decision: at once
    assert not g.decide(4.0, news=1, changed=False)
    assert not g.decide(12.9, news=0, changed=False)
    assert g.decide(13.0, news=0, changed=False)  # 10 s after the last decision, the one waiting
    assert not g.decide(30.0, news=0, changed=False)  # nothing waiting: nothing to decide


def test_gate_full_reads_first_then_at_most_every_interval_scaled_by_their_cost() -> None:
    g = CycleGate(CpuBudget(share=0.5, burst_s=2.0), refresh_s=30.0, full_share=0.01)
    assert g.full_read(0.0)  # the first cycle always reads
    assert not g.full_read(29.0, cost_s=0.1)
    assert g.full_read(30.0, cost_s=0.1)  # 0.1 s / 1 % = 10 s < 30 s: the interval
    assert not g.full_read(100.0, cost_s=1.0)  # 1 s / 1 % = 100 s since the last read
    assert g.full_read(130.0, cost_s=1.0)
    assert g.interval(1.0) == pytest.approx(100.0) and g.interval(0.0) == 30.0
    assert g.full_reads == 3


def test_gate_full_read_waits_for_half_a_burst_and_stale_reads_come_early() -> None:
    g = CycleGate(CpuBudget(share=0.01, burst_s=2.0), refresh_s=30.0, stale_s=2.0)
    assert g.full_read(0.0)
    g.finish(1.5, moved=0)  # tokens 0.5 < 1.0: a due read is held
    assert not g.full_read(31.0) and g.held == 1
    assert g.full_read(31.5, stale=True)  # known stale: a bucket not in debt is enough
    g2 = CycleGate(CpuBudget(share=0.5, burst_s=2.0), refresh_s=30.0, stale_s=2.0)
    assert g2.full_read(0.0)
    assert not g2.full_read(1.0, stale=True)  # too soon even when stale
    assert g2.full_read(2.5, stale=True)  # stale: no need to wait the full interval


def test_gate_rejects_bad_settings() -> None:
    with pytest.raises(InputError):
        CycleGate(CpuBudget(), refresh_s=0.0)
    with pytest.raises(InputError):
        CycleGate(CpuBudget(), full_share=0.0)


class Fake:
    def __init__(self, name: str, *, throttles: bool = False, ok: bool = True) -> None:
        self.name = name
        self.ok = ok
        self.throttles = throttles
        self.h = Health()
        self.started: list[Targets] = []
        self.retargeted: list[Targets] = []
        self.stopped = False
        self.throttled = 0

    def probe(self) -> Availability:
        return Availability(self.ok, "fake")

    def start(self, targets: Targets) -> None:
        self.started.append(targets)

    def drain(self) -> np.ndarray:
        return empty_raw()

    def stop(self) -> None:
        self.stopped = True

    def health(self) -> Health:
        return self.h

    def throttle(self) -> bool:
        self.throttled += 1
        return self.throttles

    def retarget(self, targets: Targets) -> None:
        self.retargeted.append(targets)


def test_watchdog_judges_over_a_window_and_throttles_up_to_the_limit() -> None:
    t = [0.0]
    s = Fake("s", throttles=True)
    chain = SamplerChain([s], budget=Budget(window_s=10.0, max_throttles=2), clock=lambda: t[0])
    chain.start(Targets())
    t[0] = 1.0
    s.h = Health(cpu_seconds=0.5)  # 50 % over 1 s: a burst, not judged yet
    assert chain.watchdog() == []
    t[0] = 10.0
    s.h = Health(cpu_seconds=0.6)  # 6 % over 10 s
    assert chain.watchdog() == ["s: rate lowered (user CPU 6.0% > 2.0%)"]
    t[0] = 20.0
    s.h = Health(cpu_seconds=1.2)
    assert chain.watchdog() == ["s: rate lowered (user CPU 6.0% > 2.0%)"]
    t[0] = 30.0
    s.h = Health(cpu_seconds=1.8)
    assert chain.watchdog()[0] == "s: detached (user CPU 6.0% > 2.0%)"
    assert s.throttled == 2 and s.stopped


def test_a_detached_sampler_hands_over_to_the_next_one() -> None:
    t = [0.0]
    a, b, c = Fake("a"), Fake("b", ok=False), Fake("c")
    chain = SamplerChain([a, b, c], max_running=1, clock=lambda: t[0])
    chain.start(Targets(pids=(7,)))
    assert chain.running == ["a"] and c.started == []
    t[0] = 1.0
    a.h = Health(cpu_seconds=0.5)  # cannot slow down: detached
    assert chain.watchdog() == [
        "a: detached (user CPU 50.0% > 2.0%)",
        "b: cannot take over (fake)",
        "c: started in its place",
    ]
    assert chain.running == ["c"] and c.started == [Targets(pids=(7,))]


def test_retarget_reaches_running_samplers_only() -> None:
    a, b = Fake("a"), Fake("b")
    chain = SamplerChain([a, b], max_running=1)
    chain.start(Targets(pids=(1,)))
    assert chain.retarget(Targets(pids=(1, 2))) == []
    assert a.retargeted == [Targets(pids=(1, 2))] and b.retargeted == []
