"""Reclaim stalls per cgroup and OOM victims: the report types and ``bpf-stall``.

Not a page sampler (no RAW_SAMPLE_DTYPE rows): each ``drain()`` returns a ``StallReport`` — per cgroup
id, the reclaim episodes that ended since the last drain and their stall time, and the OOM victims.

- ``StallSampler`` (``bpf-stall``, tierctl/data/bpf/stall_sampler.c): begin→end of every direct
  (page allocator) and memcg (memory.max/high) reclaim, per thread, summed per cgroup v2 id; OOM
  victims from ``oom:mark_victim`` with their own cgroup and comm from their exit. Exact, per task.
  Its lifecycle (compile, tracefs and BPF stats through the ``BpfHost``, filters, stop, health) is
  ``BccProgram``'s (tierctl/samplers/bpf_program.py), shared with the page samplers.
- ``StallFallback`` (``stall-fallback``) and ``StallChain``, the chain between the two, are in
  tierctl/samplers/stall_fallback.py.
"""

from __future__ import annotations

import contextlib
import ctypes
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from types import ModuleType
from typing import ClassVar, Protocol

import numpy as np

from tierctl.errors import InputError, UnavailableError
from tierctl.kernel.bpfhost import BpfHost
from tierctl.samplers import bpf_layout as L
from tierctl.samplers.base import Availability, Health, Targets
from tierctl.samplers.bpf_compile import STALL_DEFINES_DEFAULT
from tierctl.samplers.bpf_program import BccProgram

# The hooks, all required (bcc reads their formats from tracefs when it compiles).
TRACEPOINTS: tuple[tuple[str, str], ...] = (
    ("vmscan", "mm_vmscan_direct_reclaim_begin"),
    ("vmscan", "mm_vmscan_direct_reclaim_end"),
    ("vmscan", "mm_vmscan_memcg_reclaim_begin"),
    ("vmscan", "mm_vmscan_memcg_reclaim_end"),
    ("oom", "mark_victim"),
    ("sched", "sched_process_exit"),
)
MAP_CGROUPS, MAP_VICTIMS, MAP_COUNTERS = "stall_cgroups", "oom_victims", "stall_counters"

# struct stall_val of stall_sampler.c (checked against bcc's own layout of the map at start()).
STALL_VAL_FIELDS = ("direct_episodes", "direct_ns", "memcg_episodes", "memcg_ns", "max_ns")
STALL_VAL_DTYPE = np.dtype([(name, "<u8") for name in STALL_VAL_FIELDS])


class StallCounter(IntEnum):
    """enum stall_counter of stall_sampler.c: indices of the per-CPU stall_counters array."""

    EPISODES = 0
    DROP_TASKS = 1
    DROP_CGROUPS = 2
    DROP_VICTIMS = 3
    UNMATCHED_END = 4
    VICTIMS = 5
    NR = 6


DROP_COUNTERS = (StallCounter.DROP_TASKS, StallCounter.DROP_CGROUPS, StallCounter.DROP_VICTIMS)


# ------------------------------------------------------------------------------------ the contract
@dataclass(frozen=True)
class CgroupStall:
    """One cgroup's reclaim stalls over a drain interval. ``cgroup_id``: the v2 id (0 when unknown:
    the fallback on a layout without a v2 memory hierarchy); ``path``: below the cgroup root, when
    the source knows it (the fallback). ``episodes`` = direct + memcg; ``stall_ns`` = their time:
    summed over tasks (BPF), or the PSI ``full`` time (fallback)."""

    cgroup_id: int
    episodes: int = 0
    stall_ns: int = 0
    direct_episodes: int = 0
    direct_ns: int = 0
    memcg_episodes: int = 0
    memcg_ns: int = 0
    max_ns: int = 0  # the longest single episode (BPF only)
    oom_kills: int = 0
    path: str | None = None


