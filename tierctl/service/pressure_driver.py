"""The Service's side of the memory-pressure ladder: when it steps and over what.

:class:`PressureDriver` owns the ladder (``service.pressure.PressureControl``) and what wakes it
between cycles (``service.pressure_wake``). Each cycle it steps once, paced by the cycle period;
between cycles the daemon's wait may end early on a PSI trigger or on the machine above its target,
and then it takes an early step, paced by the time since the last one. It starts the reclaim-stall
source (OOM kills attributed to cgroups) and arms the PSI triggers of the managed cgroups.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from tierctl.core.ladder import Limits
from tierctl.errors import TierctlError
from tierctl.profiles.schema import PressurePolicy
from tierctl.service import pressure_view
from tierctl.service.platform import PressureIO
from tierctl.service.pressure import PressureConfig, PressureControl, ProcessHooks
from tierctl.service.pressure_wake import PressureWake

Emit = Callable[..., None]  # (kind, **info): one event


class PressureDriver:
    """``mode``: on, dry-run or off; ``io``: the platform's facts and actuators (None: there are none,
    and the ladder is off with the reason ``unavailable``)."""

    def __init__(
        self,
        mode: str,
        memory_target: float,
        cycle_s: float,
        io: PressureIO | None,
        emit: Emit,
        clock: Callable[[], float],
        wall: Callable[[], float],
    ) -> None:
        self.mode = mode
        self.cycle_s = cycle_s
        self.io = io if mode != "off" else None
        self.emit = emit
        self.clock = clock
        self.wall = wall
        self.control: PressureControl | None = None
        if self.io is not None:
            limits = Limits(target_ratio=memory_target, critical_ratio=max(memory_target, 0.98))
            pcfg = PressureConfig(mode=mode, limits=limits, own_cgroup=self.io.own_cgroup())
            self.control = PressureControl(pcfg, self.io, self.io, ProcessHooks(), emit)
        self.wake: PressureWake | None = None  # set by start()
        self._at: float | None = None  # clock() of the last ladder step
        self._early = False  # whether the last step was an early one

    def start(self, knobs: Any) -> None:
        """The kernel's own OOM kills, attributed to cgroups, and reclaim stalls per cgroup; then
        what wakes the ladder. ``knobs``: the daemon's knob guard (the stall source's BPF host)."""
        if self.control is None or self.io is None:
            return
        self.control.cgroup_path = self.io.cgroup_path
        try:
            self.control.stalls = self.io.stall_source(knobs)
        except TierctlError as e:  # the ladder works without OOM attribution
            self.emit("stall_sampler", message=f"no reclaim-stall source: {e}")
        self.wake = self.io.wake()

    def close(self) -> None:
        try:
            if self.wake is not None:
                self.wake.close()
        finally:
            if self.control is not None:
                self.control.close()

    def wait(self, timeout_s: float) -> bool:
        """Sleep at most ``timeout_s`` (woken early by a PSI trigger or the machine above its
        target); True when the ladder should take an early step now."""
        if self.wake is None or self.control is None:
            time.sleep(timeout_s)
            return False
        return self.wake.wait(timeout_s, self.control.cfg.limits.target_ratio) is not None

    def step(
        self,
        policies: Mapping[str, PressurePolicy],
        cold_share: Callable[[], dict[str, float]],
        *,
        early: bool = False,
    ) -> None:
        """One ladder step over the managed cgroups (``policies``: each one's [pressure] table)."""
        if self.control is None:
            return
        now = self.clock()
        last, self._at = self._at, now
        # trims are paced by the cycle; once early steps have run, by the time since the last step
        step_s = self.cycle_s
        if last is not None and (early or self._early):
            step_s = max(0.0, min(self.cycle_s, now - last))
        self._early = early
        if self.wake is not None and not early:
            self.wake.sync(policies)
            for note in self.wake.notes:
                self.emit("psi_trigger", message=note)
            self.wake.notes.clear()
        try:
            self.control.cycle(self.wall(), step_s, policies, cold_share, early=early)
        except TierctlError as e:  # the machine's facts could not be read: say so, keep placing
            self.emit("pressure_failed", action="read", message=str(e))

    def status(self, platform: str) -> dict[str, Any]:
        """The ladder's view (``service.pressure_view``), with the early steps by what woke them and
        the PSI triggers armed."""
        if self.control is None:
            why = "off" if self.mode == "off" else f"unavailable on the {platform} platform"
            return {"mode": self.mode, "active": False, "reason": why}
        st = pressure_view.status(self.control)
        w = self.wake
        st["wakes"] = {} if w is None else dict(w.counts)
        st["psi_triggers"] = [] if w is None or w.watcher is None else ["/" + k for k in w.watcher.keys]
        return st
