"""Reclaim stalls per cgroup and OOM victims: ``bpf-stall``, its fallback, and the chain between them.

Not a page sampler (no RAW_SAMPLE_DTYPE rows): each ``drain()`` returns a ``StallReport`` — per cgroup
id, the reclaim episodes that ended since the last drain and their stall time, and the OOM victims.

- ``StallSampler`` (``bpf-stall``, tierctl/data/bpf/stall_sampler.c): begin→end of every direct
  (page allocator) and memcg (memory.max/high) reclaim, per thread, summed per cgroup v2 id; OOM
  victims from ``oom:mark_victim`` with their own cgroup and comm from their exit. Exact, per task.
- ``StallFallback`` (``stall-fallback``): deltas of ``memory.events`` (``max`` + ``high`` = memcg
  reclaim episodes, ``oom_kill``) and of the PSI ``full`` total per v2 cgroup, read through CgroupFS.
  An estimate: no global direct reclaim, stall time is wall time with every task of the cgroup
  stalled, kills are counts without pids.
- ``StallChain``: the first source that starts runs; one that fails (start, drain, health) or goes
  over its budget is stopped and the next takes over, like tierctl/samplers/chain.py does for pages.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import dataclasses
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import numpy as np

from tierctl.errors import InputError, KernelError, TierctlError, UnavailableError
from tierctl.kernel.bpfhost import BpfHost
from tierctl.kernel.cgroupfs import CgroupFS
from tierctl.samplers import bpf_layout as L
from tierctl.samplers.base import Availability, Health, Targets
from tierctl.samplers.bpf_bcc import LOCK, bcc_version, captured_output, load_bcc
from tierctl.samplers.bpf_compile import STALL_DEFINES_DEFAULT, Compiled, compile_program
from tierctl.samplers.bpf_headers import HeaderTree, find_headers
from tierctl.samplers.bpf_maps import drain as drain_map
from tierctl.samplers.chain import Budget, SamplerStatus, State

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
class StallSampler:
    """``bpf-stall``. ``max_tasks`` / ``max_cgroups`` / ``max_victims`` bound the maps (threads in
    reclaim at once, cgroups with stalls per drain, victims not handed over); ``victim_grace_s``: how
    long a victim's exit is waited for. Targets filter stalls by tgid or cgroup (with descendants);
    OOM victims are always reported."""

    name = "bpf-stall"
    program = "stall_sampler"

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
        self.bounds = {
            "TIERCTL_MAX_TARGETS": max_targets,
            "TIERCTL_STALL_MAX_TASKS": max_tasks,
            "TIERCTL_STALL_MAX_CGROUPS": max_cgroups,
            "TIERCTL_STALL_MAX_VICTIMS": max_victims,
        }
        self.max_targets = max_targets
        self.victim_grace_ns = int(victim_grace_s * 1e9)
        self.headers_pref = headers
        self.bcc_search = bcc_search
        self.source = source
        self.want_bpf_stats = bpf_stats
        self.host = host or BpfHost()
        self.drain_mode = "auto"
        self.compile_seconds = 0.0
        self.headers: HeaderTree | None = None
        self._compiled: Compiled | None = None
        self._bpf: Any = None
        self._lib: Any = None
        self._health = Health()
        self._stats_held = self._tracefs_held = False
        self._keys = np.zeros(max_cgroups, "<u8")
        self._vals = np.zeros(max_cgroups, STALL_VAL_DTYPE)
        self._last = time.monotonic()

    def _check(self) -> tuple[ModuleType, HeaderTree, str]:
        problem = self.host.privilege_problem()
        if problem:
            raise UnavailableError(problem)
        bcc = load_bcc(self.bcc_search)
        headers = find_headers(self.headers_pref)
        notes = []
        for category, event in TRACEPOINTS:
            ok, why = self.host.tracepoint(category, event)
            if not ok:
                raise UnavailableError(why)
            if why.startswith("tracefs not mounted") and why not in notes:
                notes.append(why)
        hooks = "tracepoints " + ", ".join(f"{c}:{e}" for c, e in TRACEPOINTS)
        extra = f" ({notes[0]})" if notes else ""
        return bcc, headers, f"bcc {bcc_version(bcc)}; {hooks}{extra}; {headers.describe()}"

    def probe(self) -> Availability:
        try:
            return Availability(True, self._check()[2])
        except UnavailableError as e:
            return Availability(False, e.message)

    def start(self, targets: Targets) -> None:
        if self._bpf is not None:
            raise InputError(f"{self.name} is already started")
        t0 = time.thread_time()
        pids, cgroups = self._targets(targets)
        problem = self.host.privilege_problem()
        if problem:
            raise UnavailableError(problem)
        self._health = Health()
        self._health.notes += [
            f"restored what a crashed run left: {r.knob} ({r.outcome})" for r in self.host.restored_at_start
        ]
        try:
            note = self.host.tracefs.acquire()  # bcc reads the tracepoints' formats at compile time
            self._tracefs_held = True
            if note:
                self._health.notes.append(note)
            bcc, headers, reason = self._check()
            self.headers = headers
            self._health.notes.insert(0, reason)
            self._compiled = compile_program(bcc, self.program, self.bounds, headers, self.source)
            self._bpf, self.compile_seconds = self._compiled.bpf, self._compiled.seconds
            self._lib = sys.modules["bcc.libbcc"].lib
            self._health.notes.append(f"compiled in {self.compile_seconds:.2f} s")
            self._check_layout()
            self._set_filters(pids, cgroups)
            if self.want_bpf_stats:
                self._health.notes.append(self.host.stats.acquire())
                self._stats_held = True
            self._config(L.Config.ENABLED, 1)
        except BaseException:
            self._teardown()
            raise
        self._last = time.monotonic()
        self._health.cpu_seconds += time.thread_time() - t0

    def retarget(self, targets: Targets) -> None:
        if self._bpf is None:
            return
        pids, cgroups = self._targets(targets)
        for name in (L.MAP_FILTER_PIDS, L.MAP_FILTER_CGROUPS):
            self._table(name).clear()
        self._set_filters(pids, cgroups)

    def _targets(self, targets: Targets) -> tuple[list[int], list[int]]:
        pids = sorted({int(p) for p in targets.pids})
        tree = self.host.cgroups() if targets.cgroup_ids else None
        cgroups: set[int] = set()
        for cg in targets.cgroup_ids:
            cgroups.update(tree.descendant_ids(int(cg)) if tree is not None else [int(cg)])
        if max(len(pids), len(cgroups)) > self.max_targets:
            raise InputError(f"more than max_targets={self.max_targets} target pids or cgroups", self.name)
        return pids, sorted(cgroups)

    def _set_filters(self, pids: Sequence[int], cgroups: Sequence[int]) -> None:
        for name, items in ((L.MAP_FILTER_PIDS, pids), (L.MAP_FILTER_CGROUPS, cgroups)):
            t = self._table(name)
            for x in items:
                t[t.Key(x)] = t.Leaf(1)
        self._config(L.Config.FILTER_PIDS, 1 if pids else 0)
        self._config(L.Config.FILTER_CGROUPS, 1 if cgroups else 0)

    def _check_layout(self) -> None:
        """The Python mirror of struct stall_val against the layout bcc compiled."""
        leaf = self._table(MAP_CGROUPS).Leaf
        got = [(n, getattr(leaf, n).offset) for n, _ in leaf._fields_]
        want = [(n, STALL_VAL_DTYPE.fields[n][1]) for n in STALL_VAL_DTYPE.names]
        if got != want or ctypes.sizeof(leaf) != STALL_VAL_DTYPE.itemsize:
            raise UnavailableError(f"struct stall_val is {got}, tierctl expects {want}", "stall_sampler.c")

    def _table(self, name: str) -> Any:
        return self._bpf[name.encode()]

    def _config(self, idx: int, value: int) -> None:
        t = self._table(L.MAP_CONFIG)
        t[t.Key(int(idx))] = t.Leaf(value)

    def counters(self) -> dict[str, int]:
        """Cumulative per-CPU counters, summed: episodes, victims, drops by cause, unmatched ends."""
        if self._bpf is None:
            return {}
        t = self._table(MAP_COUNTERS)
        return {c.name.lower(): int(t.sum(t.Key(int(c))).value) for c in StallCounter if c != StallCounter.NR}

    def drain(self) -> StallReport:
        now = time.monotonic()
        seconds, self._last = now - self._last, now
        if self._bpf is None:
            return StallReport(self.name, True, seconds)
        t0 = time.thread_time()
        got = drain_map(self._lib, self._table(MAP_CGROUPS).map_fd, self._keys, self._vals, self.drain_mode)
        self.drain_mode = got.mode
        if got.note and got.note not in self._health.notes:
            self._health.notes.append(got.note)
        victims = self._victims()
        kills: dict[int, int] = {}
        for v in victims:
            kills[v.cgroup_id] = kills.get(v.cgroup_id, 0) + 1
        rows: dict[int, CgroupStall] = {}
        for k, v in zip(self._keys[: got.rows].tolist(), self._vals[: got.rows].tolist(), strict=True):
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

    def stop(self) -> None:
        if self._bpf is not None:
            with contextlib.suppress(Exception):
                self._config(L.Config.ENABLED, 0)
            self._refresh_health()
        self._teardown()

    def _teardown(self) -> None:
        bpf, self._bpf = self._bpf, None
        if bpf is None and self._compiled is not None:
            bpf = self._compiled.bpf
        self._compiled = None
        if bpf is not None:
            with LOCK, captured_output(), contextlib.suppress(Exception):
                bpf.cleanup()
            atexit.unregister(bpf.cleanup)
        if self._stats_held:
            self._stats_held = False
            self.host.stats.release()
        if self._tracefs_held:
            self._tracefs_held = False
            self.host.tracefs.release()

    def _refresh_health(self) -> None:
        if self._bpf is None:
            return
        c = self.counters()
        self._health.dropped = sum(c[d.name.lower()] for d in DROP_COUNTERS)
        known = [r for r in (self.host.prog_run_ns(f.fd) for f in self._bpf.funcs.values()) if r is not None]
        if known:
            self._health.bpf_run_ns = sum(known)

    def health(self) -> Health:
        self._refresh_health()
        h = self._health
        return Health(h.samples, h.dropped, h.cpu_seconds, h.bpf_run_ns, list(h.notes))


# ------------------------------------------------------------------------------------ the fallback
def memory_events(cgfs: Any, path: str) -> dict[str, int]:
    """A v2 cgroup's ``memory.events`` (``low high max oom oom_kill oom_group_kill``, hierarchical).

    Through ``cgfs.memory_events(path)`` when the object has it (a CgroupFS that grew the method, or
    ``tierctl.kernel.memstat.MemStat``; dataclass or mapping answers, None fields dropped). Until the
    adapter has it, this reads the file below ``cgfs.memory_root`` itself, with the adapter's error
    rules — TEMPORARY: switch to the adapter.
    """
    reader = getattr(cgfs, "memory_events", None)
    if callable(reader):
        got = reader(path)
        items = dataclasses.asdict(got) if dataclasses.is_dataclass(got) else dict(got)
        # counters only: a None (not on this layout) or a flag (under_oom, local) is no count
        return {str(k): v for k, v in items.items() if isinstance(v, int) and not isinstance(v, bool)}
    if not cgfs.exists(path):
        raise InputError("no such cgroup", str(Path(cgfs.memory_root) / path))
    f = Path(cgfs.memory_root) / path.strip("/") / "memory.events"
    try:
        text = f.read_text()
    except FileNotFoundError:
        raise UnavailableError("not provided (memory controller not enabled here?)", str(f)) from None
    except OSError as e:
        raise KernelError(f"cannot read: {e.strerror or e}", str(f)) from None
    out = {}
    for no, line in enumerate(text.splitlines(), 1):
        name, _, value = line.partition(" ")
        if not value.strip().isdigit():
            raise KernelError(f"not a 'name value' line: {line!r}", f"{f}:{no}")
        out[name] = int(value)
    return out


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

    def __init__(
        self,
        cgfs: CgroupFS | None = None,
        *,
        max_cgroups: int = 4096,
        events: Callable[[Any, str], Mapping[str, int]] = memory_events,
    ) -> None:
        if max_cgroups < 1:
            raise InputError("max_cgroups must be positive", self.name)
        self._cgfs = cgfs
        self.max_cgroups = max_cgroups
        self._events = events
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
            tops = [p for p in fs.list("") if p and fs.cgroup_id(p) in wanted]
            if len(tops) < len(wanted):
                raise InputError(f"cgroup ids {sorted(wanted)} name only {len(tops)} cgroups", str(fs.root))
        else:
            tops = [""]
        self._tops = tops
        self._health = Health(notes=[avail.reason])
        self._prev = self._snapshot()
        self._last = time.monotonic()
        self._health.cpu_seconds += time.thread_time() - t0

    def _snapshot(self) -> dict[str, _Snap]:
        fs = self._fs()
        paths: set[str] = set()
        for top in self._tops or ():
            with contextlib.suppress(InputError):  # a target removed since
                paths.update(p for p in fs.list(top) if p)
        if len(paths) > self.max_cgroups:
            raise InputError(f"{len(paths)} cgroups: more than max_cgroups={self.max_cgroups}", str(fs.root))
        out = {}
        for p in sorted(paths):
            try:
                ev = self._events(fs, p)
                full = fs.pressure(p).full
                out[p] = _Snap(
                    fs.cgroup_id(p),
                    ev.get("max", 0) + ev.get("high", 0),
                    ev.get("oom_kill", 0),
                    full.total_us if full else 0,
                )
            except (InputError, UnavailableError):  # removed meanwhile, or no memory controller there
                continue
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
        try:
            e.source.stop()
        except Exception as err:
            reason += f"; stop failed too: {err}"
        e.state, e.reason = state, reason

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
                cpu = (h.cpu_seconds - e.last.cpu_seconds) / elapsed
                bpf = (h.bpf_run_ns - e.last.bpf_run_ns) / 1e9 / elapsed
                e.last = h
                over = (
                    [f"user CPU {cpu:.1%} > {self.budget.cpu_share:.1%}"]
                    if cpu > self.budget.cpu_share
                    else []
                )
                if bpf > self.budget.bpf_share:
                    over.append(f"BPF time {bpf:.1%} > {self.budget.bpf_share:.1%} of a core")
                if over:
                    self._detach(e, "over budget: " + ", ".join(over))
        out, self.notes = self.notes, []
        return out

    def stop(self) -> None:
        for e in self._entries:
            if e.state is State.RUNNING:
                self._stop(e, State.STOPPED, e.reason)

    def status(self) -> list[SamplerStatus]:
        out = []
        for e in self._entries:
            try:
                h = e.source.health()
            except Exception:
                h = e.last
            out.append(SamplerStatus(e.source.name, e.state.value, e.reason, h))
        return out