@dataclass(frozen=True)
class OomVictim:
    """A task the OOM killer chose. ``cgroup_id`` and ``comm`` are the victim's own, read at its exit
    (``exited``); a victim not seen exiting within the grace time is reported with the cgroup of the
    task that invoked the OOM killer (the same cgroup for a memcg OOM) and an empty comm."""

    pid: int  # the victim thread (mark_victim's pid)
    tgid: int  # its process; 0 when its exit was not seen
    cgroup_id: int
    comm: str
    exited: bool
    invoker_cgroup_id: int
    at_ns: int  # CLOCK_MONOTONIC of the kill decision


@dataclass(frozen=True)
class StallReport:
    source: str  # the source's name ("bpf-stall", "stall-fallback", "" when none runs)
    exact: bool  # per-task measurement (BPF) rather than counter/PSI estimates
    seconds: float  # since the previous drain (or the start)
    cgroups: tuple[CgroupStall, ...] = ()  # sorted by cgroup id, then path
    victims: tuple[OomVictim, ...] = ()

    def cgroup(self, cgroup_id: int) -> CgroupStall:
        """The row of ``cgroup_id`` (a row of zeros when it had no stall)."""
        return next((c for c in self.cgroups if c.cgroup_id == cgroup_id), CgroupStall(cgroup_id))


class StallSource(Protocol):
    name: str

    def probe(self) -> Availability: ...

    def start(self, targets: Targets) -> None: ...

    def drain(self) -> StallReport: ...

    def stop(self) -> None: ...

    def health(self) -> Health: ...


