"""``tierctl``: the default policy.

Each decision is a few named steps, none with a full sort; past ``sweep_pages`` tracked pages none
passes over every page either (``tierctl.core.evaluation``):

1. ``_estimate``: posterior heat of the pages that may have changed (``tierctl.core.estimate``:
   its own heat, its region's, its region's recent level, its silence) into a running census of
   present pages per (cgroup, tier, bin).
2. ``_target``: the fast tier should hold ``fast used + fast free - headroom`` tracked pages; the
   headroom follows the allocation rate so first-touch allocations still land in DRAM.
3. ``_thresholds``: per cgroup, the lowest estimate bin whose page count — each cgroup's count
   clamped to its [min, max] quota — fits the target; a profile's fixed threshold replaces it. A
   page's priority is its estimate over its cgroup's threshold (>= 1: belongs in DRAM).
4. ``_pools``: among the pages just evaluated, the hottest settled slow pages and the coldest
   settled fast pages the budget can use.
5. ``_forced``: demotions that must happen — what exceeds a max quota, then the headroom.
6. ``_fill``: promotions into free room above the headroom.
7. ``_swaps``: a hot slow page in for a cold fast one, pairwise, only when the incoming page's
   priority beats the outgoing one's by the hysteresis factor and by ``noise_z`` posterior standard
   deviations of their difference.

A page moved less than ``min_residency`` cycles ago is not moved again (no ping-pong).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from tierctl.core.census import (
    Candidates,
    Evaluated,
    fast_pages_in,
    pick_candidates,
    quota_bins,
    relative_cuts,
)
from tierctl.core.estimate import RateEstimator
from tierctl.core.evaluation import Evaluation
from tierctl.core.heat import N_BINS, bin_floor
from tierctl.core.plan import Plan
from tierctl.core.policy import PolicyView, placement_arrays, quota_arrays, rank_within_groups, top_k
from tierctl.core.running_census import SLOW_BIT, Census
from tierctl.errors import InputError

_EMPTY = np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class TierctlStats:
    """What the last decision was based on (for status views and tests)."""

    target: int
    headroom: int
    growth: float
    global_bin: int
    thresholds: np.ndarray  # estimate threshold per cgroup (inf = none of it belongs in DRAM)
    forced_demotions: int
    fills: int
    swaps: int
    evaluated: int = 0  # pages whose estimate was recomputed for this decision
    full: bool = True  # every page was (else: samples, a sweep slice, drifted regions, pools)


@dataclass
class _Decision:
    """One decision's working state, passed from step to step."""

    view: PolicyView
    rate: Callable[[np.ndarray], np.ndarray]  # posterior heat of pages
    census: Census
    fast_c: np.ndarray  # fast pages per cgroup
    mins: np.ndarray
    maxs: np.ndarray
    thr: np.ndarray = field(default_factory=lambda: _EMPTY)  # threshold per cgroup
    tbin: np.ndarray = field(default_factory=lambda: _EMPTY)  # threshold bin per cgroup
    fixed: np.ndarray = field(default_factory=lambda: _EMPTY)  # a profile's fixed one (NaN = none)
    hyst: np.ndarray = field(default_factory=lambda: _EMPTY)
    free: int = 0
    new: int = 0
    headroom: int = 0
    target: int = 0
    global_bin: int = 0

    evaluated: list[Evaluated] = field(default_factory=list)  # the pages evaluated
    full: bool = True

    def prio(self, idx: np.ndarray) -> np.ndarray:
        return self.rate(idx) / self.thr[self.view.memory.cgroup[idx]]


