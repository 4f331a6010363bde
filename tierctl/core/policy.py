"""The policy contract: what a policy sees each cycle and what it returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from tierctl import values
from tierctl.core.heat import HeatModel
from tierctl.core.plan import Plan
from tierctl.core.topology import Topology
from tierctl.errors import InputError


@dataclass(frozen=True)
class Quota:
    """Fast-tier quota of one cgroup, in pages (a share is turned into pages by the caller)."""

    min_pages: int = 0
    max_pages: int | None = None
    # the rest of a workload's placement (its profile): None = the policy's own choice
    threshold: float | None = None  # fixed hot threshold (heat); None = self-tuning
    hysteresis: float | None = None  # margin a slow page needs to replace one of this cgroup's
    promote_pages: int | None = None  # promotions per cycle (a rate limit turned into pages)
    demote_pages: int | None = None  # demotions per cycle

    def __post_init__(self) -> None:
        if self.min_pages < 0:
            raise InputError(f"min must be >= 0, got {self.min_pages}", "quota.min")
        if self.max_pages is not None and self.max_pages < self.min_pages:
            raise InputError(f"max ({self.max_pages}) is below min ({self.min_pages})", "quota.max")
        if self.threshold is not None and not self.threshold > 0:
            raise InputError(f"must be > 0, got {self.threshold}", "quota.threshold")
        if self.hysteresis is not None and not self.hysteresis >= 0:
            raise InputError(f"must be >= 0, got {self.hysteresis}", "quota.hysteresis")
        for name in ("promote_pages", "demote_pages"):
            v = getattr(self, name)
            if v is not None and v < 0:
                raise InputError(f"must be >= 0 pages, got {v}", f"quota.{name}")


def amount_to_pages(value: int | float | str, *, page_size: int, fast_capacity: int, where: str) -> int:
    """Pages for a quota amount: bytes (int, or "512M", "2G", "1.5T"), or a share of the fast tier
    ("30%", or a float in [0, 1]); parsed and range-checked by ``tierctl.values.amount``."""
    return values.amount(value, where).pages(page_size, fast_capacity)


def quota_from(
    *,
    min: int | float | str = 0,
    max: int | float | str | None = None,
    page_size: int,
    fast_capacity: int,
    where: str = "quota",
) -> Quota:
    """A Quota from amounts in bytes or shares (see ``amount_to_pages``)."""
    lo = amount_to_pages(min, page_size=page_size, fast_capacity=fast_capacity, where=f"{where}.min")
    hi = (
        None
        if max is None
        else amount_to_pages(max, page_size=page_size, fast_capacity=fast_capacity, where=f"{where}.max")
    )
    if hi is not None and hi < lo:
        raise InputError(f"max ({max}) is below min ({min})", where)
    return Quota(lo, hi)


@dataclass(frozen=True)
class MemoryState:
    """Where every tracked page is now, and who owns it."""

    node: np.ndarray  # int16 per tracked page, -1 = not present (not yet touched, or gone)
    cgroup: np.ndarray  # uint16 cgroup index per tracked page
    n_cgroups: int
    topology: Topology  # with current free pages per node
    new_pages: np.ndarray | None = None  # pages that became present since the previous snapshot
    # when the tracked page space changed since the previous snapshot: for each page tracked then,
    # its index now (-1 = gone); the controller re-indexes the heat model with it
    remap: np.ndarray | None = None


@dataclass(frozen=True)
class PolicyView:
    now: int  # cycle number; the heat model has ingested this cycle's batch with this stamp
    heat: HeatModel
    memory: MemoryState
    budget: int  # page moves (promotions + demotions) allowed this cycle
    quotas: Mapping[int, Quota]


class Policy(Protocol):
    name: str

    def decide(self, view: PolicyView) -> Plan: ...

    def hot_thresholds(self) -> np.ndarray | None:
        """Per cgroup, the heat from which a page counted as hot in the last decision (inf: none of
        that cgroup's pages belonged in the fast tier); None when the policy has no threshold of
        its own (``capacity_threshold`` then stands in)."""
        ...

    def summary(self) -> dict[str, bool | int | float]:
        """Scalar figures of the last decision for the cycle log (counts, targets, flags)."""
        ...


class NoThresholds:
    """For policies that decide without a heat threshold or figures worth logging."""

    def hot_thresholds(self) -> np.ndarray | None:
        return None

    def summary(self) -> dict[str, bool | int | float]:
        return {}


def capacity_threshold(heat: np.ndarray, present: np.ndarray, fast_capacity: int) -> float:
    """The heat of the ``fast_capacity``-th hottest present page: hotter pages are the ones a fast
    tier of that size would hold (inf when no page has heat)."""
    h = heat[present]
    h = h[h > 0]
    if h.shape[0] == 0 or fast_capacity <= 0:
        return float("inf")
    if h.shape[0] <= fast_capacity:
        return float(h.min())
    return float(np.partition(h, h.shape[0] - fast_capacity)[h.shape[0] - fast_capacity])


def quota_arrays(view: PolicyView) -> tuple[np.ndarray, np.ndarray]:
    """Per-cgroup (min, max) fast-page arrays; no quota = (0, unlimited)."""
    c = view.memory.n_cgroups
    mins = np.zeros(c, dtype=np.int64)
    maxs = np.full(c, np.iinfo(np.int64).max // 4, dtype=np.int64)
    for idx, q in view.quotas.items():
        if 0 <= idx < c:
            mins[idx] = q.min_pages
            if q.max_pages is not None:
                maxs[idx] = q.max_pages
    return mins, maxs


def placement_arrays(view: PolicyView, hysteresis: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-cgroup fixed thresholds (NaN = self-tuning) and hysteresis (the policy's where unset)."""
    c = view.memory.n_cgroups
    thr = np.full(c, np.nan)
    hyst = np.full(c, float(hysteresis))
    for idx, q in view.quotas.items():
        if 0 <= idx < c:
            if q.threshold is not None:
                thr[idx] = q.threshold
            if q.hysteresis is not None:
                hyst[idx] = q.hysteresis
    return thr, hyst


def rank_within_groups(groups: np.ndarray) -> np.ndarray:
    """For a sequence in priority order, each element's rank among earlier elements of its group."""
    if groups.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(groups, kind="stable")
    g = groups[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    run_start = np.repeat(starts, np.diff(np.r_[starts, g.shape[0]]))
    ranks = np.empty(groups.shape[0], dtype=np.int64)
    ranks[order] = np.arange(groups.shape[0]) - run_start
    return ranks


def top_k(keys: np.ndarray, k: int, *, largest: bool) -> np.ndarray:
    """Indices of the k largest (or smallest) keys, in order; ties broken by position (O(n))."""
    n = keys.shape[0]
    k = min(k, n)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    signed = -keys if largest else keys
    if k < n:
        kth = signed[np.argpartition(signed, k - 1)[k - 1]]
        better = np.flatnonzero(signed < kth)
        tied = np.flatnonzero(signed == kth)[: k - better.shape[0]]
        sel = np.concatenate([better, tied])
        return sel[np.lexsort((sel, signed[sel]))]
    return np.lexsort((np.arange(n), signed))