# ------------------------------------------------------------------------------------- bpf-stall
class StallSampler(BccProgram):
    """``bpf-stall``. ``max_tasks`` / ``max_cgroups`` / ``max_victims`` bound the maps (threads in
    reclaim at once, cgroups with stalls per drain, victims not handed over); ``victim_grace_s``: how
    long a victim's exit is waited for. Targets filter stalls by tgid or cgroup (with descendants);
    OOM victims are always reported."""

    name = "bpf-stall"
    program = "stall_sampler"
    counter_map = MAP_COUNTERS
    counter_enum: ClassVar[type[IntEnum]] = StallCounter
    drop_counters: ClassVar[Sequence[IntEnum]] = DROP_COUNTERS

    def __init__(
        self,
        *,
        max_tasks: int = int(STALL_DEFINES_DEFAULT["TIERCTL_STALL_MAX_TASKS"]),
        max_cgroups: int = int(STALL_DEFINES_DEFAULT["TIERCTL_STALL_MAX_CGROUPS"]),
        max_victims: int = int(STALL_DEFINES_DEFAULT["TIERCTL_STALL_MAX_VICTIMS"]),
        max_targets: int = L.MAX_TARGETS_DEFAULT,
        victim_grace_s: float = 2.0,
        headers: str = "auto",
        bcc_search: Sequence[str] | None = None,
        source: str | None = None,
        bpf_stats: bool = True,
        host: BpfHost | None = None,
    ) -> None:
        if min(max_tasks, max_cgroups, max_victims, max_targets) < 1 or victim_grace_s < 0:
            raise InputError("map bounds must be positive and victim_grace_s >= 0", self.name)
        super().__init__(
            max_targets=max_targets, headers=headers, bcc_search=bcc_search, source=source,
            bpf_stats=bpf_stats, host=host,
        )  # fmt: skip
        self.bounds = {
            "TIERCTL_MAX_TARGETS": max_targets,
            "TIERCTL_STALL_MAX_TASKS": max_tasks,
            "TIERCTL_STALL_MAX_CGROUPS": max_cgroups,
            "TIERCTL_STALL_MAX_VICTIMS": max_victims,
        }
        self.victim_grace_ns = int(victim_grace_s * 1e9)
        self._keys = np.zeros(max_cgroups, "<u8")
        self._vals = np.zeros(max_cgroups, STALL_VAL_DTYPE)
        self._last = time.monotonic()

    # -- hooks
    def _check_source(self, bcc: ModuleType) -> str:
        notes = []
        for category, event in TRACEPOINTS:
            ok, why = self.host.tracepoint(category, event)
            if not ok:
                raise UnavailableError(why)
            if why.startswith("tracefs not mounted") and why not in notes:
                notes.append(why)
        hooks = "tracepoints " + ", ".join(f"{c}:{e}" for c, e in TRACEPOINTS)
        return hooks + (f" ({notes[0]})" if notes else "")

    def _defines(self) -> dict[str, int | str]:
        return dict(self.bounds)

    def _needs_tracefs(self) -> bool:
        return True  # bcc reads the tracepoints' formats at compile time

    def _targets(self, targets: Targets) -> tuple[list[int], list[int]]:
        pids = sorted({int(p) for p in targets.pids})
        cgroups = set(self._cgroup_ids(targets))
        if max(len(pids), len(cgroups)) > self.max_targets:
            raise InputError(f"more than max_targets={self.max_targets} target pids or cgroups", self.name)
        return pids, sorted(cgroups)

    def _loaded(self, bcc: ModuleType) -> None:
        """The Python mirror of struct stall_val against the layout bcc compiled."""
        leaf = self._table(MAP_CGROUPS).Leaf
        got = [(n, getattr(leaf, n).offset) for n, _ in leaf._fields_]
        want = [(n, STALL_VAL_DTYPE.fields[n][1]) for n in STALL_VAL_DTYPE.names]
        if got != want or ctypes.sizeof(leaf) != STALL_VAL_DTYPE.itemsize:
            raise UnavailableError(f"struct stall_val is {got}, tierctl expects {want}", "stall_sampler.c")

    # -- contract
    def start(self, targets: Targets) -> None:
        super().start(targets)
        self._last = time.monotonic()

    def drain(self) -> StallReport:
        now = time.monotonic()
        seconds, self._last = now - self._last, now
        if self._bpf is None:
            return StallReport(self.name, True, seconds)
        t0 = time.thread_time()
        got = self._drain_map(MAP_CGROUPS, self._keys, self._vals)
        victims = self._victims()
        kills: dict[int, int] = {}
        for v in victims:
            kills[v.cgroup_id] = kills.get(v.cgroup_id, 0) + 1
        rows: dict[int, CgroupStall] = {}
        for k, v in zip(self._keys[:got].tolist(), self._vals[:got].tolist(), strict=True):
            de, dn, me, mn, mx = v
            rows[k] = CgroupStall(k, de + me, dn + mn, de, dn, me, mn, mx, kills.pop(k, 0))
        rows.update({k: CgroupStall(k, oom_kills=n) for k, n in kills.items()})
        report = StallReport(self.name, True, seconds, tuple(rows[k] for k in sorted(rows)), victims)
        self._health.samples += len(report.cgroups) + len(report.victims)
        self._health.cpu_seconds += time.thread_time() - t0
        return report

    def _victims(self) -> tuple[OomVictim, ...]:
        """Victims that exited, or waited for longer than the grace time; deleted from the map."""
        t = self._table(MAP_VICTIMS)
        now = time.monotonic_ns()  # = bpf_ktime_get_ns()'s clock
        out = []
        for k, v in list(t.items()):
            if not v.exited and now - int(v.ts) < self.victim_grace_ns:
                continue
            exited = bool(v.exited)
            comm = bytes(v.comm).split(b"\0", 1)[0].decode(errors="replace") if exited else ""
            cg = int(v.victim_cgroup) if exited else int(v.invoker_cgroup)
            out.append(
                OomVictim(int(k.value), int(v.tgid), cg, comm, exited, int(v.invoker_cgroup), int(v.ts))
            )
            with contextlib.suppress(KeyError):
                del t[k]
        return tuple(sorted(out, key=lambda x: x.at_ns))
