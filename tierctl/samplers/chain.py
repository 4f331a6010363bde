"""The sampler chain: the best available set of samplers, and a watchdog over them.

- ``start``: every sampler is probed; those available are started, in order of
  preference; each that cannot work says why (kept in ``status()``).
- ``drain``: the rows of every running sampler; one that raises is stopped and
  detached with the error as its reason — the loop goes on with the rest.
- ``watchdog``: per sampler, user-space CPU and kernel BPF run time since the
  last check, as a share of one core over the elapsed time; past the budget the
  sampler is asked to lower its rate (``throttle()``, if it has one), else, or if
  it is still over at the next check, detached — and the reason says so.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from tierctl.errors import TierctlError
from tierctl.samplers.base import RAW_SAMPLE_DTYPE, Availability, Health, SourceSampler, Targets


class State(enum.Enum):
    IDLE = "idle"
    RUNNING = "running"
    UNAVAILABLE = "unavailable"
    DETACHED = "detached"
    STOPPED = "stopped"


@dataclass(frozen=True)
class Budget:
    cpu_share: float = 0.02  # of one core, user space (drain, scans)
    bpf_share: float = 0.02  # of one core, in BPF programs


@dataclass
class _Entry:
    sampler: SourceSampler
    state: State = State.IDLE
    reason: str = ""
    throttled: int = 0
    last: Health = field(default_factory=Health)


@dataclass(frozen=True)
class SamplerStatus:
    name: str
    state: str
    reason: str
    health: Health


class SamplerChain:
    def __init__(
        self,
        samplers: Sequence[SourceSampler],
        *,
        budget: Budget | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_running: int | None = None,
    ) -> None:
        self._entries = [_Entry(s) for s in samplers]
        self.budget = budget or Budget()
        self.clock = clock
        self.max_running = max_running
        self._last_check: float | None = None

    # ------------------------------------------------------------------------------------------
    def start(self, targets: Targets) -> list[SamplerStatus]:
        running = 0
        for e in self._entries:
            if self.max_running is not None and running >= self.max_running:
                e.state, e.reason = State.IDLE, "not needed: a preferred sampler is running"
                continue
            avail = self._probe(e)
            if not avail.ok:
                e.state, e.reason = State.UNAVAILABLE, avail.reason
                continue
            try:
                e.sampler.start(targets)
            except TierctlError as err:
                e.state, e.reason = State.UNAVAILABLE, f"start failed: {err}"
                continue
            except Exception as err:  # a broken sampler must not stop the others
                e.state, e.reason = State.UNAVAILABLE, f"start crashed: {type(err).__name__}: {err}"
                continue
            e.state, e.reason = State.RUNNING, avail.reason
            running += 1
            try:  # the watchdog measures from here: starting (compiling, attaching) is not sampling
                e.last = e.sampler.health()
            except Exception as err:
                self._detach(e, f"health check failed: {type(err).__name__}: {err}")
                running -= 1
        self._last_check = self.clock()
        return self.status()

    def drain(self) -> np.ndarray:
        parts = []
        for e in self._entries:
            if e.state is not State.RUNNING:
                continue
            try:
                rows = e.sampler.drain()
                if rows.dtype != RAW_SAMPLE_DTYPE:
                    raise TypeError(f"drain returned dtype {rows.dtype}")
                parts.append(rows)
            except Exception as err:  # detach it, keep going
                self._detach(e, f"failed during drain: {type(err).__name__}: {err}")
        if not parts:
            return np.zeros(0, dtype=RAW_SAMPLE_DTYPE)
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def watchdog(self) -> list[str]:
        """Check every running sampler against the budget; returns what it did, as sentences."""
        now = self.clock()
        elapsed = now - (self._last_check if self._last_check is not None else now)
        self._last_check = now
        actions: list[str] = []
        if elapsed <= 0:
            return actions
        for e in self._entries:
            if e.state is not State.RUNNING:
                continue
            try:
                h = e.sampler.health()
            except Exception as err:
                self._detach(e, f"health check failed: {type(err).__name__}: {err}")
                actions.append(f"{e.sampler.name}: detached ({e.reason})")
                continue
            cpu = (h.cpu_seconds - e.last.cpu_seconds) / elapsed
            bpf = (h.bpf_run_ns - e.last.bpf_run_ns) / 1e9 / elapsed
            e.last = replace(h, notes=list(h.notes))
            over = []
            if cpu > self.budget.cpu_share:
                over.append(f"user CPU {cpu:.1%} > {self.budget.cpu_share:.1%}")
            if bpf > self.budget.bpf_share:
                over.append(f"BPF time {bpf:.1%} > {self.budget.bpf_share:.1%} of a core")
            if not over:
                continue
            why = ", ".join(over)
            throttle = getattr(e.sampler, "throttle", None)
            if e.throttled == 0 and callable(throttle) and throttle():
                e.throttled += 1
                actions.append(f"{e.sampler.name}: rate lowered ({why})")
            else:
                self._detach(e, f"over budget: {why}")
                actions.append(f"{e.sampler.name}: detached ({why})")
        return actions

    def stop(self) -> None:
        for e in self._entries:
            if e.state is State.RUNNING:
                try:
                    e.sampler.stop()
                    e.state = State.STOPPED
                except Exception as err:
                    e.state, e.reason = State.DETACHED, f"stop failed: {type(err).__name__}: {err}"

    def status(self) -> list[SamplerStatus]:
        out = []
        for e in self._entries:
            try:
                h = e.sampler.health()
            except Exception:
                h = e.last
            out.append(SamplerStatus(e.sampler.name, e.state.value, e.reason, h))
        return out

    @property
    def running(self) -> list[str]:
        return [e.sampler.name for e in self._entries if e.state is State.RUNNING]

    # ------------------------------------------------------------------------------------------
    @staticmethod
    def _probe(e: _Entry) -> Availability:
        try:
            return e.sampler.probe()
        except Exception as err:
            return Availability(False, f"probe crashed: {type(err).__name__}: {err}")

    @staticmethod
    def _detach(e: _Entry, reason: str) -> None:
        try:
            e.sampler.stop()
        except Exception as err:
            reason += f"; stop failed too: {err}"
        e.state, e.reason = State.DETACHED, reason
