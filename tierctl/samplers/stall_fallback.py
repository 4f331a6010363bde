"""Reclaim stalls without BPF, and the chain from ``bpf-stall`` to it.

- ``StallFallback`` (``stall-fallback``): deltas of ``memory.events`` (``max`` + ``high`` = memcg
  reclaim episodes, ``oom_kill``) and of the PSI ``full`` total per v2 cgroup, read through the
  adapters (MemStat.memory_events, CgroupFS.pressure); cgroups and their ids from one CgroupTree walk.
  An estimate: no global direct reclaim, stall time is wall time with every task of the cgroup
  stalled, kills are counts without pids.
- ``StallChain``: the first source that starts runs; one that fails (start, drain, health) or goes
  over its budget is stopped and the next takes over, like tierctl/samplers/chain.py does for pages.

Both speak the ``StallSource`` contract of tierctl/samplers/stall.py (``drain()`` returns a
``StallReport``), where ``StallSampler`` (``bpf-stall``) is.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tierctl.errors import InputError, TierctlError, UnavailableError
from tierctl.kernel.bpfhost import BpfHost
from tierctl.kernel.cgroupfs import CgroupFS, CgroupTree
from tierctl.kernel.memstat import MemStat
from tierctl.samplers.base import Availability, Health, Targets
from tierctl.samplers.chain import Budget, SamplerStatus, State, over_budget, source_status, stop_source
from tierctl.samplers.stall import CgroupStall, StallReport, StallSampler, StallSource


# ------------------------------------------------------------------------------------ the fallback
@dataclass(frozen=True)
class _Snap:
    cgroup_id: int
    episodes: int  # memory.events max + high
    oom_kills: int
    full_us: int


class StallFallback:
    """``stall-fallback``: per v2 cgroup, deltas of memory.events ``max`` + ``high`` (memcg reclaim
    episodes), ``oom_kill`` and the PSI ``full`` total, read through ``cgfs``. Targets: the cgroups
    (with descendants) to watch; none = every cgroup (at most ``max_cgroups``). Pids are ignored."""

    name = "stall-fallback"

    def __init__(self, cgfs: CgroupFS | None = None, *, max_cgroups: int = 4096) -> None:
        if max_cgroups < 1:
            raise InputError("max_cgroups must be positive", self.name)
        self._cgfs = cgfs
        self.max_cgroups = max_cgroups
        self._tops: list[str] | None = None  # None: not started
        self._prev: dict[str, _Snap] = {}
        self._health = Health()
        self._last = time.monotonic()

    def _fs(self) -> CgroupFS:
        if self._cgfs is None:
            self._cgfs = CgroupFS()
        return self._cgfs

    def probe(self) -> Availability:
        try:
            fs = self._fs()
        except TierctlError as e:
            return Availability(False, f"cgroup files unreadable: {e}")
        if not fs.v2:
            return Availability(
                False, f"cgroup {fs.layout.value} layout: per-cgroup memory.events and PSI need cgroup v2"
            )
        psi = fs.pressure("").full is not None
        what = "PSI full totals" if psi else "no PSI (CONFIG_PSI off or psi=0): stall time 0"
        return Availability(True, f"memory.events (max, high, oom_kill) and {what} below {fs.root}")

    def start(self, targets: Targets) -> None:
        avail = self.probe()
        if not avail.ok:
            raise UnavailableError(avail.reason)
        t0 = time.thread_time()
        fs = self._fs()
        if targets.cgroup_ids:
            wanted = {int(c) for c in targets.cgroup_ids}
            found = self._tree().paths_of(wanted)  # one walk; the root has no memory.events
            tops = sorted(p for p in found.values() if p)
            if len(tops) < len(wanted):
                raise InputError(f"cgroup ids {sorted(wanted)} name only {len(tops)} cgroups", str(fs.root))
        else:
            tops = [""]
        self._tops = tops
        self._health = Health(notes=[avail.reason])
        self._prev = self._snapshot()
        self._last = time.monotonic()
        self._health.cpu_seconds += time.thread_time() - t0

    def _tree(self) -> CgroupTree:
        """The v2 hierarchy of ``cgfs`` (it starts only on a unified layout: its root)."""
        fs = self._fs()
        tree = fs.tree()
        if tree is None:
            raise UnavailableError("no cgroup v2 hierarchy", str(fs.root))
        return tree

    def _snapshot(self) -> dict[str, _Snap]:
        fs = self._fs()
        stat, tree = MemStat(fs), self._tree()
        ids: dict[str, int] = {}  # path -> id, from the walk (a target removed since: no rows)
        for top in self._tops or ():
            ids.update((p, i) for p, i in tree.ids(top) if p)
        if len(ids) > self.max_cgroups:
            raise InputError(f"{len(ids)} cgroups: more than max_cgroups={self.max_cgroups}", str(fs.root))
        out = {}
        for p in sorted(ids):
            try:
                ev = stat.memory_events(p)
                full = fs.pressure(p).full
            except (InputError, UnavailableError):  # removed meanwhile, or no memory controller there
                continue
            out[p] = _Snap(
                ids[p], (ev.max or 0) + (ev.high or 0), ev.oom_kill or 0, full.total_us if full else 0
            )
        return out

    def drain(self) -> StallReport:
        now = time.monotonic()
        seconds, self._last = now - self._last, now
        if self._tops is None:
            return StallReport(self.name, False, seconds)
        t0 = time.thread_time()
        snap = self._snapshot()
        rows = []
        for p, s in snap.items():
            old = self._prev.get(p)
            if old is None or old.cgroup_id != s.cgroup_id:
                old = _Snap(s.cgroup_id, 0, 0, 0)  # new since the last drain: its counters started at 0
            ep, kills = max(0, s.episodes - old.episodes), max(0, s.oom_kills - old.oom_kills)
            stall = max(0, s.full_us - old.full_us) * 1000
            if ep or kills or stall:
                rows.append(
                    CgroupStall(
                        s.cgroup_id, ep, stall, memcg_episodes=ep, memcg_ns=stall, oom_kills=kills, path=p
                    )
                )
        self._prev = snap
        self._health.samples += len(rows)
        self._health.cpu_seconds += time.thread_time() - t0
        return StallReport(
            self.name, False, seconds, tuple(sorted(rows, key=lambda r: (r.cgroup_id, r.path)))
        )

    def stop(self) -> None:
        self._tops = None
        self._prev = {}

    def health(self) -> Health:
        h = self._health
        return Health(h.samples, h.dropped, h.cpu_seconds, h.bpf_run_ns, list(h.notes))


# ---------------------------------------------------------------------------------------- the chain
@dataclass
class _Entry:
    source: StallSource
    state: State = State.IDLE
    reason: str = ""
    last: Health = dataclasses.field(default_factory=Health)


class StallChain:
    """One stall source at a time, in order of preference (BPF, then the fallback). A source that
    cannot start, fails in drain or health, or costs more than ``budget`` (user CPU or BPF time as a
    share of one core since the last watchdog check) is stopped, with the reason, and the next
    source that can start takes over. Nothing is throttled: sampling reclaim episodes would break
    their begin/end pairs."""

    def __init__(
        self,
        sources: Sequence[StallSource],
        *,
        budget: Budget | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._entries = [_Entry(s) for s in sources]
        self.budget = budget or Budget()
        self.clock = clock
        self._targets = Targets()
        self._last_check = clock()
        self.notes: list[str] = []  # hand-overs since the last watchdog() (which returns them)

    @classmethod
    def default(cls, host: BpfHost | None = None, cgfs: CgroupFS | None = None, **kw: Any) -> StallChain:
        return cls([StallSampler(host=host), StallFallback(cgfs)], **kw)

    def start(self, targets: Targets) -> list[SamplerStatus]:
        self._targets = targets
        self._take_over()
        self._last_check = self.clock()
        return self.status()

    def _take_over(self) -> None:
        """Start the first idle source that can; the later ones stay idle."""
        for e in self._entries:
            if e.state is State.RUNNING:
                return
            if e.state is not State.IDLE:
                continue
            try:
                avail = e.source.probe()
                if not avail.ok:
                    e.state, e.reason = State.UNAVAILABLE, avail.reason
                    continue
                e.source.start(self._targets)
                e.last = e.source.health()
            except Exception as err:  # a broken source must not stop the next one
                self._stop(e, State.UNAVAILABLE, f"start failed: {type(err).__name__}: {err}")
                continue
            e.state, e.reason = State.RUNNING, avail.reason
            self.notes.append(f"{e.source.name}: running ({avail.reason})")
            return

    def _stop(self, e: _Entry, state: State, reason: str) -> None:
        e.state, e.reason = state, stop_source(e.source, reason)

    def _running(self) -> _Entry | None:
        return next((e for e in self._entries if e.state is State.RUNNING), None)

    @property
    def running(self) -> str | None:
        e = self._running()
        return e.source.name if e is not None else None

    def drain(self) -> StallReport:
        e = self._running()
        if e is None:
            return StallReport("", False, 0.0)
        try:
            return e.source.drain()
        except Exception as err:
            self._detach(e, f"failed during drain: {type(err).__name__}: {err}")
            return StallReport(self.running or "", False, 0.0)

    def _detach(self, e: _Entry, reason: str) -> None:
        self._stop(e, State.DETACHED, reason)
        self.notes.append(f"{e.source.name}: detached ({reason})")
        self._take_over()

    def watchdog(self) -> list[str]:
        """The running source against the budget; returns what happened since the last call."""
        now = self.clock()
        elapsed = now - self._last_check
        e = self._running()
        if e is not None and elapsed > 0 and elapsed >= self.budget.window_s:
            self._last_check = now
            try:
                h = e.source.health()
            except Exception as err:
                self._detach(e, f"health check failed: {type(err).__name__}: {err}")
            else:
                over = over_budget(self.budget, e.last, h, elapsed)
                e.last = h
                if over:
                    self._detach(e, "over budget: " + ", ".join(over))
        out, self.notes = self.notes, []
        return out

    def stop(self) -> None:
        for e in self._entries:
            if e.state is State.RUNNING:
                self._stop(e, State.STOPPED, e.reason)

    def status(self) -> list[SamplerStatus]:
        return [source_status(e.source, e.state, e.reason, e.last) for e in self._entries]
