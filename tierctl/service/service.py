"""The daemon's Service: discovery, profiles, the loop, and the one object every front end uses.

One object, no globals. Each ``cycle()``: discover the managed cgroups and their processes, match
each cgroup to its profile, turn profiles and operator overrides into per-cgroup quotas
(``service.quotas``), and run one loop cycle. ``reload()`` is transactional: the new profile set is
validated in full and swapped in only when it has no problem. Mutations of the overrides are
``service.mutations`` (persisted before acknowledged); what each override or action actually did,
judged cycle by cycle, is ``service.requests`` over ``service.outcomes``; what the views show per
cgroup is ``service.analytics``; which cgroups are managed and their profiles is
``service.discovery``; the memory-pressure ladder's pacing is ``service.pressure_driver``; the cycle
log is ``service.cycle_log``; events are ``service.events``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tierctl import __version__
from tierctl.core.policy import Quota
from tierctl.core.topology import Topology
from tierctl.errors import InputError, TierctlError
from tierctl.k8s import PodResolver
from tierctl.kernel import kubelet
from tierctl.kernel.roots import LIVE_CGROUP
from tierctl.profiles import ProfileSet, load_profiles
from tierctl.profiles.schema import PressurePolicy
from tierctl.service import analytics
from tierctl.service.contract import API_VERSION
from tierctl.service.cycle_log import CycleLog
from tierctl.service.discovery import Discovery
from tierctl.service.events import EventLog
from tierctl.service.kernel_loop import LoopConfig
from tierctl.service.metrics import CycleTimes, ReloadCounts
from tierctl.service.metrics_service import MetricsFacts, heat_by_tier, knob_counts, last_reload_ok
from tierctl.service.mutations import OverrideEditor
from tierctl.service.outcomes import ALL
from tierctl.service.overrides import Overrides, OverrideStore
from tierctl.service.platform import KernelPlatform, Platform
from tierctl.service.pressure import PressureControl
from tierctl.service.pressure_driver import PressureDriver
from tierctl.service.quotas import pins_in_force, quota_view, resolve_quotas
from tierctl.service.requests import Requests

DEFAULT_STATE_DIR = Path("/var/lib/tierctl")  # the unit's StateDirectory=; tierctl knobs looks here


@dataclass(frozen=True)
class DaemonConfig:
    profiles_dir: Path
    state_dir: Path = DEFAULT_STATE_DIR  # overrides and knobs.json live here (survive restarts, reboots)
    scope: tuple[str, ...] = ()  # cgroup path prefixes to manage; () = every cgroup with processes
    cgroup_root: Path = LIVE_CGROUP
    dry_run: bool = False
    hint_faults: str = "auto"  # NUMA hint faults for sampling: auto (unless a PMU samples addresses), on, off
    budget_pages: int = 65536
    rate_mbps: float | None = None
    cycle_s: float = 1.0  # the cycle period: turns profiles' MB/s rate limits into pages per cycle
    samplers: tuple[str, ...] = ("bpf-perf", "bpf-fault", "damon", "idle")
    max_samplers: int = 1  # how many of them run at once (the first that can, in that order)
    policy: str = "tierctl"
    policy_options: dict[str, Any] = field(default_factory=dict)  # keyword options of the policy
    pressure: str = "on"  # the memory-pressure ladder: on, dry-run (log what it would do), off
    memory_target: float = 0.95  # keep MemTotal - MemAvailable under this share of MemTotal
    loop_options: dict[str, Any] = field(default_factory=dict)
    cycle_log: Path | None = None  # one JSON line per cycle (what it saw, decided and moved)
    kubelet_cgroup_driver: str = "auto"  # how the kubelet names pod cgroups: systemd, cgroupfs, auto
    node_name: str | None = None  # this Kubernetes node: its pods are looked up in the API server
    kubeconfig: Path | None = None  # API credentials; else $KUBECONFIG, else the in-cluster account


class Service:
    def __init__(
        self,
        cfg: DaemonConfig,
        *,
        platform: Platform | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.cfg = cfg
        self.clock = clock
        self.wall = wall  # event time stamps
        self.started = clock()
        self.profiles: ProfileSet = load_profiles([cfg.profiles_dir])  # ProfileError: refuse to start
        self.events = EventLog(wall)
        self._cycle_log = CycleLog(cfg.cycle_log, wall, self._event) if cfg.cycle_log is not None else None
        self.pods = PodResolver.from_config(
            kubelet.driver(cfg.kubelet_cgroup_driver), cfg.node_name, cfg.kubeconfig
        )  # docs/pods.md
        self.editor = OverrideEditor(
            OverrideStore(cfg.state_dir / "overrides.json"), self.events, self._known, self._topology
        )
        self.platform: Platform = platform or KernelPlatform(cfg.cgroup_root)
        self.cgroupfs = self.platform.cgroups
        self.procfs = self.platform.procs
        self.topo = self.platform.topology
        self.discovery = Discovery(
            self.cgroupfs, cfg.scope, lambda path: self.pods.pod(path), lambda: self.profiles
        )
        self.loop = self.platform.make_loop(
            self.discovery.targets,
            LoopConfig(
                dry_run=cfg.dry_run,
                rate_mbps=cfg.rate_mbps,
                budget_pages=cfg.budget_pages,
                samplers=list(cfg.samplers),
                knob_state=cfg.state_dir / "knobs.json",
                hint_faults=cfg.hint_faults,
                max_running=cfg.max_samplers,
                policy=cfg.policy,
                policy_options=dict(cfg.policy_options),
                **cfg.loop_options,
            ),
        )
        # what each override or action did: the mover's plan and report of every cycle, judged
        self.requests = Requests(
            self.loop,
            lambda: self.overrides,
            self._topology,
            lambda: pins_in_force(self.matches, self.profiles, self.overrides),
            dry_run=cfg.dry_run,
            wall=wall,
            emit=self._event,
        )
        self.outcomes = self.requests.book
        self.ladder = self.make_ladder(cfg)

        self.last_cycle_s = 0.0
        self.last_cycle_at: float | None = None  # clock() when cycle() last returned (paused too)
        self.moved_by_cgroup: dict[str, dict[str, int]] = {}  # path -> pages promoted/demoted so far
        self.cycle_times = CycleTimes()
        self.cycles = 0
        self.moved = {"promoted": 0, "demoted": 0}
        self.reload_failures = 0
        self.reload_counts = ReloadCounts()  # reloads by trigger (signal, watch, api) and result
        self._refused_seen: set[int] = set()

    # ---- the loop ---------------------------------------------------------------------------------
    def start(self) -> None:
        # the pressure ladder's stall source first, in this thread: bcc captures the process's stderr
        # while it compiles, so a compile beside the loop would swallow what the daemon logs meanwhile
        self.ladder.start(self.loop.guard)
        for line in self.loop.restored_at_start:
            self._event("knobs", message=f"left set by an earlier run, restored: {line}")
        why = self.loop.hint_reason
        if why and why != "off":
            self._event("hint_faults", message=f"NUMA hint faults off: {why}")
        for s in self.loop.start():
            self._event("sampler", sampler=s.name, state=s.state, reason=s.reason)
        if (pods_line := self.pods.start()) is not None:
            self._event("pods", message=pods_line)

    def stop(self) -> None:
        try:
            self.ladder.close()
            self.pods.stop()
            self.loop.stop()
        finally:
            self._event("stopped")
            if self._cycle_log is not None:
                self._cycle_log.close()

    def make_ladder(self, cfg: DaemonConfig) -> PressureDriver:
        """The pressure ladder by ``cfg`` (mode, target, cycle) on this Service's platform."""
        io = self.platform.pressure_io() if cfg.pressure != "off" else None
        return PressureDriver(
            cfg.pressure, cfg.memory_target, cfg.cycle_s, io, self._event, self.clock, self.wall
        )

    @property
    def pressure(self) -> PressureControl | None:
        """The ladder itself (None: off, or nothing to run it with on this platform)."""
        return self.ladder.control

    @property
    def matches(self) -> dict[str, str]:
        """Managed cgroup path -> its profile's name ("-": none), as of the last discovery."""
        return self.discovery.matches

    def wait_pressure(self, timeout_s: float) -> bool:
        """Sleep at most ``timeout_s`` between cycles (without the lock), woken early by a PSI
        trigger; True when the ladder should take a step now (``pressure_step``, with the lock)."""
        return self.ladder.wait(timeout_s)

    def pressure_step(self) -> None:
        """A ladder step between cycles (placement waits for its cycle)."""
        self._pressure_cycle(early=True)

    def _pressure_cycle(self, *, early: bool = False) -> None:
        """The ladder (docs/pressure.md) over the managed cgroups, by their profiles' [pressure]."""
        if self.ladder.control is None:
            return
        by_name = {p.name: p for p in self.profiles}
        policies = {
            path: (by_name[m].pressure if m in by_name else PressurePolicy())
            for path, m in self.matches.items()
        }
        self.ladder.step(policies, self._cold_share, early=early)

    def _cold_share(self) -> dict[str, float]:
        """Per managed cgroup, the share of its present memory that is not hot (what trims take)."""
        out = {}
        for path, c in self._per_cgroup().items():
            total = c["fast_bytes"] + c["slow_bytes"]
            out[path] = 1.0 - c["hot_bytes"] / total if total else 0.0
        return out

    def cycle(self) -> None:
        self.platform.advance()  # a simulated machine plays its next epoch; the kernel runs by itself
        self._pressure_cycle()  # relief does not wait for placement (nor for a pause of it)
        if self.overrides.paused:
            self.loop.chain.drain()  # keep the maps from filling; decide nothing
            self.last_cycle_at = self.clock()
            self.outcomes.paused()
            return
        quotas = self._quotas()
        self.loop.controller.quotas = quotas
        rep = self.loop.cycle()
        self._report_refused()
        self.cycles += 1
        self.last_cycle_s = rep.seconds
        self.cycle_times.observe(rep.seconds)
        self.last_cycle_at = self.clock()
        self.moved["promoted"] += rep.promoted
        self.moved["demoted"] += rep.demoted
        if rep.promoted or rep.demoted:
            names = self.loop.view.cgroups
            per = {
                names[i]: {"promoted": up, "demoted": down}
                for i, (up, down) in rep.by_cgroup.items()
                if i < len(names)
            }
            for path, moved in per.items():
                total = self.moved_by_cgroup.setdefault(path, {"promoted": 0, "demoted": 0})
                total["promoted"] += moved["promoted"]
                total["demoted"] += moved["demoted"]
            self._event("migrated", cycle=rep.now, promoted=rep.promoted, demoted=rep.demoted, cgroups=per)
        if self._cycle_log is not None:
            self._cycle_log.write(
                rep, int(self.loop.controller.heat.n_pages), self.loop.controller.policy.summary()
            )
        for e in self.loop.watchdog_events:
            self._event("watchdog", message=e)
        self.loop.watchdog_events.clear()
        self.requests.judge(rep, quotas)

    def _topology(self) -> Topology:
        last = self.loop.view.last  # the loop's latest snapshot already read the topology
        return last.topology if last is not None else self.topo.read().topology

    def _quotas(self) -> dict[int, Quota]:
        return resolve_quotas(
            self.loop.view.cgroups,
            self.matches,
            self.profiles,
            self.overrides,
            self._topology(),
            self.cfg.cycle_s,
        )

    # ---- reads -------------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        state = "paused" if self.overrides.paused else ("dry-run" if self.cfg.dry_run else "running")
        return {
            "version": __version__,
            "api": API_VERSION,
            "state": state,
            "cycle": self.cycles,
            "reload_failures": self.reload_failures,
            "uptime_s": self.clock() - self.started,
            "tracked_pages": self.tracked_pages(),
            "last_cycle_s": self.last_cycle_s,
            "last_cycle_age_s": None if self.last_cycle_at is None else self.clock() - self.last_cycle_at,
            "cycle_seconds": self.cycle_times.to_json(),
            "moved": {**self.moved, "outcomes": dict(self.loop.controller.totals.outcomes)},
            "samplers": [
                {
                    "name": s.name,
                    "state": s.state,
                    "reason": s.reason,
                    "health": {
                        "samples": s.health.samples,
                        "dropped": s.health.dropped,
                        "cpu_seconds": s.health.cpu_seconds,
                        "bpf_run_ns": s.health.bpf_run_ns,
                    },
                }
                for s in self.loop.chain.status()
            ],
            "profiles": self.profiles.names(),
            "overrides": self.overrides.to_json(),
            "outcomes": self.outcomes.to_json(),  # by cgroup ("*": a migration pass over all)
            "pods": self.pods.status(),  # the API server lookup: docs/pods.md
        }

    def pressure_status(self) -> dict[str, Any]:
        """The memory-pressure ladder: the machine, its target, the episode, per cgroup its charge,
        memory by kind and node, PSI, working-set estimate and state, and the last actions."""
        return self.ladder.status(self.platform.name)

    def metrics_facts(self) -> MetricsFacts:
        """What the metrics need beyond the reads above: the heat of each cgroup's pages by tier, the
        knobs set and drifted, the last reload's result and the cycle period."""
        st = self.loop.view.last
        heat = {} if st is None else heat_by_tier(st, self.loop.view.cgroups, self.loop.controller.heat.heat)
        knobs = knob_counts(self.loop.guard, self.loop.restored_at_start)
        return MetricsFacts(heat, *knobs, last_reload_ok(self.events), self.cfg.cycle_s)

    def tracked_pages(self) -> int:
        """Pages of the managed processes present in RAM, as of the last cycle."""
        st = self.loop.view.last
        return 0 if st is None else int(np.count_nonzero(st.node >= 0))

    def topology(self) -> dict[str, Any]:
        return self.topo.read().to_json()

    def _per_cgroup(self) -> dict[str, dict[str, Any]]:
        st = self.loop.view.last
        if st is None:
            return {}
        return analytics.per_cgroup(
            st,
            self.loop.view.cgroups,
            self.loop.controller.heat.heat,
            self.loop.controller.policy.hot_thresholds(),
            self.procfs.page_size,
            self.matches,
            self.overrides.pins,
            self.pods.row,
        )

    def cgroups(self) -> list[dict[str, Any]]:
        rows = self._per_cgroup()
        for path, row in rows.items():  # counters since the daemon started (metrics: rates by namespace)
            moved = self.moved_by_cgroup.get(path, {})
            row["promoted_pages"] = moved.get("promoted", 0)
            row["demoted_pages"] = moved.get("demoted", 0)
            row["outcome"] = self.outcomes.get(path)
        return sorted(rows.values(), key=lambda c: -c["fast_bytes"])

    def cgroup_detail(self, path: str) -> dict[str, Any]:
        path = "/" + path.strip("/")
        info = self._per_cgroup().get(path)
        if info is None:
            raise InputError("not a managed cgroup with memory", path)
        st = self.loop.view.last
        assert st is not None
        index = self.loop.view.cgroups.index(path)
        heat = self.loop.controller.heat.heat
        extra = analytics.detail(
            st, index, heat, lambda pages: self.loop.view.locate(pages)[0], self._comm, self.events, path
        )
        quota = quota_view(path, self.matches.get(path), self.profiles, self.overrides, st.topology)
        return {**info, **extra, "outcome": self.outcomes.get(path), "quota": quota}

    def _comm(self, pid: int) -> str:
        try:
            return self.procfs.comm(pid)
        except TierctlError:
            return "?"

    def events_since(self, since: int) -> tuple[int, list[dict[str, Any]]]:
        return self.events.since(since)

    # ---- mutations ----------------------------------------------------------------------------------
    def _report_refused(self) -> None:
        """One ``skipped`` event per process the memory view may not read (permission): it is left
        out of placement, and the others go on."""
        refused = self.loop.view.refused
        for pid in refused.keys() - self._refused_seen:
            self._refused_seen.add(pid)
            self._event("skipped", pid=pid, message=refused[pid])

    @property
    def overrides(self) -> Overrides:
        return self.editor.overrides

    @property
    def store(self) -> OverrideStore:
        return self.editor.store

    def _known(self, path: str) -> str:
        norm = "/" + path.strip("/")
        if not self.cgroupfs.exists(norm.lstrip("/")):
            raise InputError("no such cgroup", norm)
        return norm

    def pin(self, path: str, tier: str) -> dict[str, Any]:
        return self.editor.pin(path, tier, lambda p: self.requests.pin(p, tier))

    def unpin(self, path: str) -> dict[str, Any]:
        return self.editor.pin(path, "auto", lambda p: self.requests.pin(p, "auto"))

    def set_quota(self, path: str, fast_min: str | int | None, fast_max: str | int | None) -> dict[str, Any]:
        return self.editor.set_quota(
            path, fast_min, fast_max, lambda p: self.requests.quota(p, fast_min, fast_max)
        )

    def pause(self) -> dict[str, Any]:
        return self.editor.set_paused(True)

    def resume(self) -> dict[str, Any]:
        return self.editor.set_paused(False)

    def migrate_now(self, path: str | None) -> dict[str, Any]:
        """Queue a placement pass: the next cycle's policy decides even without news; the outcome
        reports what that cycle moved for the cgroup (for a pinned one: until the pin is met)."""
        key = ALL if path is None else self._known(path)
        outcome = self.requests.migrate(key)
        self._event("migrate", cgroup=key, outcome=outcome)
        # "cycle" and "moved": as before the pass (the keys older clients read)
        return {
            "ok": True,
            "outcome": outcome,
            "queued": "all" if path is None else key,
            "cycle": self.cycles,
            "moved": dict(self.moved),
        }

    def read_profiles(self) -> ProfileSet:
        """The profile set on disk, checked (a ``ProfileError`` lists every problem; anything unforeseen
        becomes an ``InputError``). Touches no state of the Service: callable without its lock, so a
        slow parse never holds up the API or the loop."""
        try:
            return load_profiles([self.cfg.profiles_dir])
        except TierctlError:
            raise
        except Exception as e:  # RecursionError, MemoryError...: never take the daemon down
            raise InputError(
                f"profiles could not be checked ({type(e).__name__}: {e}); running set kept",
                str(self.cfg.profiles_dir),
            ) from None

    def reload(
        self, prepared: ProfileSet | TierctlError | None = None, *, trigger: str = "api"
    ) -> dict[str, Any]:
        """Install a new profile set: ``prepared`` (what ``read_profiles`` gave, or the error it raised,
        e.g. read outside the lock), else read now. On any failure the running set stays, an event says
        why, the failure is counted and the error raised."""
        try:
            new = self.read_profiles() if prepared is None else prepared
            if isinstance(new, TierctlError):
                raise new
        except TierctlError as e:
            self.reload_failures += 1
            self.reload_counts.observe(trigger, False)
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            self._event("reload_failed", trigger=trigger, message=first)
            raise
        self.profiles = new
        self.reload_counts.observe(trigger, True)
        self._event("reloaded", trigger=trigger, profiles=new.names())
        return {"profiles": new.names()}

    def _event(self, kind: str, **info: Any) -> None:
        self.events.emit(kind, **info)
