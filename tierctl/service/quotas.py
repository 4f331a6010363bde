"""Profiles and operator overrides -> the per-cgroup quotas the policy applies (pure).

A pin (the operator's, else the profile's ``pin``) overrides a profile's quota and hot threshold
(pin fast: everything may stay fast; pin slow: nothing may), not its rate limits. An operator quota
replaces the profile's min/max; a max below the min is raised to it. ``quota_view``: the quota a
cgroup has, where it comes from and whether it is in force (the detail view's "quota").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tierctl.core.policy import Quota, amount_to_pages
from tierctl.core.topology import Topology
from tierctl.profiles import ProfileSet
from tierctl.profiles.schema import Placement
from tierctl.service.overrides import Overrides

ALL_PAGES = 1 << 40


def resolve_quotas(
    cgroups: Sequence[str],
    matches: Mapping[str, str],
    profiles: ProfileSet,
    overrides: Overrides,
    topo: Topology,
    cycle_s: float,
) -> dict[int, Quota]:
    """The quota of each cgroup (by its index in ``cgroups``) whose profile is ``matches[path]``."""
    cap, page = topo.fast_capacity, topo.page_size
    by_name = {p.name: p for p in profiles}
    out = {}
    for i, path in enumerate(cgroups):
        prof = by_name.get(matches.get(path, ""))
        pin = effective_pin(path, prof, overrides)
        extra = placement_extras(prof.placement, page, cycle_s) if prof else {}
        limits = {k: v for k, v in extra.items() if k in ("promote_pages", "demote_pages")}
        if pin == "fast":
            out[i] = Quota(min_pages=ALL_PAGES, **limits)
        elif pin == "slow":
            out[i] = Quota(0, 0, **limits)
        else:
            q = prof.placement.quota(page, cap) if prof else Quota()
            q = Quota(q.min_pages, q.max_pages, **extra)
            over = overrides.quotas.get(path)
            if over:
                q = _operator_quota(over, path, page, cap, extra)
            out[i] = q
    return out


def effective_pin(path: str, prof: Any, overrides: Overrides) -> str | None:
    """The pin in force: the operator's, else the profile's ``pin`` ("fast"/"slow"; "auto" = none)."""
    pin = overrides.pins.get(path)
    if pin is None and prof is not None and prof.placement.pin != "auto":
        pin = prof.placement.pin
    return pin


def pins_in_force(matches: Mapping[str, str], profiles: ProfileSet, overrides: Overrides) -> dict[str, str]:
    """Cgroup path -> the pin in force (:func:`effective_pin`) for the managed cgroups (``matches``: path
    -> profile name), plus the operator's pins on any other."""
    by_name = {p.name: p for p in profiles}
    out = dict(overrides.pins)
    for path, name in matches.items():
        pin = effective_pin(path, by_name.get(name), overrides)
        if pin is not None:
            out[path] = pin
    return out


def quota_view(
    path: str, profile: str | None, profiles: ProfileSet, overrides: Overrides, topo: Topology
) -> dict[str, Any]:
    """{"fast_min": bytes|None, "fast_max": bytes|None, "source": "profile"|"override"|None, "active",
    "why_inactive", "fast_min_amount", "fast_max_amount"}: the cgroup's quota on this machine (the
    amounts as written: "40%", "4G", bytes). No quota: source None, inactive, no reason. A pin makes a
    quota inactive."""
    page, cap = topo.page_size, topo.fast_capacity
    prof = next((p for p in profiles if p.name == profile), None)
    over = overrides.quotas.get(path)
    lo_amt: Any
    hi_amt: Any
    if over:
        source, lo_amt, hi_amt = "override", over.get("fast_min"), over.get("fast_max")
        q = _operator_quota(over, path, page, cap, {})
    elif prof is not None and (prof.placement.fast_min or prof.placement.fast_max is not None):
        source, lo_amt, hi_amt = "profile", prof.placement.fast_min, prof.placement.fast_max
        q = prof.placement.quota(page, cap)
    else:
        return {
            "fast_min": None,
            "fast_max": None,
            "source": None,
            "active": False,
            "why_inactive": None,
            "fast_min_amount": None,
            "fast_max_amount": None,
        }
    pin = effective_pin(path, prof, overrides)
    by = "" if path in overrides.pins else " by its profile"
    return {
        "fast_min": q.min_pages * page if q.min_pages else None,
        "fast_max": None if q.max_pages is None else q.max_pages * page,
        "source": source,
        "active": pin is None,
        "why_inactive": f"pinned to {pin}{by}: a pin wins over a quota" if pin else None,
        "fast_min_amount": lo_amt or None,
        "fast_max_amount": hi_amt,
    }


def operator_quota_pages(over: Mapping[str, Any], path: str, topo: Topology) -> tuple[int, int | None]:
    """An operator quota's (min, max) fast pages on this machine, as the policy gets them."""
    q = _operator_quota(over, path, topo.page_size, topo.fast_capacity, {})
    return q.min_pages, q.max_pages


def _operator_quota(
    over: Mapping[str, Any], path: str, page: int, cap: int, extra: Mapping[str, Any]
) -> Quota:
    lo = amount_to_pages(over.get("fast_min") or 0, page_size=page, fast_capacity=cap, where=path)
    hi = over.get("fast_max")
    hi_p = None if hi is None else amount_to_pages(hi, page_size=page, fast_capacity=cap, where=path)
    return Quota(lo, hi_p if hi_p is None or hi_p >= lo else lo, **extra)


def placement_extras(pl: Placement, page: int, cycle_s: float) -> dict[str, Any]:
    """The parts of a profile's placement the policy applies per cgroup, besides min/max."""

    def pages(mbps: float | None) -> int | None:
        return None if mbps is None else int(mbps * 1e6 * cycle_s // page)

    return {
        "threshold": None if pl.hot_threshold == "auto" else float(pl.hot_threshold),
        "hysteresis": pl.hysteresis,
        "promote_pages": pages(pl.promote_rate_mbps),
        "demote_pages": pages(pl.demote_rate_mbps),
    }
