"""The simulated machine's memory model for the pressure ladder (tierctl/sim/pressure_sim.py)."""

from __future__ import annotations

import numpy as np
import pytest

from tierctl.errors import UnavailableError
from tierctl.sim.live import SimPlatform
from tierctl.sim.workloads import make_workload


def platform(seed: int = 0) -> SimPlatform:
    p = SimPlatform(make_workload("multi-cgroup", seed=seed, epochs=10), seed=seed)
    p.machine.touch(np.arange(p.machine.n_pages))  # every page present
    return p


def test_reclaim_frees_page_cache_only_and_says_when_it_cannot_cover_the_ask() -> None:
    io = platform().pressure_io()
    path = io.paths[0]
    before = io.cgroup(path)
    cache = before.kinds["file"]
    assert cache is not None and cache > 0
    assert io.reclaim(path, cache // 2) is True
    assert io.cgroup(path).current == before.current - cache // 2
    assert io.reclaim(path, cache) is False  # only what was left of the cache
    after = io.cgroup(path)
    assert after.kinds["file"] == 0 and after.kinds["anon"] == before.kinds["anon"]


def test_the_model_is_calm_deterministic_and_cannot_kill() -> None:
    a, b = platform(3).pressure_io(), platform(3).pressure_io()
    for _ in range(200):
        ma, mb = a.machine(), b.machine()
    assert ma == mb and a.machine_psi() == b.machine_psi()
    assert ma.used / ma.total < 0.85  # caches at their cap: still under the probing threshold
    assert 0 <= a.machine_psi().some_avg10 < 5
    with pytest.raises(UnavailableError, match="cannot be killed"):
        a.kill(a.paths[0])
    with pytest.raises(UnavailableError, match="no such simulated cgroup"):
        a.cgroup("/nope.service")
