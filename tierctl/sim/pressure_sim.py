"""The pressure ladder's facts and actuators on the simulated two-tier machine (the demo, the TUI's
tests): a small memory model around the trace's pages, deterministic by seed.

Each cgroup's anonymous memory is its trace pages present on the machine (by node, as placed); beside
it each holds a page cache that grows a little every cycle up to a share of its anonymous memory and
is what ``reclaim`` frees (anonymous pages are the trace's: nothing frees them). RAM is sized so that
the machine stays well under the ladder's default target: the demo shows the figures, not a crisis.
PSI is simulated (small, smooth, seeded), and says so in the platform's docs; memory.events are 0.
A simulated workload cannot be killed (its trace goes on): ``kill`` is an UnavailableError naming it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tierctl.core.ladder import Machine
from tierctl.errors import UnavailableError
from tierctl.samplers.stall import StallReport
from tierctl.service.pressure import CgroupFacts, PsiFigures
from tierctl.sim.machine import SimMachine

CACHE_START = 0.05  # page cache at the start, as a share of the cgroup's trace pages
CACHE_MAX = 0.25  # ... and at most
CACHE_GROWTH = 0.004  # ... growing by this share per cycle
ANON_SHARE = 0.55  # the trace's pages are this share of the machine's RAM
KERNEL_SHARE = 0.015  # kernel memory (slab, page tables) per byte of anon
OTHER_SHARE = 0.04  # memory outside the managed cgroups, of RAM
OWN_CGROUP = "/system.slice/tierctl.service"


@dataclass
class _Psi:
    some: float = 0.0
    some_total_us: int = 0
    full_total_us: int = 0


class SimStalls:
    """No reclaim stalls or OOM kills on a simulated machine (its memory never runs out)."""

    def drain(self) -> StallReport:
        return StallReport(source="sim", exact=True, seconds=0.0)

    def watchdog(self) -> list[str]:
        return []

    def stop(self) -> None:
        return None


class SimPressureIO:
    def __init__(
        self, machine: SimMachine, paths: Sequence[str], *, seed: int = 0, cycle_s: float = 1.0
    ) -> None:
        self.machine_ = machine
        self.paths = [p.rstrip("/") or "/" for p in paths]
        self.page = machine.spec.page_size
        self.cycle_us = int(cycle_s * 1e6)
        self.total = int(machine.n_pages * self.page / ANON_SHARE)
        n = len(self.paths)
        sizes = np.bincount(machine.cgroup.astype(np.int64), minlength=n)[:n] * self.page
        self._cap = (sizes * CACHE_MAX).astype(np.int64)
        self.cache = (sizes * CACHE_START).astype(np.int64)
        self._grow = (sizes * CACHE_GROWTH).astype(np.int64)
        self._rng = np.random.default_rng(seed)
        self._psi = [_Psi() for _ in range(n)]
        self._machine_psi = _Psi()
        self.killed: list[str] = []

    # ---- Facts ------------------------------------------------------------------------------------
    def machine(self) -> Machine:
        """One cycle of the model: the caches grow, the PSI moves; then the machine's figures."""
        self.cache = np.minimum(self.cache + self._grow, self._cap)
        for p in (*self._psi, self._machine_psi):
            p.some = float(np.clip(0.8 * p.some + self._rng.gamma(1.0, 0.15), 0.0, 100.0))
            p.some_total_us += int(p.some / 100 * self.cycle_us)
            p.full_total_us += int(p.some / 300 * self.cycle_us)
        used = self._anon().sum() * (1 + KERNEL_SHARE) + self.cache.sum() + OTHER_SHARE * self.total
        return Machine(total=self.total, available=max(0, self.total - int(used)))

    def machine_psi(self) -> PsiFigures:
        return self._figures(self._machine_psi)

    def cgroup(self, path: str) -> CgroupFacts:
        i = self._index(path)
        m = self.machine_
        mine = (m.cgroup == i) & (m.node >= 0)
        by_node = np.bincount(m.node[mine].astype(np.int64), minlength=2) * self.page
        anon = int(by_node.sum())
        cache = int(self.cache[i])
        kernel = int(anon * KERNEL_SHARE)
        nodes = {str(n): int(b) for n, b in enumerate(by_node)}
        nodes["0"] = nodes.get("0", 0) + cache  # the page cache sits in the fast tier
        kinds: dict[str, int | None] = {
            "anon": anon,
            "file": cache,
            "shmem": 0,
            "kernel": kernel,
            "sock": 0,
            "swap": 0,
            "zswap": None,  # not configured on the simulated machine
            "dirty": cache // 50,
            "writeback": 0,
        }
        psi = self._figures(self._psi[i])
        events: dict[str, int | None] = {"low": 0, "high": 0, "max": 0, "oom": 0, "oom_kill": 0}
        return CgroupFacts(
            current=anon + cache + kernel,
            psi_some=psi.some_avg10,
            refaults=0,
            psi=psi,
            kinds=kinds,
            nodes=nodes,
            events=events,
        )

    # ---- Actuators --------------------------------------------------------------------------------
    def reclaim(self, path: str, nbytes: int) -> bool:
        """Frees page cache only; False when the cache could not cover ``nbytes``."""
        i = self._index(path)
        freed = min(int(self.cache[i]), max(0, nbytes))
        self.cache[i] -= freed
        return freed >= nbytes

    def kill(self, path: str) -> None:
        raise UnavailableError("a simulated workload cannot be killed: its trace goes on", path)

    # ---- the rest of the platform's pressure IO ---------------------------------------------------
    def own_cgroup(self) -> str:
        return OWN_CGROUP

    def stall_source(self, knobs: object = None) -> SimStalls:
        return SimStalls()

    def cgroup_path(self, cgroup_id: int) -> str | None:
        return None

    def wake(self) -> None:
        """Nothing wakes the ladder between cycles here: the model moves once per cycle."""
        return None

    def _index(self, path: str) -> int:
        p = "/" + path.strip("/")
        try:
            return self.paths.index(p)
        except ValueError:
            raise UnavailableError("no such simulated cgroup", p) from None

    def _anon(self) -> np.ndarray:
        m = self.machine_
        present = m.node >= 0
        n = len(self.paths)
        return np.bincount(m.cgroup[present].astype(np.int64), minlength=n)[:n] * self.page

    @staticmethod
    def _figures(p: _Psi) -> PsiFigures:
        return PsiFigures(
            some_avg10=round(p.some, 2),
            some_total_us=p.some_total_us,
            full_avg10=round(p.some / 3, 2),
            full_total_us=p.full_total_us,
        )
