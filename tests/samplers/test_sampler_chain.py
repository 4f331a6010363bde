"""The sampler chain keeps the loop alive whatever one sampler does."""

from __future__ import annotations

import numpy as np
import pytest

from tierctl.errors import InputError, UnavailableError
from tierctl.samplers.base import RAW_SAMPLE_DTYPE, Availability, Health, Targets
from tierctl.samplers.chain import Budget, SamplerChain
from tierctl.samplers.registry import SAMPLERS, make_sampler


class Fake:
    def __init__(
        self,
        name: str,
        *,
        ok: bool = True,
        start_error: Exception | None = None,
        rows: int = 3,
        fail_on_drain: int | None = None,
        can_throttle: bool = False,
    ) -> None:
        self.name = name
        self.ok = ok
        self.start_error = start_error
        self.rows = rows
        self.fail_on_drain = fail_on_drain
        self.can_throttle = can_throttle
        self.drains = 0
        self.stopped = False
        self.h = Health()
        self.throttles = 0

    def probe(self) -> Availability:
        return Availability(self.ok, "fine" if self.ok else f"{self.name} cannot work here")

    def start(self, targets: Targets) -> None:
        if self.start_error:
            raise self.start_error

    def drain(self) -> np.ndarray:
        self.drains += 1
        if self.fail_on_drain is not None and self.drains >= self.fail_on_drain:
            raise RuntimeError("map vanished")
        out = np.zeros(self.rows, dtype=RAW_SAMPLE_DTYPE)
        out["vpn"] = np.arange(self.rows)
        out["count"] = 1
        return out

    def stop(self) -> None:
        self.stopped = True

    def health(self) -> Health:
        return self.h

    def throttle(self) -> bool:
        self.throttles += 1
        return self.can_throttle


def by_name(chain: SamplerChain) -> dict[str, tuple[str, str]]:
    return {s.name: (s.state, s.reason) for s in chain.status()}


def test_start_uses_what_works_and_says_why_the_rest_does_not() -> None:
    chain = SamplerChain(
        [
            Fake("a", ok=False),
            Fake("b", start_error=UnavailableError("attach refused", "tracepoint")),
            Fake("c", start_error=ValueError("bug")),
            Fake("d"),
        ]
    )
    chain.start(Targets())
    st = by_name(chain)
    assert st["a"] == ("unavailable", "a cannot work here")
    assert st["b"] == ("unavailable", "start failed: tracepoint: attach refused")
    assert st["c"] == ("unavailable", "start crashed: ValueError: bug")
    assert st["d"][0] == "running"
    assert chain.running == ["d"]


def test_a_sampler_failing_mid_run_is_detached_and_the_loop_goes_on() -> None:
    bad, good = Fake("bad", fail_on_drain=2), Fake("good", rows=5)
    chain = SamplerChain([bad, good])
    chain.start(Targets())
    assert chain.drain().shape[0] == 8
    assert chain.drain().shape[0] == 5  # bad raised: detached, good still delivers
    assert chain.drain().shape[0] == 5
    assert bad.stopped and by_name(chain)["bad"] == (
        "detached",
        "failed during drain: RuntimeError: map vanished",
    )
    assert chain.running == ["good"]


def test_wrong_dtype_is_a_failure_too() -> None:
    f = Fake("f")
    f.drain = lambda: np.zeros(2, dtype=np.int64)  # type: ignore[method-assign]
    chain = SamplerChain([f])
    chain.start(Targets())
    assert chain.drain().shape[0] == 0
    assert by_name(chain)["f"][0] == "detached"


def test_watchdog_lowers_the_rate_then_detaches() -> None:
    t = [0.0]
    s = Fake("s", can_throttle=True)
    chain = SamplerChain([s], budget=Budget(cpu_share=0.02, bpf_share=0.02), clock=lambda: t[0])
    chain.start(Targets())
    t[0] = 10.0
    s.h = Health(cpu_seconds=1.0)  # 10 % of a core
    assert chain.watchdog() == ["s: rate lowered (user CPU 10.0% > 2.0%)"]
    t[0] = 20.0
    s.h = Health(cpu_seconds=1.1)  # 1 %: within budget now
    assert chain.watchdog() == []
    t[0] = 30.0
    s.h = Health(cpu_seconds=1.1, bpf_run_ns=int(0.5e9))  # 5 % of a core in BPF
    assert chain.watchdog() == ["s: detached (BPF time 5.0% > 2.0% of a core)"]
    assert by_name(chain)["s"] == ("detached", "over budget: BPF time 5.0% > 2.0% of a core")


def test_watchdog_detaches_what_cannot_slow_down() -> None:
    t = [0.0]
    s = Fake("s", can_throttle=False)
    chain = SamplerChain([s], clock=lambda: t[0])
    chain.start(Targets())
    t[0] = 1.0
    s.h = Health(cpu_seconds=0.5)
    assert chain.watchdog() == ["s: detached (user CPU 50.0% > 2.0%)"]
    assert s.stopped


def test_max_running_keeps_the_preferred_only() -> None:
    chain = SamplerChain([Fake("a", ok=False), Fake("b"), Fake("c")], max_running=1)
    chain.start(Targets())
    assert chain.running == ["b"]
    assert by_name(chain)["c"] == ("idle", "not needed: a preferred sampler is running")


def test_stop_stops_the_running_ones() -> None:
    a, b = Fake("a"), Fake("b", ok=False)
    chain = SamplerChain([a, b])
    chain.start(Targets())
    chain.stop()
    assert a.stopped and not b.stopped
    assert by_name(chain)["a"][0] == "stopped"


def test_registry_names_and_hint() -> None:
    assert list(SAMPLERS) == ["bpf-perf", "bpf-fault", "damon", "idle"]
    with pytest.raises(InputError, match="did you mean 'damon'"):
        make_sampler("daemon")


def test_start_up_cost_is_not_charged_to_the_watchdog() -> None:
    t = [0.0]
    s = Fake("s")
    s.h = Health(cpu_seconds=5.0)  # compiling a BPF program at start took 5 s of CPU
    chain = SamplerChain([s], clock=lambda: t[0])
    chain.start(Targets())
    t[0] = 10.0
    s.h = Health(cpu_seconds=5.05)  # 0.5 % of a core since start
    assert chain.watchdog() == []
    assert chain.running == ["s"]