class TierctlPolicy:
    """Default: posterior heat under quotas, headroom, uncertainty-aware swaps."""

    name = "tierctl"

    def __init__(
        self,
        *,
        hysteresis: float = 0.25,
        headroom_min: float = 0.005,
        headroom_max: float = 0.10,
        headroom_cycles: float = 2.0,
        min_residency: int = 2,
        growth_alpha: float = 0.3,
        noise_z: float = 0.5,
        region_pages: int = 512,
        level_half_life: float = 1.0,
        hazard: float = 0.05,
        sweep_pages: int = 1 << 18,
        threads: int | None = None,
    ) -> None:
        if hysteresis < 0:
            raise InputError(f"must be >= 0, got {hysteresis}", "tierctl.hysteresis")
        if not 0 <= headroom_min <= headroom_max < 1:
            raise InputError("need 0 <= headroom_min <= headroom_max < 1", "tierctl.headroom")
        if not headroom_cycles >= 0:
            raise InputError(f"must be >= 0, got {headroom_cycles}", "tierctl.headroom_cycles")
        if min_residency < 0:
            raise InputError(f"must be >= 0, got {min_residency}", "tierctl.min_residency")
        if not 0 < growth_alpha <= 1:
            raise InputError(f"must be in (0, 1], got {growth_alpha}", "tierctl.growth_alpha")
        if threads is not None and threads < 1:
            raise InputError(f"must be >= 1, got {threads}", "tierctl.threads")
        if not noise_z >= 0:
            raise InputError(f"must be >= 0, got {noise_z}", "tierctl.noise_z")
        if sweep_pages < region_pages:
            raise InputError(
                f"must be >= region_pages ({region_pages}), got {sweep_pages}", "tierctl.sweep_pages"
            )
        self.hysteresis = hysteresis
        self.headroom_min = headroom_min
        self.headroom_max = headroom_max
        self.headroom_cycles = headroom_cycles
        self.min_residency = min_residency
        self.growth_alpha = growth_alpha
        self.noise_z = noise_z
        self.estimator = RateEstimator(
            region_pages=region_pages, level_half_life=level_half_life, hazard=hazard, workers=threads
        )
        self.threads = threads  # block passes on this many threads (None: one; see policies.with_threads)
        # at most this many pages are re-evaluated in a sweep slice each decision; up to this many
        # tracked pages, every page is, every decision
        self.sweep_pages = sweep_pages
        self.evaluation = Evaluation(self.estimator, sweep_pages=sweep_pages, threads=threads)
        self._prev_present: int | None = None
        self._growth = 0.0
        # headroom restores whose room neither stayed free nor went to the tracked workloads' new
        # pages (someone else fills it: untracked allocations, the kernel's NUMA balancing pulling
        # pages back) back off: skip 1, 2, 4 ... 64 decisions
        self._restored = 0  # pages demoted for the headroom by the last decision
        self._free_then = 0  # fast free pages that decision saw
        self._restore_backoff = 0
        self._restore_wait = 0
        self.stats: TierctlStats | None = None

    # ------------------------------------------------------------------------------------------
    def hot_thresholds(self) -> np.ndarray | None:
        return None if self.stats is None else self.stats.thresholds

    def summary(self) -> dict[str, bool | int | float]:
        if self.stats is None:
            return {}
        return {k: v for k, v in vars(self.stats).items() if isinstance(v, bool | int | float)}

    def decide(self, view: PolicyView) -> Plan:
        d = self._estimate(view)
        self._target(d)
        self._thresholds(d)
        promote_pool, victim_pool = self._pools(d)
        p_idx, v_idx = self._ranked(d, promote_pool, victim_pool)
        del promote_pool, victim_pool  # the cycle's largest temporaries: gone before the next steps
        ranked = np.concatenate([p_idx, v_idx])  # evaluated again next time, moved or not
        forced, restore, v_idx = self._forced(d, p_idx, v_idx)
        n_evaluated = sum(e.codes.shape[0] for e in d.evaluated)
        d.evaluated = []  # nothing after the forced demotions reads them
        left = view.budget - forced.shape[0] - restore.shape[0]
        out = np.concatenate([forced, restore])
        demoted_c = np.bincount(view.memory.cgroup[out], minlength=d.fast_c.size)
        p_idx = self._allowed_in(d, p_idx, demoted_c)
        room = d.free + forced.shape[0] + restore.shape[0] - d.headroom
        fill, p_idx = self._fill(d, p_idx, room, left)
        n_fill = fill.shape[0]
        # swaps are for a full fast tier: while the fill left room free, the pages it refused do not
        # come in by displacing others (two moves for what one would do)
        pairs = (left - n_fill) // 2 if n_fill >= min(room, left) else 0
        swap_in, swap_out = self._swaps(d, p_idx, v_idx, pairs)
        self.stats = TierctlStats(
            target=d.target,
            headroom=d.headroom,
            growth=self._growth,
            global_bin=d.global_bin,
            thresholds=d.thr,
            forced_demotions=int(forced.shape[0] + restore.shape[0]),
            fills=int(n_fill),
            swaps=int(swap_in.shape[0]),
            evaluated=n_evaluated,
            full=d.full,
        )
        demote = np.concatenate([forced, restore, swap_out])
        promote = np.concatenate([fill, swap_in])
        self.evaluation.after(view, d.tbin, d.full, np.concatenate([ranked, demote, promote]))
        if demote.size == 0 and promote.size == 0:
            return Plan.empty()
        topo = view.memory.topology
        return Plan.build(promote, topo.promotion_target(), demote, topo.demotion_target())

    # ---- 1. estimates and census ----------------------------------------------------------------
    def _estimate(self, view: PolicyView) -> _Decision:
        """Re-evaluate pages (all, or the ones that may have changed: ``core.evaluation``) and read
        the census."""
        evaluated, full = self.evaluation.run(view)
        census = self.evaluation.census.census(view.heat.scale)
        mins, maxs = quota_arrays(view)
        mins = np.minimum(mins, census.hist.sum(axis=(1, 2)))  # a min beyond what a cgroup has
        d = _Decision(view, self.estimator.rate, census, census.fast_per_cgroup, mins, maxs)
        d.evaluated, d.full = evaluated, full
        return d

    # ---- 2. target and headroom -----------------------------------------------------------------
    def _target(self, d: _Decision) -> None:
        n_present = d.census.present
        if self._prev_present is not None:
            d.new = max(0, n_present - self._prev_present)
            self._growth += self.growth_alpha * (d.new - self._growth)
        self._prev_present = n_present
        topo = d.view.memory.topology
        cap, d.free = topo.fast_capacity, topo.fast_free
        lo, hi = self.headroom_min * cap, self.headroom_max * cap
        d.headroom = int(np.clip(self._growth * self.headroom_cycles, lo, hi))
        d.target = max(0, int(d.fast_c.sum()) + d.free - d.headroom)

    # ---- 3. thresholds under the quotas ---------------------------------------------------------
    def _thresholds(self, d: _Decision) -> None:
        d.tbin, d.global_bin = quota_bins(d.census, d.target, d.mins, d.maxs)
        tbin = d.tbin
        thr = np.where(tbin >= N_BINS, np.inf, bin_floor(np.maximum(tbin, 1), d.census.hmax))
        # bin 0 (and an all-cold model, where every bin floor is 0) means "any heat qualifies"
        thr = np.maximum(np.where(tbin == 0, 0.0, thr), np.finfo(np.float32).tiny).astype(np.float64)
        d.fixed, d.hyst = placement_arrays(d.view, self.hysteresis)
        d.thr = np.where(np.isnan(d.fixed), thr, d.fixed)  # a profile's fixed threshold wins

    # ---- 4. candidate pools ---------------------------------------------------------------------
    def _pools(self, d: _Decision) -> tuple[Candidates, Candidates]:
        """Enough settled pages around the thresholds for this cycle's budget (recently moved pages
        are skipped, so allow for them), among the pages just evaluated."""
        budget = d.view.budget
        want = budget * (1 + self.min_residency) + 1
        # the cuts that leave enough candidates among the pages evaluated (all of them, or some)
        counted = (
            d.census if d.full else self.evaluation.census.count([(e.codes, e.cgroup) for e in d.evaluated])
        )
        cuts = relative_cuts(counted, d.tbin, want, want)
        settled_before = d.view.now - self.min_residency
        parts = [
            pick_candidates(
                self.evaluation.census, e, d.view.heat, d.tbin, cuts, settled_before, self.estimator.rate
            )
            for e in d.evaluated
        ]
        return Candidates.join([p for p, _ in parts]), Candidates.join([v for _, v in parts])

    def _ranked(
        self, d: _Decision, promote: Candidates, victims: Candidates
    ) -> tuple[np.ndarray, np.ndarray]:
        """The budget's hottest promotion candidates and coldest victims, in order."""
        budget = d.view.budget
        cg = d.view.memory.cgroup
        p_idx = promote.pages[top_k(promote.est / d.thr[cg[promote.pages]], budget, largest=True)]
        # among equally cold victims, the least recently sampled first (never = -1 sorts first)
        v_key = victims.est / d.thr[cg[victims.pages]] + 1e-9 * (d.view.heat.last_seen[victims.pages] + 1)
        v_idx = victims.pages[top_k(v_key, budget, largest=False)]
        return p_idx, v_idx

    # ---- 5. forced demotions: max quotas, then the headroom ------------------------------------
    def _forced(
        self, d: _Decision, p_idx: np.ndarray, v_idx: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """While there are pages to promote, forced demotions take at most half the budget, so the
        room they free is used in the same cycle. Returns (over-quota, headroom, remaining victims)."""
        mem, budget = d.view.memory, d.view.budget
        cg = mem.cgroup
        cap = budget - min(p_idx.shape[0], budget // 2)
        parts: list[np.ndarray] = []
        for c in np.flatnonzero(d.fast_c > d.maxs):  # coldest first
            k = min(int(d.fast_c[c] - d.maxs[c]), cap - sum(p.shape[0] for p in parts))
            if k <= 0:
                break
            mine = self._fast_pages_of(d, int(c), k)
            if mine.shape[0] > k:  # the bins (monotone in the estimate) narrow the field first
                b = self.evaluation.census.window_bins(mine)
                mine = mine[b <= np.partition(b, k - 1)[k - 1]]
            parts.append(mine[top_k(d.prio(mine), k, largest=False)])
        forced = np.concatenate(parts) if parts else _EMPTY
        if forced.size:
            v_idx = v_idx[~np.isin(v_idx, forced)]
        demoted_c = np.bincount(cg[forced], minlength=d.fast_c.size)
        # victims allowed by min quotas, in coldest-first order
        v_idx = v_idx[rank_within_groups(cg[v_idx]) < (d.fast_c - demoted_c - d.mins)[cg[v_idx]]]
        n_restore = self._restore_count(d, forced.shape[0], cap, v_idx.shape[0])
        return forced, v_idx[:n_restore], v_idx[n_restore:]

    def _fast_pages_of(self, d: _Decision, c: int, k: int) -> np.ndarray:
        """Fast pages of cgroup ``c`` to choose ``k`` forced demotions from: those just evaluated
        when they are enough (all of them when every page was), else all of them, from a scan of
        the cgroup's regions."""
        if not d.full:
            parts = [
                e.pages(np.flatnonzero((e.cgroup == c) & ((e.codes & SLOW_BIT) == 0) & (e.codes > 0)))
                for e in d.evaluated
            ]
            mine = np.concatenate(parts) if parts else _EMPTY
            if mine.shape[0] >= k:
                return mine
        mem = d.view.memory
        return fast_pages_in(self.estimator.cgroup_spans(mem.cgroup, c), mem.node, mem.topology.fast_lut())

    def _restore_count(self, d: _Decision, n_forced: int, cap: int, n_victims: int) -> int:
        """Pages to demote for the headroom, unless the last restores did not free room."""
        deficit = min(d.headroom - d.free - n_forced, cap - n_forced)
        n = max(0, min(deficit, n_victims))
        if self._restored:  # judge the last restore: did at least half of it stay free (or go to
            # the tracked workloads' new pages, which is what the headroom is for)?
            futile = d.free + d.new < self._free_then + self._restored // 2
            self._restore_backoff = min(64, max(1, 2 * self._restore_backoff)) if futile else 0
            self._restore_wait = self._restore_backoff
        if self._restore_wait and n:
            self._restore_wait -= 1
            n = 0
        self._restored, self._free_then = n, d.free
        return n

    # ---- 6. promotions allowed --------------------------------------------------------------------
    def _allowed_in(self, d: _Decision, p_idx: np.ndarray, demoted_c: np.ndarray) -> np.ndarray:
        """Promotions allowed by max quotas, hottest first; under a fixed threshold only hot pages."""
        cg = d.view.memory.cgroup[p_idx]
        ok = rank_within_groups(cg) < (d.maxs - d.fast_c + demoted_c)[cg]
        ok &= np.isnan(d.fixed[cg]) | (d.prio(p_idx) >= 1.0)
        return p_idx[ok]

    def _fill(self, d: _Decision, p_idx: np.ndarray, room: int, left: int) -> tuple[np.ndarray, np.ndarray]:
        """Promotions into free room, hottest first. Nothing is displaced, so nothing checks them but
        their own evidence: a sample of their own lately, or a uniform region (a move costs a copy;
        an unsampled page at the edge of a hot region, among unlike pages, is not worth one).
        Returns (fill, the rest for swaps)."""
        n = max(0, min(room, left, p_idx.shape[0]))
        if n == 0:
            return _EMPTY, p_idx
        ok = self.estimator.has_evidence(p_idx)
        take = np.flatnonzero(ok)[:n]
        rest = np.ones(p_idx.shape[0], dtype=bool)
        rest[take] = False
        return p_idx[take], p_idx[rest]

    # ---- 7. swaps ---------------------------------------------------------------------------------
    def _swaps(
        self, d: _Decision, p_idx: np.ndarray, v_idx: np.ndarray, pairs: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Hot slow page in, cold fast page out, hottest with coldest, while the margin holds."""
        m = max(0, min(p_idx.shape[0], v_idx.shape[0], pairs))
        p, v = p_idx[:m], v_idx[:m]
        cg = d.view.memory.cgroup
        p_rate, p_sd = self.estimator.rate_and_sd(p)
        v_rate, v_sd = self.estimator.rate_and_sd(v)
        p_thr, v_thr = d.thr[cg[p]], d.thr[cg[v]]
        p_prio, v_prio = p_rate / p_thr, v_rate / v_thr
        noise = self.noise_z * np.hypot(p_sd / p_thr, v_sd / v_thr)
        # the larger hysteresis of the two cgroups: a workload's margin protects its pages both ways
        margin = np.maximum(d.hyst[cg[p]], d.hyst[cg[v]])
        # only a page that belongs in the fast tier (priority >= 1) comes in, for one that does not
        good = (p_prio >= 1.0) & (v_prio < 1.0) & (p_prio > (1.0 + margin) * v_prio)
        good &= p_prio - v_prio >= noise * (1 - 1e-6)
        n = m if good.all() else int(np.argmin(good))
        return p[:n], v[:n]
