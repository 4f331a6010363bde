"""Operator mutations of the overrides: pins, quotas, pause. Each is checked, persisted, and only
then installed and announced: a save that fails (disk full, read-only state directory) changes
nothing, so an error never leaves an override in force that a restart would lose.

What cannot be done here is refused before anything is stored: a pin to the slow tier, or a fast-tier
maximum, on a machine without a slow tier (the error names the nodes present). A quota set while the
cgroup is pinned is stored and reported inactive (the pin wins; unpinning applies it): see
``service.outcomes``. ``then(path)``, when given, is called once the change is installed and returns
the outcome the request starts (``service.outcomes``): it goes into the mutation's event and result."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from tierctl import values
from tierctl.core.topology import Topology
from tierctl.errors import InputError
from tierctl.fmt import fmt_bytes
from tierctl.service.events import EventLog
from tierctl.service.overrides import Overrides, OverrideStore, check_tier

Then = Callable[[str], dict[str, Any]]  # cgroup path -> the outcome its request starts


def nodes_text(topo: Topology) -> str:
    """'nodes present: 0 (tier 0, fast, 64.0M)', for an error that names what the machine has."""
    fast = {n.id for n in topo.fast_nodes}
    parts = [
        f"{n.id} (tier {n.tier}, {'fast' if n.id in fast else 'slow'}, "
        f"{fmt_bytes(n.capacity_pages * topo.page_size)})"
        for n in topo.nodes
    ]
    return "nodes present: " + ", ".join(parts)


class OverrideEditor:
    def __init__(
        self,
        store: OverrideStore,
        events: EventLog,
        known: Callable[[str], str],
        topology: Callable[[], Topology],
    ) -> None:
        """``known(path)``: the normalised path of an existing cgroup, else InputError;
        ``topology()``: the machine's current topology (quotas are checked against it)."""
        self.store = store
        self.events = events
        self.known = known
        self.topology = topology
        self.overrides: Overrides = store.load()
        if store.problem:
            events.emit("overrides", message=store.problem)

    def _commit(
        self, change: Callable[[Overrides], None], kind: str, then: Then | None = None, **info: Any
    ) -> dict[str, Any]:
        new = copy.deepcopy(self.overrides)
        change(new)
        self.store.save(new)  # persisted before acknowledged
        self.overrides = new
        out = self.overrides.to_json()
        if then is not None:
            outcome = then(str(info["cgroup"]))
            info["outcome"] = outcome
            out = {**out, "ok": True, "outcome": outcome}
        self.events.emit(kind, **info)
        return out

    def pin(self, path: str, tier: str, then: Then | None = None) -> dict[str, Any]:
        path, tier = self.known(path), check_tier(tier)
        if tier == "slow":
            topo = self.topology()
            if not topo.slow_nodes:
                raise InputError(f"no slow tier on this machine to pin to ({nodes_text(topo)})", "tier")

        def change(o: Overrides) -> None:
            if tier == "auto":
                o.pins.pop(path, None)
            else:
                o.pins[path] = tier

        return self._commit(change, "pin", then, cgroup=path, tier=tier)

    def set_quota(
        self,
        path: str,
        fast_min: str | int | None,
        fast_max: str | int | None,
        then: Then | None = None,
    ) -> dict[str, Any]:
        """Set (or with both None, drop) a cgroup's fast-tier min/max. Each bound is checked by
        ``values.amount`` (finite, in range), must not exceed this machine's memory, and the minimum
        must not be above the maximum on this machine; nothing is stored unless all of that holds."""
        path = self.known(path)
        topo = self.topology()
        machine = sum(n.capacity_pages for n in topo.nodes) * topo.page_size
        if fast_max is not None and not topo.slow_nodes:
            raise InputError(
                f"no slow tier on this machine to keep pages above the maximum in ({nodes_text(topo)})",
                "fast_max",
            )
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

        return self._commit(change, "quota", then, cgroup=path, fast_min=fast_min, fast_max=fast_max)

    def set_paused(self, paused: bool) -> dict[str, Any]:
        return self._commit(lambda o: setattr(o, "paused", paused), "paused" if paused else "resumed")
