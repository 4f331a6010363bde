"""The pressure ladder in the daemon: read the facts, decide (core.ladder, core.workingset), act.

One ``PressureControl`` per daemon. Each cycle it reads the machine's memory and, for every managed
cgroup, its charge and pressure signals (through ``Facts``, a kernel adapter or a simulation), runs
each cgroup's working-set probe and the ladder, and carries the actions out through ``Actuators``:
``memory.reclaim`` for trims and probe steps, events and the ``notify`` hook for notifications, the
``prekill`` hook, ``cgroup.kill`` and the ``cleanup`` hook for kills. Every action is also an event
(the socket API's subscribers see them: docs/pressure.md). Mode ``dry-run`` emits the events and
takes no action; ``off`` does nothing.

Never killed, whatever a profile says: the daemon's own cgroup and its ancestors, ``init.scope``.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from tierctl.core.ladder import Action, Ladder, Limits, Machine, Workload
from tierctl.core.workingset import ProbeLimits, Signals, WorkingSetProbe
from tierctl.errors import InputError, TierctlError, UnavailableError
from tierctl.profiles.schema import PressurePolicy
from tierctl.service.pressure_view import PsiHistory

MODES = ("off", "dry-run", "on")
HOOK_TIMEOUT_S = 10.0  # a prekill hook gets this long before the kill goes ahead


@dataclass(frozen=True)
class PsiFigures:
    """Memory PSI of the machine or a cgroup: % of wall time stalled (avg10) and the totals (µs).
    ``full`` is None where the kernel has no such line."""

    some_avg10: float
    some_total_us: int
    full_avg10: float | None = None
    full_total_us: int | None = None

    def to_json(self) -> dict[str, float | int | None]:
        return {
            "some_avg10": self.some_avg10,
            "full_avg10": self.full_avg10,
            "some_total_us": self.some_total_us,
            "full_total_us": self.full_total_us,
        }


@dataclass(frozen=True)
class CgroupFacts:
    current: int  # bytes charged (memory.current)
    psi_some: float  # % avg10 of memory.pressure "some"
    refaults: int  # workingset refaults so far (anon + file), a counter
    # for the front ends (tierctl pressure, the TUI, metrics); the ladder decides on the three above
    psi: PsiFigures | None = None
    kinds: Mapping[str, int | None] = field(default_factory=dict)  # anon, file, shmem, kernel, ... bytes
    nodes: Mapping[str, int] = field(default_factory=dict)  # node number -> bytes
    events: Mapping[str, int | None] = field(default_factory=dict)  # memory.events counters


class Facts(Protocol):
    def machine(self) -> Machine: ...

    def machine_psi(self) -> PsiFigures | None:
        """The system's memory PSI; None where the kernel has none."""
        ...

    def cgroup(self, path: str) -> CgroupFacts: ...


class Actuators(Protocol):
    def reclaim(self, path: str, nbytes: int) -> bool:
        """Reclaim ``nbytes`` from the cgroup; False when the kernel could reclaim no more."""
        ...

    def kill(self, path: str) -> None: ...


class Stalls(Protocol):
    """Reclaim stalls and OOM victims since the last drain (tierctl.samplers.stall_fallback.StallChain)."""

    def drain(self) -> Any: ...  # a StallReport

    def watchdog(self) -> list[str]: ...

    def stop(self) -> None: ...


class Hooks(Protocol):
    def run(self, argv: Sequence[str], env: Mapping[str, str], *, wait_s: float | None) -> None:
        """Start ``argv`` with ``env`` added; with ``wait_s``, wait at most that long for it."""
        ...


@dataclass(frozen=True)
class PressureConfig:
    mode: str = "on"
    limits: Limits = field(default_factory=Limits)
    probe: ProbeLimits = field(default_factory=ProbeLimits)
    own_cgroup: str = ""  # the daemon's cgroup ("/system.slice/tierctl.service"): never killed
    probe_above: float = 0.85  # working sets are probed (by reclaim) only while used >= this share

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InputError(f"must be one of {', '.join(MODES)}, got {self.mode!r}", "--pressure")


