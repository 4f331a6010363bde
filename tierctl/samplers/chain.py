"""The sampler chain: the best available set of samplers, and a watchdog over them.

- ``start``: every sampler is probed; those available are started, in order of
  preference; each that cannot work says why (kept in ``status()``).
- ``drain``: the rows of every running sampler; one that raises is stopped and
  detached with the error as its reason — the loop goes on with the rest.
- ``watchdog``: per sampler, user-space CPU and kernel BPF run time since the
  last check, as a share of one core over the elapsed time (judged once at least
  ``Budget.window_s`` has passed, so a short burst is averaged out); past the budget
  the sampler is asked to lower its rate (``throttle()``, if it has one; up to
  ``Budget.max_throttles`` times), else detached — and the reason says so.
- With ``max_running``, a sampler that is detached (over budget, failed) hands over
  to the next one in order of preference that can start.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from tierctl.errors import TierctlError
from tierctl.samplers.base import (
    RAW_SAMPLE_DTYPE,
    Availability,
    Health,
    Retargetable,
    SourceSampler,
    Targets,
    Throttleable,
)


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
    window_s: float = 0.0  # judge the share over at least this long (0: at every check)
    max_throttles: int = 1  # rate reductions before a sampler still over budget is detached


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


class Source(Protocol):
    """What the helpers below need of a sampler (a page sampler, a stall source)."""

    name: str

    def stop(self) -> None: ...

    def health(self) -> Health: ...


def source_status(source: Source, state: State, reason: str, last: Health) -> SamplerStatus:
    """A source's status: its health now, or the last one seen when asking fails."""
    try:
        h = source.health()
    except Exception:
        h = last
    return SamplerStatus(source.name, state.value, reason, h)


def stop_source(source: Source, reason: str) -> str:
    """Stop ``source`` (it is being detached or replaced); ``reason``, plus the stop's own error if any."""
    try:
        source.stop()
    except Exception as err:
        reason += f"; stop failed too: {err}"
    return reason


def over_budget(budget: Budget, before: Health, now: Health, elapsed: float) -> list[str]:
    """What a source spent between two health readings ``elapsed`` seconds apart, past ``budget``
    (user CPU, BPF run time, each as a share of one core); empty when within it."""
    cpu = (now.cpu_seconds - before.cpu_seconds) / elapsed
    bpf = (now.bpf_run_ns - before.bpf_run_ns) / 1e9 / elapsed
    over = []
    if cpu > budget.cpu_share:
        over.append(f"user CPU {cpu:.1%} > {budget.cpu_share:.1%}")
    if bpf > budget.bpf_share:
        over.append(f"BPF time {bpf:.1%} > {budget.bpf_share:.1%} of a core")
    return over


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
        self._targets: Targets | None = None
        self.fallback_notes: list[str] = []  # hand-overs after a failed drain (the watchdog reports them)

    # ------------------------------------------------------------------------------------------
    def start(self, targets: Targets) -> list[SamplerStatus]:
        self._targets = targets
        running = 0
        for e in self._entries:
            if self.max_running is not None and running >= self.max_running:
                e.state, e.reason = State.IDLE, "not needed: a preferred sampler is running"
                continue
            running += self._start_one(e, targets)
        self._last_check = self.clock()
        return self.status()

    def _start_one(self, e: _Entry, targets: Targets) -> int:
        """Probe and start one sampler; 1 when it runs."""
        avail = self._probe(e)
        if not avail.ok:
            e.state, e.reason = State.UNAVAILABLE, avail.reason
            return 0
        try:
            e.sampler.start(targets)
        except TierctlError as err:
            e.state, e.reason = State.UNAVAILABLE, f"start failed: {err}"
            return 0
        except Exception as err:  # a broken sampler must not stop the others
            e.state, e.reason = State.UNAVAILABLE, f"start crashed: {type(err).__name__}: {err}"
            return 0
        e.state, e.reason = State.RUNNING, avail.reason
        try:  # the watchdog measures from here: starting (compiling, attaching) is not sampling
            e.last = e.sampler.health()
        except Exception as err:
            self._detach(e, f"health check failed: {type(err).__name__}: {err}")
            return 0
        return 1

    def _fall_back(self) -> list[str]:
        """After a detach: start idle samplers, in order, until ``max_running`` run again."""
        if self.max_running is None or self._targets is None:
            return []
        out = []
        running = len(self.running)
        for e in self._entries:
            if running >= self.max_running:
                break
            if e.state is State.IDLE:
                if self._start_one(e, self._targets):
                    running += 1
                    out.append(f"{e.sampler.name}: started in its place")
                else:
                    out.append(f"{e.sampler.name}: cannot take over ({e.reason})")
        return out

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
                self.fallback_notes += self._fall_back()
        if not parts:
            return np.zeros(0, dtype=RAW_SAMPLE_DTYPE)
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def watchdog(self) -> list[str]:
        """Check every running sampler against the budget; returns what it did, as sentences."""
        now = self.clock()
        elapsed = now - (self._last_check if self._last_check is not None else now)
        actions, self.fallback_notes = self.fallback_notes, []
        if elapsed <= 0 or elapsed < self.budget.window_s:
            return actions
        self._last_check = now
        detached = False
        for e in self._entries:
            if e.state is not State.RUNNING:
                continue
            try:
                h = e.sampler.health()
            except Exception as err:
                self._detach(e, f"health check failed: {type(err).__name__}: {err}")
                actions.append(f"{e.sampler.name}: detached ({e.reason})")
                detached = True
                continue
            over = over_budget(self.budget, e.last, h, elapsed)
            e.last = replace(h, notes=list(h.notes))
            if not over:
                continue
            why = ", ".join(over)
            can = isinstance(e.sampler, Throttleable)
            if e.throttled < self.budget.max_throttles and can and e.sampler.throttle():
                e.throttled += 1
                actions.append(f"{e.sampler.name}: rate lowered ({why})")
            else:
                self._detach(e, f"over budget: {why}")
                actions.append(f"{e.sampler.name}: detached ({why})")
                detached = True
        if detached:
            actions += self._fall_back()
        return actions

    def retarget(self, targets: Targets) -> list[str]:
        """Point the running samplers at ``targets`` (the ``Retargetable`` ones; the others keep
        what they had). A sampler that fails at it is detached (and replaced)."""
        self._targets = targets
        out = []
        for e in self._entries:
            if e.state is not State.RUNNING or not isinstance(e.sampler, Retargetable):
                continue
            try:
                e.sampler.retarget(targets)
            except Exception as err:
                self._detach(e, f"retarget failed: {type(err).__name__}: {err}")
                out.append(f"{e.sampler.name}: detached ({e.reason})")
                out += self._fall_back()
        return out

    def stop(self) -> None:
        for e in self._entries:
            if e.state is State.RUNNING:
                try:
                    e.sampler.stop()
                    e.state = State.STOPPED
                except Exception as err:
                    e.state, e.reason = State.DETACHED, f"stop failed: {type(err).__name__}: {err}"

    def status(self) -> list[SamplerStatus]:
        return [source_status(e.sampler, e.state, e.reason, e.last) for e in self._entries]

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
        e.state, e.reason = State.DETACHED, stop_source(e.sampler, reason)
