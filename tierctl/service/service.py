"""The daemon's Service: discovery, profiles, overrides, the loop, and what the front ends read.

One object, no globals. Each ``cycle()``: discover the managed cgroups and their
processes, match each cgroup to its profile, turn profiles and operator overrides
into per-cgroup quotas (pin fast = everything may stay fast, pin slow = nothing
may), and run one loop cycle. ``reload()`` is transactional: the new profile set
is validated in full and swapped in only when it has no problem. Every mutation
of the overrides is persisted before it is acknowledged.
"""

from __future__ import annotations

import collections
import copy
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from tierctl import __version__, values
from tierctl.core.controller import CycleReport
from tierctl.core.policy import Quota, amount_to_pages
from tierctl.errors import InputError, TierctlError
from tierctl.profiles import ProfileSet, Workload, load_profiles
from tierctl.profiles.schema import Placement
from tierctl.service.contract import API_VERSION
from tierctl.service.kernel_loop import LoopConfig
from tierctl.service.metrics import CycleTimes
from tierctl.service.overrides import Overrides, OverrideStore, check_tier
from tierctl.service.platform import KernelPlatform, Platform

ALL_PAGES = 1 << 40
STRIP = 64  # buckets of the address-space heat strip in cgroup_detail()


@dataclass(frozen=True)
class DaemonConfig:
    profiles_dir: Path
    state_dir: Path = Path("/var/lib/tierctl")  # overrides live here (survive restarts and reboots)
    scope: tuple[str, ...] = ()  # cgroup path prefixes to manage; () = every cgroup with processes
    cgroup_root: Path = Path("/sys/fs/cgroup")
    dry_run: bool = False
    hint_faults: str = "auto"  # NUMA hint faults for sampling: auto (unless a PMU samples addresses), on, off
    budget_pages: int = 65536
    rate_mbps: float | None = None
    cycle_s: float = 1.0  # the cycle period: turns profiles' MB/s rate limits into pages per cycle
    samplers: tuple[str, ...] = ("bpf-perf", "bpf-fault", "damon", "idle")
    max_samplers: int = 1  # how many of them run at once (the first that can, in that order)
    loop_options: dict[str, Any] = field(default_factory=dict)
    cycle_log: Path | None = None  # one JSON line per cycle (what it saw, decided and moved)


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
        self._cycle_log = _open_log(cfg.cycle_log) if cfg.cycle_log is not None else None
        self.store = OverrideStore(cfg.state_dir / "overrides.json")
        self.overrides: Overrides = self.store.load()
        self.events: collections.deque[dict[str, Any]] = collections.deque(maxlen=1000)
        self.seq = 0
        if self.store.problem:
            self._event("overrides", message=self.store.problem)
        self.platform: Platform = platform or KernelPlatform(cfg.cgroup_root)
        self.cgroupfs = self.platform.cgroups
        self.procfs = self.platform.procs
        self.topo = self.platform.topology
        self.matches: dict[str, str] = {}  # cgroup -> profile name
        self.loop = self.platform.make_loop(
            self._targets,
            LoopConfig(
                dry_run=cfg.dry_run,
                rate_mbps=cfg.rate_mbps,
                budget_pages=cfg.budget_pages,
                samplers=list(cfg.samplers),
                hint_faults_state=(cfg.state_dir / "knobs.json") if cfg.hint_faults != "off" else None,
                hint_faults=cfg.hint_faults,
                max_running=cfg.max_samplers,
                **cfg.loop_options,
            ),
        )
        self.last_cycle_s = 0.0
        self.cycle_times = CycleTimes()
        self.cycles = 0
        self.moved = {"promoted": 0, "demoted": 0}
        self.reload_failures = 0
        self._refused_seen: set[int] = set()

    # ---- the loop ---------------------------------------------------------------------------------
    def start(self) -> None:
        for line in getattr(self.loop, "restored_at_start", []):
            self._event("knobs", message=f"left set by an earlier run, restored: {line}")
        why = getattr(self.loop, "hint_reason", "")
        if why and why != "off":
            self._event("hint_faults", message=f"NUMA hint faults off: {why}")
        for s in self.loop.start():
            self._event("sampler", sampler=s.name, state=s.state, reason=s.reason)

    def stop(self) -> None:
        try:
            self.loop.stop()
        finally:
            self._event("stopped")
            if self._cycle_log is not None:
                self._cycle_log.close()

    def cycle(self) -> None:
        self.platform.advance()  # a simulated machine plays its next epoch; the kernel runs by itself
        if self.overrides.paused:
            self.loop.chain.drain()  # keep the maps from filling; decide nothing
            return
        self.loop.controller.quotas = self._quotas()
        rep = self.loop.cycle()
        self._report_refused()
        self.cycles += 1
        self.last_cycle_s = rep.seconds
        self.cycle_times.observe(rep.seconds)
        self.moved["promoted"] += rep.promoted
        self.moved["demoted"] += rep.demoted
        if rep.promoted or rep.demoted:
            names = self.loop.view.cgroups
            per = {
                names[i]: {"promoted": up, "demoted": down}
                for i, (up, down) in rep.by_cgroup.items()
                if i < len(names)
            }
            self._event("migrated", cycle=rep.now, promoted=rep.promoted, demoted=rep.demoted, cgroups=per)
        if self._cycle_log is not None:
            self._log_cycle(rep)
        for e in self.loop.watchdog_events:
            self._event("watchdog", message=e)
        self.loop.watchdog_events.clear()

    def _log_cycle(self, rep: CycleReport) -> None:
        assert self._cycle_log is not None
        line: dict[str, Any] = {
            "time": round(self.wall(), 3),
            "cycle": rep.now,
            "seconds": round(rep.seconds, 4),
            "cpu_s": round(rep.cpu_s, 4),
            "mover_cpu_s": round(rep.mover_cpu_s, 4),
            "samples": rep.samples,
            "decided": rep.decided,
            "planned": [rep.planned_promotions, rep.planned_demotions],
            "promoted": rep.promoted,
            "demoted": rep.demoted,
            "rate_limited": rep.rate_limited,
            "tracked_pages": int(self.loop.controller.heat.n_pages),
        }
        stats = getattr(self.loop.controller.policy, "stats", None)
        if rep.decided and stats is not None:
            # scalar figures (counts, the target, whether every page was evaluated), not arrays
            line["policy"] = {k: v for k, v in vars(stats).items() if isinstance(v, bool | int | float)}
        try:
            self._cycle_log.write(json.dumps(line) + "\n")
        except OSError as e:
            why = f"{self.cfg.cycle_log}: {e.strerror}; not logging cycles any more"
            self._event("cycle_log", message=why)
            self._cycle_log.close()
            self._cycle_log = None

    def _in_scope(self, path: str) -> bool:
        return not self.cfg.scope or any(
            path == s or path.startswith(s.rstrip("/") + "/") for s in self.cfg.scope
        )

    def _targets(self) -> list[tuple[int, str]]:
        out, matches = [], {}
        for path in self.cgroupfs.list():
            norm = "/" + path.strip("/")
            if not self._in_scope(norm):
                continue
            try:
                pids = self.cgroupfs.pids(path)
            except TierctlError:
                continue  # vanished between list and read
            if not pids:
                continue
            m = self.profiles.match(Workload(cgroup=norm))
            matches[norm] = m.profile.name if m else "-"
            out += [(pid, norm) for pid in pids]
        self.matches = matches
        return out

    def _quotas(self) -> dict[int, Quota]:
        last = self.loop.view.last  # the loop's latest snapshot already read the topology
        topo = last.topology if last is not None else self.topo.read().topology
        cap, page = topo.fast_capacity, topo.page_size
        out = {}
        by_name = {p.name: p for p in self.profiles}
        for i, path in enumerate(self.loop.view.cgroups):
            pin = self.overrides.pins.get(path)
            prof = by_name.get(self.matches.get(path, ""))
            extra = self._placement(prof.placement, page) if prof else {}
            # a pin overrides the profile's quota and hot threshold (all of it, hot or not), not its
            # rate limits
            limits = {k: v for k, v in extra.items() if k in ("promote_pages", "demote_pages")}
            if pin == "fast":
                out[i] = Quota(min_pages=ALL_PAGES, **limits)
            elif pin == "slow":
                out[i] = Quota(0, 0, **limits)
            else:
                q = prof.placement.quota(page, cap) if prof else Quota()
                q = Quota(q.min_pages, q.max_pages, **extra)
                over = self.overrides.quotas.get(path)
                if over:
                    lo = amount_to_pages(
                        over.get("fast_min") or 0, page_size=page, fast_capacity=cap, where=path
                    )
                    hi = over.get("fast_max")
                    hi_p = (
                        None
                        if hi is None
                        else amount_to_pages(hi, page_size=page, fast_capacity=cap, where=path)
                    )
                    q = Quota(lo, hi_p if hi_p is None or hi_p >= lo else lo, **extra)
                out[i] = q
        return out

    def _placement(self, pl: Placement, page: int) -> dict[str, Any]:
        """The parts of a profile's placement the policy applies per cgroup, besides min/max."""

        def pages(mbps: float | None) -> int | None:
            return None if mbps is None else int(mbps * 1e6 * self.cfg.cycle_s // page)

        return {
            "threshold": None if pl.hot_threshold == "auto" else float(pl.hot_threshold),
            "hysteresis": pl.hysteresis,
            "promote_pages": pages(pl.promote_rate_mbps),
            "demote_pages": pages(pl.demote_rate_mbps),
        }

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
        }

    def tracked_pages(self) -> int:
        """Pages of the managed processes present in RAM, as of the last cycle."""
        st = self.loop.view.last
        return 0 if st is None else int(np.count_nonzero(st.node >= 0))

    def topology(self) -> dict[str, Any]:
        return self.topo.read().to_json()

    def _per_cgroup(self) -> dict[str, dict[str, Any]]:
        view = self.loop.view
        st = view.last
        out: dict[str, dict[str, Any]] = {}
        if st is None or st.node.shape[0] == 0:
            return out
        page = self.procfs.page_size
        fast = st.topology.fast_lut()[st.node + 1]
        heat = self.loop.controller.heat.heat
        stats = getattr(self.loop.controller.policy, "stats", None)
        for i, path in enumerate(view.cgroups):
            mine = (st.cgroup == i) & (st.node >= 0)  # present pages (a simulated machine has others)
            if not mine.any():
                continue
            nodes = np.bincount(st.node[mine].astype(np.int64))
            h = heat[mine] if heat.shape[0] == mine.shape[0] else np.zeros(int(mine.sum()))
            thr = float(stats.thresholds[i]) if stats is not None and i < len(stats.thresholds) else np.inf
            total_heat = float(h.sum())
            out[path] = {
                "path": path,
                "profile": self.matches.get(path, "-"),
                "override": self.overrides.pins.get(path, "auto"),
                "bytes_per_node": {str(n): int(c) * page for n, c in enumerate(nodes) if c},
                "fast_bytes": int(np.count_nonzero(fast[mine])) * page,
                "slow_bytes": int(np.count_nonzero(~fast[mine])) * page,
                "hot_bytes": int(np.count_nonzero(h >= thr)) * page,
                "est_fast_hit_ratio": float(h[fast[mine]].sum() / total_heat) if total_heat > 0 else None,
            }
        return out

    def cgroups(self) -> list[dict[str, Any]]:
        return sorted(self._per_cgroup().values(), key=lambda c: -c["fast_bytes"])

    def cgroup_detail(self, path: str) -> dict[str, Any]:
        path = "/" + path.strip("/")
        info = self._per_cgroup().get(path)
        if info is None:
            raise InputError("not a managed cgroup with memory", path)
        st = self.loop.view.last
        assert st is not None
        i = self.loop.view.cgroups.index(path)
        mine = np.flatnonzero((st.cgroup == i) & (st.node >= 0))
        fast = st.topology.fast_lut()[st.node[mine] + 1]
        edges = np.r_[0.0, np.logspace(0, 8, 17)]
        # the top bin also counts everything hotter (its right edge is closed): no page is left out
        heat = self.loop.controller.heat.heat[mine].astype(np.float64)
        pids, _ = self.loop.view.locate(mine)
        procs = []
        for pid in np.unique(pids):
            sel = pids == pid
            counts = np.bincount(st.node[mine][sel].astype(np.int64))
            procs.append(
                {
                    "pid": int(pid),
                    "comm": self._comm(int(pid)),
                    "pages_per_node": {str(n): int(c) for n, c in enumerate(counts) if c},
                }
            )
        # the address-space heat strip: the cgroup's pages in (pid, address) order, in equal buckets
        n = mine.shape[0]
        bucket = np.arange(n) * STRIP // max(n, 1)
        per = np.maximum(np.bincount(bucket, minlength=STRIP), 1)
        return {
            **info,
            "heat_strip": {
                "heat": (np.bincount(bucket, weights=heat, minlength=STRIP) / per).tolist(),
                "fast_fraction": (np.bincount(bucket, weights=fast, minlength=STRIP) / per).tolist(),
                "pages_per_bucket": int(n // STRIP) if n >= STRIP else 1,
            },
            "heat_edges": edges.tolist(),
            "heat_histogram": {
                "fast": np.histogram(np.minimum(heat[fast], edges[-1]), edges)[0].tolist(),
                "slow": np.histogram(np.minimum(heat[~fast], edges[-1]), edges)[0].tolist(),
            },
            "processes": procs,
            "recent_migrations": [  # this cgroup's share of each cycle's migrations
                {**{k: v for k, v in e.items() if k != "cgroups"}, **e["cgroups"][path]}
                for e in self.events
                if e["kind"] == "migrated" and path in e.get("cgroups", {})
            ][-20:],
        }

    def _comm(self, pid: int) -> str:
        try:
            return self.procfs.comm(pid)
        except TierctlError:
            return "?"

    def events_since(self, seq: int) -> tuple[int, list[dict[str, Any]]]:
        return self.seq, [e for e in self.events if e["seq"] > seq]

    # ---- mutations ----------------------------------------------------------------------------------
    def _report_refused(self) -> None:
        """One ``skipped`` event per process the memory view may not read (permission): it is left
        out of placement, and the others go on."""
        refused = self.loop.view.refused
        for pid in refused.keys() - self._refused_seen:
            self._refused_seen.add(pid)
            self._event("skipped", pid=pid, message=refused[pid])

    def _commit(self, change: Callable[[Overrides], None], kind: str, **info: Any) -> dict[str, Any]:
        """Apply ``change`` to a copy of the overrides, persist the copy, and only then make it the
        running set: a save that fails (disk full, read-only state directory) changes nothing, so an
        error never leaves an override in force that a restart would lose."""
        new = copy.deepcopy(self.overrides)
        change(new)
        self.store.save(new)  # persisted before acknowledged
        self.overrides = new
        self._event(kind, **info)
        return self.overrides.to_json()

    def _known(self, path: str) -> str:
        norm = "/" + path.strip("/")
        if not self.cgroupfs.exists(norm.lstrip("/")):
            raise InputError("no such cgroup", norm)
        return norm

    def pin(self, path: str, tier: str) -> dict[str, Any]:
        path, tier = self._known(path), check_tier(tier)

        def change(o: Overrides) -> None:
            if tier == "auto":
                o.pins.pop(path, None)
            else:
                o.pins[path] = tier

        return self._commit(change, "pin", cgroup=path, tier=tier)

    def unpin(self, path: str) -> dict[str, Any]:
        return self.pin(path, "auto")

    def set_quota(self, path: str, fast_min: str | int | None, fast_max: str | int | None) -> dict[str, Any]:
        """Set (or with both None, drop) a cgroup's fast-tier min/max. Each bound is checked by
        ``values.amount`` (finite, in range), must not exceed this machine's memory, and the minimum
        must not be above the maximum on this machine; nothing is stored unless all of that holds."""
        path = self._known(path)
        last = self.loop.view.last
        topo = last.topology if last is not None else self.topo.read().topology
        machine = sum(n.capacity_pages for n in topo.nodes) * topo.page_size
        pages: dict[str, int] = {}
        for name, v in (("fast_min", fast_min), ("fast_max", fast_max)):
            if v is None:
                continue
            amount = values.amount(v, name)
            if amount.kind == "bytes" and int(amount.value) > machine:
                raise InputError(f"{v!r} is more than this machine's memory ({machine} bytes)", name)
            pages[name] = amount.pages(topo.page_size, topo.fast_capacity)
        if "fast_min" in pages and "fast_max" in pages and pages["fast_min"] > pages["fast_max"]:
            raise InputError(
                f"fast_min ({fast_min}: {pages['fast_min']} pages) is above fast_max "
                f"({fast_max}: {pages['fast_max']} pages)",
                "fast_min",
            )

        def change(o: Overrides) -> None:
            if fast_min is None and fast_max is None:
                o.quotas.pop(path, None)
            else:
                o.quotas[path] = {"fast_min": fast_min, "fast_max": fast_max}

        return self._commit(change, "quota", cgroup=path, fast_min=fast_min, fast_max=fast_max)

    def pause(self) -> dict[str, Any]:
        return self._commit(lambda o: setattr(o, "paused", True), "paused")

    def resume(self) -> dict[str, Any]:
        return self._commit(lambda o: setattr(o, "paused", False), "resumed")

    def migrate_now(self, path: str | None) -> dict[str, Any]:
        if path is not None:
            self._known(path)
        self.cycle()
        return {"cycle": self.cycles, "moved": dict(self.moved)}

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

    def reload(self, prepared: ProfileSet | TierctlError | None = None) -> dict[str, Any]:
        """Install a new profile set: ``prepared`` (what ``read_profiles`` gave, or the error it raised,
        e.g. read outside the lock), else read now. On any failure the running set stays, an event says
        why, the failure is counted and the error raised."""
        try:
            new = self.read_profiles() if prepared is None else prepared
            if isinstance(new, TierctlError):
                raise new
        except TierctlError as e:
            self.reload_failures += 1
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            self._event("reload_failed", message=first)
            raise
        self.profiles = new
        self._event("reloaded", profiles=new.names())
        return {"profiles": new.names()}

    def _event(self, kind: str, **info: Any) -> None:
        self.seq += 1
        self.events.append({"seq": self.seq, "time": self.wall(), "kind": kind, **info})


def _open_log(path: Path) -> TextIO:
    try:
        return open(path, "a", buffering=1, encoding="utf-8")  # closed in stop()
    except OSError as e:
        raise InputError(f"cannot open for appending: {e.strerror}", str(path)) from None
