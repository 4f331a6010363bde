"""Operator mutations of the overrides: pins, quotas, pause. Each is checked, persisted, and only
then installed and announced: a save that fails (disk full, read-only state directory) changes
nothing, so an error never leaves an override in force that a restart would lose."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from tierctl import values
from tierctl.core.topology import Topology
from tierctl.errors import InputError
from tierctl.service.events import EventLog
from tierctl.service.overrides import Overrides, OverrideStore, check_tier


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

    def _commit(self, change: Callable[[Overrides], None], kind: str, **info: Any) -> dict[str, Any]:
        new = copy.deepcopy(self.overrides)
        change(new)
        self.store.save(new)  # persisted before acknowledged
        self.overrides = new
        self.events.emit(kind, **info)
        return self.overrides.to_json()

    def pin(self, path: str, tier: str) -> dict[str, Any]:
        path, tier = self.known(path), check_tier(tier)

        def change(o: Overrides) -> None:
            if tier == "auto":
                o.pins.pop(path, None)
            else:
                o.pins[path] = tier

        return self._commit(change, "pin", cgroup=path, tier=tier)

    def set_quota(self, path: str, fast_min: str | int | None, fast_max: str | int | None) -> dict[str, Any]:
        """Set (or with both None, drop) a cgroup's fast-tier min/max. Each bound is checked by
        ``values.amount`` (finite, in range), must not exceed this machine's memory, and the minimum
        must not be above the maximum on this machine; nothing is stored unless all of that holds."""
        path = self.known(path)
        topo = self.topology()
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

    def set_paused(self, paused: bool) -> dict[str, Any]:
        return self._commit(lambda o: setattr(o, "paused", paused), "paused" if paused else "resumed")