def never_killed(path: str, own_cgroup: str) -> bool:
    """The daemon's own cgroup and its ancestors, the root, and init.scope."""
    p = "/" + path.strip("/")
    if p == "/" or p.rstrip("/").endswith("/init.scope") or p == "/init.scope":
        return True
    own = "/" + own_cgroup.strip("/") if own_cgroup else ""
    return bool(own) and (own == p or own.startswith(p.rstrip("/") + "/"))


class PressureControl:
    def __init__(
        self,
        cfg: PressureConfig,
        facts: Facts,
        act: Actuators,
        hooks: Hooks,
        emit: Callable[..., None],
        *,
        stalls: Stalls | None = None,
        cgroup_path: Callable[[int], str | None] = lambda _id: None,
    ) -> None:
        """``stalls``: the reclaim-stall/OOM source, whose victims become ``oom_kill`` events and
        run the cleanup hook of their cgroup's profile; ``cgroup_path(id)``: a v2 cgroup id's path."""
        self.cfg = cfg
        self.stalls = stalls
        self.cgroup_path = cgroup_path
        self.stall_ms: dict[str, float] = {}  # path -> reclaim stall in the last drain, ms
        self.oom_kills = 0
        self.facts = facts
        self.act = act
        self.hooks = hooks
        self.emit = emit  # emit(kind, **info): the Service's event log
        self.ladder = Ladder(cfg.limits)
        self.probes: dict[str, WorkingSetProbe] = {}
        self._refaults: dict[str, tuple[float, int]] = {}
        self._asked: dict[str, tuple[int, int]] = {}  # path -> (charge before, bytes asked) last cycle
        self.yields: dict[str, float] = {}  # path -> share of what its trims asked that they freed
        self.last: list[Action] = []
        self.counts: dict[str, int] = {"trim": 0, "notify": 0, "kill": 0}  # actions taken (not dry-run)
        self.machine: Machine | None = None
        self.machine_psi: PsiFigures | None = None
        self.facts_last: dict[str, CgroupFacts] = {}  # path -> its facts as of the last cycle
        self.policies: Mapping[str, PressurePolicy] = {}  # path -> policy, as of the last cycle
        self.history = PsiHistory()

    def cycle(
        self,
        now: float,
        step_s: float,
        policies: Mapping[str, PressurePolicy],
        cold_share: Callable[[], Mapping[str, float]] = dict,
        *,
        early: bool = False,
    ) -> list[Action]:
        """One cycle over the managed cgroups (path -> its profile's policy); ``now`` is wall time
        (notification deadlines are Unix times). ``cold_share()`` (path -> share of its memory the
        heat model calls cold) is asked only when the machine is above its target. An ``early`` step
        (woken between cycles by a PSI trigger or the target: service/pressure_wake.py) runs the
        ladder only: no working-set probe step, no PSI history point."""
        if self.cfg.mode == "off":
            return []
        machine = self.machine = self.facts.machine()
        try:
            self.machine_psi = self.facts.machine_psi()
        except TierctlError:
            self.machine_psi = None
        self.policies = dict(policies)
        self._stalls(machine, policies)
        probing = not early and machine.used >= self.cfg.probe_above * machine.total
        facts: dict[str, CgroupFacts] = {}
        for path, pol in policies.items():
            try:
                facts[path] = self.facts.cgroup(path)
            except TierctlError:
                continue  # gone between discovery and now
            self._judge_trims(path, facts[path].current)
            probe = self._probe(path, pol, machine.total)
            self._probe_step(now, path, facts[path], probe, pol, probing)
        self.facts_last = facts
        if not early:
            self.history.record(self.machine_psi, facts)
        for gone in self.probes.keys() - policies.keys():
            del self.probes[gone]
            self._refaults.pop(gone, None)
            self.yields.pop(gone, None)
        above = machine.used > self.cfg.limits.target_ratio * machine.total
        cold = cold_share() if above else {}
        workloads = [
            self._workload(p, policies[p], cold.get(p, 0.0), f, self.probes[p], machine.total)
            for p, f in facts.items()
        ]
        self.last = self.ladder.decide(now, machine, workloads, step_s)
        by_current = {w.path: w.current for w in workloads}
        for a in self.last:
            self._carry_out(a, machine, policies[a.path], by_current)
        return self.last

    # ---- the kernel's own OOM kills and reclaim stalls ---------------------------------------------
    def _stalls(self, machine: Machine, policies: Mapping[str, PressurePolicy]) -> None:
        if self.stalls is None:
            return
        for note in self.stalls.watchdog():
            self.emit("stall_sampler", message=note)
        report = self.stalls.drain()
        stall_ms: dict[str, float] = {}
        for c in report.cgroups:
            path = c.path or self.cgroup_path(c.cgroup_id)
            if path is not None and c.stall_ns:
                p = "/" + path.strip("/")
                stall_ms[p] = stall_ms.get(p, 0.0) + c.stall_ns / 1e6
            if c.oom_kills and not report.victims and path is not None:  # counters only (fallback)
                self._oom_kill(machine, "/" + path.strip("/"), c.oom_kills, 0, "", policies, report.source)
        self.stall_ms = stall_ms
        for v in report.victims:
            path = self.cgroup_path(v.cgroup_id)
            where = "/" + path.strip("/") if path is not None else f"cgroup id {v.cgroup_id}"
            self._oom_kill(machine, where, 1, v.tgid or v.pid, v.comm, policies, report.source)

    def _oom_kill(
        self,
        m: Machine,
        path: str,
        n: int,
        pid: int,
        comm: str,
        policies: Mapping[str, PressurePolicy],
        source: str,
    ) -> None:
        """The kernel's OOM killer killed ``n`` processes of ``path``: an event, the count, and the
        cleanup hook of the cgroup's profile (the job scheduler cleans up after it too)."""
        self.oom_kills += n
        self.emit("oom_kill", cgroup=path, kills=n, pid=pid, comm=comm, source=source)
        pol = policies.get(path)
        if pol is not None and self.cfg.mode == "on" and (argv := pol.hook("cleanup")):
            env = self._env(Action("oom_kill", path, 0, reason="the kernel's OOM killer"), m)
            env["TIERCTL_PID"] = str(pid)
            try:
                self.hooks.run(argv, env, wait_s=None)
            except TierctlError as e:
                self.emit("pressure_failed", cgroup=path, action="cleanup", message=str(e))

    def close(self) -> None:
        if self.stalls is not None:
            self.stalls.stop()

    # ---- per cgroup -------------------------------------------------------------------------------
    def _judge_trims(self, path: str, current: int) -> None:
        """How much of what the last cycle asked of ``path`` its charge fell by (an EWMA). A trim on a
        tiered machine may only demote: then the ladder skips it and goes on to the next rung. Not
        asked for a while, the yield recovers, so the cgroup is tried again."""
        y = self.yields.get(path, 1.0)
        asked = self._asked.pop(path, None)
        if asked is None:
            self.yields[path] = min(1.0, y + 0.02)
            return
        before, n = asked
        freed = min(1.0, max(0, before - current) / n) if n > 0 else 1.0
        self.yields[path] = 0.5 * y + 0.5 * freed

    def _asking(self, path: str, current: int, nbytes: int) -> None:
        before, n = self._asked.get(path, (current, 0))
        self._asked[path] = (before, n + nbytes)

    def _probe(self, path: str, pol: PressurePolicy, total: int) -> WorkingSetProbe:
        probe = self.probes.get(path)
        if probe is None:
            probe = self.probes[path] = WorkingSetProbe(self.cfg.probe)
        probe.floor = pol.protect_bytes(total)
        return probe

    def _probe_step(
        self,
        now: float,
        path: str,
        f: CgroupFacts,
        probe: WorkingSetProbe,
        pol: PressurePolicy,
        probing: bool,
    ) -> None:
        then = self._refaults.get(path)
        self._refaults[path] = (now, f.refaults)
        rate = 0.0 if then is None or now <= then[0] else max(0, f.refaults - then[1]) / (now - then[0])
        if not pol.trim or not probing:  # probing is reclaim too: only once memory gets short
            return
        n = probe.step(now, Signals(f.current, f.psi_some, rate))
        if n <= 0 or self.cfg.mode != "on":
            return
        try:
            self._asking(path, f.current, n)
            if not self.act.reclaim(path, n):
                probe.stuck(now, Signals(f.current, f.psi_some, rate))
        except TierctlError as e:
            self.emit("pressure_failed", cgroup=path, action="probe", message=str(e))

    def _workload(
        self, path: str, pol: PressurePolicy, cold: float, f: CgroupFacts, probe: WorkingSetProbe, total: int
    ) -> Workload:
        return Workload(
            path=path,
            current=f.current,
            working_set=probe.estimate,
            cold_share=cold,
            priority=pol.priority,
            protect=pol.protect_bytes(total),
            trim=pol.trim,
            trim_rate=int(pol.trim_rate_mbps * 1e6),
            notify=pol.notify,
            grace_s=pol.grace_s,
            killable=pol.kill == "cgroup" and not never_killed(path, self.cfg.own_cgroup),
            trim_yield=self.yields.get(path, 1.0),
        )

    # ---- actions ----------------------------------------------------------------------------------
    def _env(self, a: Action, m: Machine) -> dict[str, str]:
        env = {
            "TIERCTL_EVENT": a.kind,
            "TIERCTL_CGROUP": a.path,
            "TIERCTL_BYTES": str(a.nbytes),
            "TIERCTL_MEM_USED": str(m.used),
            "TIERCTL_MEM_TOTAL": str(m.total),
            "TIERCTL_TARGET": str(int(self.cfg.limits.target_ratio * m.total)),
            "TIERCTL_REASON": a.reason,
        }
        if a.deadline is not None:
            env["TIERCTL_DEADLINE"] = f"{a.deadline:.3f}"
        return env

    def _carry_out(self, a: Action, m: Machine, pol: PressurePolicy, by_current: Mapping[str, int]) -> None:
        dry = self.cfg.mode != "on"
        info: dict[str, Any] = {"cgroup": a.path, "bytes": a.nbytes, "reason": a.reason, "dry_run": dry}
        if a.deadline is not None:
            info["deadline"] = a.deadline
        env = self._env(a, m)
        try:
            if a.kind == "trim":
                if not dry:
                    self._asking(a.path, by_current.get(a.path, 0), a.nbytes)
                    self.act.reclaim(a.path, a.nbytes)
                self.emit("pressure_trim", **info)
            elif a.kind == "notify":
                self.emit("pressure_notify", **info)  # subscribers of the socket API see this
                if not dry and (argv := pol.hook("notify")):
                    self.hooks.run(argv, env, wait_s=None)
            elif a.kind == "kill":
                if not dry and (argv := pol.hook("prekill")):
                    self.hooks.run(argv, env, wait_s=HOOK_TIMEOUT_S)
                if not dry:
                    self.act.kill(a.path)
                self.emit("pressure_kill", **info)
                if not dry and (argv := pol.hook("cleanup")):
                    self.hooks.run(argv, env, wait_s=None)
        except TierctlError as e:
            self.emit("pressure_failed", cgroup=a.path, action=a.kind, message=str(e))
            return
        if not dry:
            self.counts[a.kind] += 1


def hook_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """The daemon's environment with ``extra`` added (PATH kept: hooks may call other programs)."""
    return {**os.environ, **extra}


class ProcessHooks:
    """Hooks as child processes in their own session, stdin/stdout/stderr to /dev/null. One that is
    waited for and overruns its time is killed, and the ladder goes on (a hung prekill hook must
    not keep the machine out of memory)."""

    def __init__(self) -> None:
        self.running: list[subprocess.Popen[bytes]] = []
        self.timed_out = 0

    def run(self, argv: Sequence[str], env: Mapping[str, str], *, wait_s: float | None) -> None:
        self.running = [p for p in self.running if p.poll() is None]  # reap the finished ones
        try:
            p = subprocess.Popen(
                list(argv),
                env=hook_environment(env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as e:
            raise UnavailableError(f"cannot run the hook: {e.strerror}", argv[0]) from None
        if wait_s is None:
            self.running.append(p)
            return
        try:
            p.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            self.timed_out += 1
            p.kill()
            p.wait()
