"""A synthetic ServiceContract with any number of cgroups (tests, the refresh benchmark).

Deterministic by seed; no kernel, no simulator: per cgroup it keeps fast/slow/hot page counts that drift
each ``cycle()`` and honours pins, quotas and pause the way the real Service reports them. It also
reports the per-cgroup ``heat_strip`` the TUI asks the Service for (see docs/tui.md).
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from tierctl import __version__
from tierctl.core.policy import amount_to_pages
from tierctl.errors import InputError, PermissionDeniedError
from tierctl.service.contract import API_VERSION

PAGE = 4096
EDGES = (0.0, *np.logspace(0, 6, 13).tolist())
STRIP = 48


def pod_of(i: int) -> dict[str, Any]:
    named = i % 4 == 0  # the others: the API server has not named them yet
    return {
        "namespace": "shop" if named else None,
        "name": f"web-{i}" if named else None,
        "uid": f"{i:08x}-1111-2222-3333-444455556666",
        "qos": "burstable",
        "container": None,
    }


class SyntheticService:
    def __init__(
        self,
        n_cgroups: int = 8,
        *,
        seed: int = 0,
        fast_pages: int = 262_144,
        slow_pages: int = 1_048_576,
        wall: Callable[[], float] = time.time,
        mutable: bool = True,
        outcomes: bool = False,
        pods: bool = False,
        samplers: bool = True,
        one_tier: bool = False,
    ) -> None:
        """``outcomes``: rows, details and mutation results carry the outcome of the newest action
        (docs/tui.md), as the Service does; ``pods``: every other cgroup is a pod's; ``samplers=False``:
        no sampler runs; ``one_tier``: a single node, no slow tier. The detail carries the profile's
        ``quota`` (``latency``: 4G / 60 %)."""
        self.rng = np.random.default_rng(seed)
        self.wall = wall
        self.mutable = mutable
        self.fast_cap, self.slow_cap = fast_pages, slow_pages
        n = n_cgroups
        self.paths = [f"/synth.slice/app-{i:03d}.service" for i in range(n)]
        self.profiles = ["latency", "batch", "-"]
        self.prof = [self.profiles[i % 3] for i in range(n)]
        total = self.rng.integers(1_000, 40_000, n)
        share = self.rng.uniform(0.2, 0.8, n)
        self.fast = np.minimum((total * share).astype(np.int64), fast_pages // max(n, 1))
        self.slow = total - self.fast
        self.hot = (total * self.rng.uniform(0.05, 0.4, n)).astype(np.int64)
        self.pins: dict[str, str] = {}
        self.quotas: dict[str, dict[str, Any]] = {}
        self.paused = False
        self.cycles = 0
        self.moved = {"promoted": 0, "demoted": 0}
        self.events: collections.deque[dict[str, Any]] = collections.deque(maxlen=1000)
        self.seq = 0
        self.started = wall()
        self.with_outcomes, self.with_pods, self.samplers_ok, self.one_tier = (
            outcomes,
            pods,
            samplers,
            one_tier,
        )
        self.outcomes: dict[str, dict[str, Any]] = {}

    # ---- the loop ---------------------------------------------------------------------------------
    def cycle(self) -> None:
        if self.paused:
            return
        self.cycles += 1
        n = len(self.paths)
        total = self.fast + self.slow
        want = np.clip(self.hot * 2 + self.rng.integers(-500, 500, n), 0, total)
        for i, p in enumerate(self.paths):
            pin = self.pins.get(p)
            if pin == "fast":
                want[i] = total[i]
            elif pin == "slow":
                want[i] = 0
        step = np.clip(want - self.fast, -400, 400)
        self.fast += step
        self.slow = total - self.fast
        self.hot = np.clip(self.hot + self.rng.integers(-200, 200, n), 0, total)
        promoted, demoted = int(step[step > 0].sum()), int(-step[step < 0].sum())
        self.moved["promoted"] += promoted
        self.moved["demoted"] += demoted
        if promoted or demoted:
            self._event("migrated", cycle=self.cycles, promoted=promoted, demoted=demoted)

    # ---- reads --------------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        return {
            "version": __version__,
            "api": API_VERSION,
            "state": "paused" if self.paused else "running",
            "cycle": self.cycles,
            "uptime_s": self.wall() - self.started,
            "tracked_pages": int((self.fast + self.slow).sum()),
            "last_cycle_s": 0.001,
            "moved": {**self.moved, "outcomes": {"moved": self.moved["promoted"] + self.moved["demoted"]}},
            "samplers": [
                {
                    "name": "synthetic",
                    "state": "active" if self.samplers_ok else "stopped",
                    "reason": "",
                    "health": {"samples": 1000 * self.cycles, "dropped": 0, "cpu_seconds": 0.0},
                },
                {"name": "damon", "state": "unavailable", "reason": "not in this machine", "health": {}},
            ],
            "profiles": sorted(set(self.prof) - {"-"}),
            "overrides": {"paused": self.paused, "pins": dict(self.pins), "quotas": dict(self.quotas)},
        }

    def pressure_status(self) -> dict[str, Any]:
        return {"mode": "off", "active": False, "reason": "a synthetic service has no memory model"}

    def topology(self) -> dict[str, Any]:
        used_fast, used_slow = int(self.fast.sum()), int(self.slow.sum())
        nodes = [
            {"id": 0, "tier": 0, "capacity_pages": self.fast_cap, "free_pages": self.fast_cap - used_fast}
        ]
        if self.one_tier:
            return {"page_size": PAGE, "nodes": nodes}
        return {
            "page_size": PAGE,
            "nodes": [
                {
                    "id": 0,
                    "tier": 0,
                    "capacity_pages": self.fast_cap,
                    "free_pages": self.fast_cap - used_fast,
                },
                {
                    "id": 1,
                    "tier": 1,
                    "capacity_pages": self.slow_cap,
                    "free_pages": self.slow_cap - used_slow,
                },
            ],
        }

    def _row(self, i: int) -> dict[str, Any]:
        total = int(self.fast[i] + self.slow[i])
        hot = int(self.hot[i])
        return {
            "path": self.paths[i],
            "profile": self.prof[i],
            "override": self.pins.get(self.paths[i], "auto"),
            "bytes_per_node": {"0": int(self.fast[i]) * PAGE, "1": int(self.slow[i]) * PAGE},
            "fast_bytes": int(self.fast[i]) * PAGE,
            "slow_bytes": int(self.slow[i]) * PAGE,
            "hot_bytes": hot * PAGE,
            "est_fast_hit_ratio": min(1.0, float(self.fast[i]) / hot) if hot and total else None,
            **({"outcome": self.outcomes.get(self.paths[i])} if self.with_outcomes else {}),
            **({"pod": pod_of(i)} if self.with_pods and i % 2 == 0 else {}),
        }

    def cgroups(self) -> list[dict[str, Any]]:
        rows = [self._row(i) for i in range(len(self.paths))]
        return sorted(rows, key=lambda c: -c["fast_bytes"])

    def _index(self, path: str) -> int:
        norm = "/" + path.strip("/")
        if norm not in self.paths:
            raise InputError("no such cgroup", norm)
        return self.paths.index(norm)

    def cgroup_detail(self, path: str) -> dict[str, Any]:
        i = self._index(path)
        rng = np.random.default_rng(i)  # shape fixed per cgroup, scaled by its current pages
        f, s = int(self.fast[i]), int(self.slow[i])
        shape = rng.dirichlet(np.ones(13))
        fh = (shape * f).astype(int)
        sh = (shape[::-1] * s).astype(int)
        heat = rng.gamma(1.0, 10.0, STRIP) * (1 + 0.1 * (self.cycles % 5))
        frac = np.clip(rng.uniform(0, 1, STRIP) * f / max(f + s, 1) * 2, 0, 1)
        return {
            **self._row(i),
            "heat_edges": list(EDGES),
            "heat_histogram": {"fast": fh.tolist(), "slow": sh.tolist()},
            "heat_strip": {"heat": heat.round(2).tolist(), "fast_fraction": frac.round(3).tolist()},
            "processes": [
                {"pid": 1000 + 10 * i + k, "comm": f"worker{k}", "pages_per_node": {"0": f // 2, "1": s // 2}}
                for k in range(2)
            ],
            "recent_migrations": [e for e in self.events if e["kind"] == "migrated"][-20:],
            "quota": self._quota(i),
        }

    def _quota(self, i: int) -> dict[str, Any] | None:
        over = self.quotas.get(self.paths[i])
        if over is not None:
            return {
                **over,
                "source": "override",
                "active": self.paths[i] not in self.pins,
                "why_inactive": "pinned: a pin wins over a quota" if self.paths[i] in self.pins else None,
            }
        if self.prof[i] != "latency":
            return None
        cap = self.fast_cap * PAGE
        return {
            "fast_min": min(4 << 30, cap),
            "fast_max": int(0.6 * cap),
            "fast_min_amount": "4G",
            "fast_max_amount": "60%",
            "source": "profile",
            "active": True,
            "why_inactive": None,
        }

    def events_since(self, seq: int) -> tuple[int, list[dict[str, Any]]]:
        return self.seq, [e for e in self.events if e["seq"] > seq]

    # ---- mutations ----------------------------------------------------------------------------------
    def _may(self, what: str) -> None:
        if not self.mutable:
            raise PermissionDeniedError(f"{what} needs root or the tierctl mutators group", what)

    def _overrides(self) -> dict[str, Any]:
        return {"paused": self.paused, "pins": dict(self.pins), "quotas": dict(self.quotas)}

    def pin(self, path: str, tier: str) -> dict[str, Any]:
        self._may("pin")
        p = self.paths[self._index(path)]
        if tier not in ("fast", "slow", "auto"):
            raise InputError(f"expected fast, slow or auto, got {tier!r}", "tier")
        if tier == "auto":
            self.pins.pop(p, None)
        else:
            self.pins[p] = tier
        self._event("pin", cgroup=p, tier=tier)
        return self._outcome(p, "unpin" if tier == "auto" else "pin", tier)

    def _outcome(self, path: str, action: str, target: str) -> dict[str, Any]:
        """What the Service answers: the overrides, or with ``outcomes`` the outcome it starts."""
        if not self.with_outcomes:
            return self._overrides()
        state, waiting = ("in_progress", "room in the fast tier") if target == "fast" else ("done", None)
        o = {
            "action": action,
            "target": target,
            "state": state,
            "waiting_for": waiting,
            "moved_pages": 0,
            "since": self.wall(),
            "updated": self.wall(),
            "message": f"{action} {path} to {target}: "
            + ("waiting for room in the fast tier" if waiting else "nothing to move"),
        }
        self.outcomes[path] = o
        self._event("outcome", cgroup=path, action=action, state=state, message=o["message"])
        return {"ok": True, "outcome": o}

    def set_outcome(self, path: str, state: str, **more: Any) -> None:
        """Move the outcome of ``path`` to ``state`` (an ``outcome`` event, as the Service emits)."""
        o = {**self.outcomes[path], "state": state, "updated": self.wall(), **more}
        self.outcomes[path] = o
        self._event("outcome", cgroup=path, action=o["action"], state=state, message=o["message"])

    def unpin(self, path: str) -> dict[str, Any]:
        return self.pin(path, "auto")

    def set_quota(self, path: str, fast_min: str | int | None, fast_max: str | int | None) -> dict[str, Any]:
        self._may("quota")
        p = self.paths[self._index(path)]
        for name, v in (("fast_min", fast_min), ("fast_max", fast_max)):
            if v is not None:  # the Service's own check of the form
                amount_to_pages(v, page_size=PAGE, fast_capacity=self.fast_cap, where=name)
        if fast_min is None and fast_max is None:
            self.quotas.pop(p, None)
        else:
            self.quotas[p] = {"fast_min": fast_min, "fast_max": fast_max}
        self._event("quota", cgroup=p, fast_min=fast_min, fast_max=fast_max)
        return self._overrides()

    def pause(self) -> dict[str, Any]:
        self._may("pause")
        self.paused = True
        self._event("paused")
        return self._overrides()

    def resume(self) -> dict[str, Any]:
        self._may("resume")
        self.paused = False
        self._event("resumed")
        return self._overrides()

    def migrate_now(self, path: str | None) -> dict[str, Any]:
        self._may("migrate")
        if path is not None:
            self._index(path)
        self.cycle()
        return {"cycle": self.cycles, "moved": dict(self.moved)}

    def read_profiles(self) -> Any:
        return None

    def reload(self, prepared: Any = None) -> dict[str, Any]:
        self._may("reload")
        self._event("reloaded", profiles=sorted(set(self.prof) - {"-"}))
        return {"profiles": sorted(set(self.prof) - {"-"})}

    def _event(self, kind: str, **info: Any) -> None:
        self.seq += 1
        self.events.append({"seq": self.seq, "time": self.wall(), "kind": kind, **info})
