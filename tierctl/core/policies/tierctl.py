"""``tierctl``: the default policy.

Each cycle, in O(n) passes over the tracked pages and no full sort:

1. Target: the fast tier should hold ``target = fast used + fast free - headroom``
   tracked pages.  Headroom follows the observed allocation rate (pages newly
   present per cycle, smoothed) so first-touch allocations still land in DRAM.
2. Self-tuning threshold with quotas: a heat histogram per cgroup (log-scale bins,
   1/8 octave) gives, for every bin b, how many pages each cgroup has at least
   that hot.  The global bin is the lowest whose count — each cgroup's count
   clamped to its [min, max] fast-page quota — fits the target; cgroups over their
   max get a higher bin, cgroups under their min a lower one.  A page's
   priority is its heat over its cgroup's threshold (>= 1: belongs in DRAM).
3. Moves, within the cycle's budget: demote what exceeds a max quota; demote the
   coldest to restore the headroom; fill free room with the hottest slow pages;
   then swap hot slow pages for cold fast ones while the hot one's priority
   beats the cold one's by the hysteresis factor.  A page moved less than
   ``min_residency`` cycles ago is not moved again (no ping-pong).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tierctl.core.census import candidates, fast_pages_of, quota_bins, relative_cuts, take_census
from tierctl.core.heat import N_BINS
from tierctl.core.plan import Plan
from tierctl.core.policy import PolicyView, placement_arrays, quota_arrays, rank_within_groups, top_k
from tierctl.errors import InputError


@dataclass(frozen=True)
class TierctlStats:
    """What the last decision was based on (for status views and tests)."""

    target: int
    headroom: int
    growth: float
    global_bin: int
    thresholds: np.ndarray  # heat threshold per cgroup (inf = none of it belongs in DRAM)
    forced_demotions: int
    fills: int
    swaps: int


class TierctlPolicy:
    """Default: self-tuning heat threshold per cgroup under quotas, headroom, noise-aware swaps."""

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
        min_evidence: float = 1.0,
        noise_z: float = 1.0,
    ) -> None:
        if hysteresis < 0:
            raise InputError(f"must be >= 0, got {hysteresis}", "tierctl.hysteresis")
        if not 0 <= headroom_min <= headroom_max < 1:
            raise InputError("need 0 <= headroom_min <= headroom_max < 1", "tierctl.headroom")
        if min_residency < 0:
            raise InputError(f"must be >= 0, got {min_residency}", "tierctl.min_residency")
        if not 0 < growth_alpha <= 1:
            raise InputError(f"must be in (0, 1], got {growth_alpha}", "tierctl.growth_alpha")
        self.hysteresis = hysteresis
        self.headroom_min = headroom_min
        self.headroom_max = headroom_max
        self.headroom_cycles = headroom_cycles
        self.min_residency = min_residency
        self.growth_alpha = growth_alpha
        self.min_evidence = min_evidence
        self.noise_z = noise_z
        self._prev_present: int | None = None
        self._growth = 0.0
        # headroom restores whose room neither stayed free nor went to the tracked workloads' new pages
        # (someone else fills it: untracked allocations, the kernel's NUMA balancing pulling pages
        # back) back off: skip 1, 2, 4 ... 64 decisions
        self._restored = 0  # pages demoted for the headroom by the last decision
        self._free_then = 0  # fast free pages that decision saw
        self._restore_backoff = 0
        self._restore_wait = 0
        self.stats: TierctlStats | None = None

    # ------------------------------------------------------------------------------------------
    def decide(self, view: PolicyView) -> Plan:
        mem = view.memory
        topo = mem.topology
        heat = view.heat
        node, cg = mem.node, mem.cgroup
        n_cg = max(1, mem.n_cgroups)
        lut = topo.fast_lut()
        census = take_census(heat, node, cg, n_cg, lut)
        fast_c = census.fast_per_cgroup
        fast_now = int(fast_c.sum())
        n_present = census.present

        # 1. target and headroom
        new = 0
        if self._prev_present is not None:
            new = max(0, n_present - self._prev_present)
            self._growth += self.growth_alpha * (new - self._growth)
        self._prev_present = n_present
        cap, free = topo.fast_capacity, topo.fast_free
        headroom = int(
            np.clip(self._growth * self.headroom_cycles, self.headroom_min * cap, self.headroom_max * cap)
        )
        target = max(0, fast_now + free - headroom)

        # 2. per-cgroup thresholds under the quotas
        mins, maxs = quota_arrays(view)
        mins = np.minimum(mins, census.hist.sum(axis=(1, 2)))  # a min beyond what a cgroup has
        tbin, global_bin = quota_bins(census, target, mins, maxs)
        thr = np.where(tbin >= N_BINS, np.inf, heat.bin_floor(np.maximum(tbin, 1), hmax=census.hmax))
        # bin 0 (and an all-cold model, where every bin floor is 0) means "any heat qualifies"
        thr = np.maximum(np.where(tbin == 0, 0.0, thr), np.finfo(np.float32).tiny).astype(np.float64)
        fixed, hyst = placement_arrays(view, self.hysteresis)
        thr = np.where(np.isnan(fixed), thr, fixed)  # a profile's fixed threshold replaces the tuned one

        # candidates: enough pages around the thresholds for this cycle's budget (recently moved
        # pages are skipped, so allow for them)
        budget = view.budget
        want = budget * (1 + self.min_residency) + 1
        cut_p, cut_v = relative_cuts(census, tbin, want, want)
        promote_pool, victim_pool = candidates(
            census, heat, node, cg, lut, tbin, cut_p, cut_v, view.now - self.min_residency
        )
        del census

        def prio(idx: np.ndarray) -> np.ndarray:
            return heat.estimate(idx, view.now) / thr[cg[idx]]

        p_idx = promote_pool[top_k(prio(promote_pool), budget, largest=True)]
        p_prio = prio(p_idx)
        # among equally cold victims, the least recently sampled first (never = -1 sorts first)
        v_key = prio(victim_pool) + 1e-9 * (heat.last_seen[victim_pool] + 1)
        v_idx = victim_pool[top_k(v_key, budget, largest=False)]
        v_prio = prio(v_idx)

        # 3a. demote what exceeds a max quota (coldest first). While there are pages to promote,
        # forced demotions (3a + 3b) take at most half the budget, so the room they free is used
        # in the same cycle.
        forced_cap = budget - min(p_idx.shape[0], budget // 2)
        demote_parts: list[np.ndarray] = []
        for c in np.flatnonzero(fast_c > maxs):
            k = min(int(fast_c[c] - maxs[c]), forced_cap - sum(d.shape[0] for d in demote_parts))
            if k <= 0:
                break
            mine = fast_pages_of(node, cg, lut, int(c))
            demote_parts.append(mine[top_k(prio(mine), k, largest=False)])
        forced = np.concatenate(demote_parts) if demote_parts else np.zeros(0, np.int64)
        if forced.size:
            keep = ~np.isin(v_idx, forced)
            v_idx, v_prio = v_idx[keep], v_prio[keep]
        demoted_c = np.bincount(cg[forced], minlength=n_cg)

        # victims allowed by min quotas, in coldest-first order
        v_ok = rank_within_groups(cg[v_idx]) < (fast_c - demoted_c - mins)[cg[v_idx]]
        v_idx, v_prio = v_idx[v_ok], v_prio[v_ok]

        # 3b. restore the headroom, unless the last restores did not free room
        deficit = min(headroom - free - forced.shape[0], forced_cap - forced.shape[0])
        n_restore = max(0, min(deficit, v_idx.shape[0]))
        if self._restored:  # judge the last restore: did at least half of it stay free (or go to
            # the tracked workloads' new pages, which is what the headroom is for)?
            futile = free + new < self._free_then + self._restored // 2
            self._restore_backoff = min(64, max(1, 2 * self._restore_backoff)) if futile else 0
            self._restore_wait = self._restore_backoff
        if self._restore_wait and n_restore:
            self._restore_wait -= 1
            n_restore = 0
        self._restored, self._free_then = n_restore, free
        restore = v_idx[:n_restore]
        v_idx, v_prio = v_idx[n_restore:], v_prio[n_restore:]
        left = budget - forced.shape[0] - n_restore
        demoted_c += np.bincount(cg[restore], minlength=n_cg)

        # promotions allowed by max quotas, hottest first
        p_ok = rank_within_groups(cg[p_idx]) < (maxs - fast_c + demoted_c)[cg[p_idx]]
        p_ok &= np.isnan(fixed[cg[p_idx]]) | (p_prio >= 1.0)  # a fixed threshold: only hot pages come in
        p_idx, p_prio = p_idx[p_ok], p_prio[p_ok]

        # 3c. fill free room above the headroom
        room = free + forced.shape[0] + n_restore - headroom
        n_fill = max(0, min(room, left, p_idx.shape[0]))
        fill = p_idx[:n_fill]
        p_idx, p_prio = p_idx[n_fill:], p_prio[n_fill:]
        left -= n_fill

        # 3d. swaps: hot slow page in, cold fast page out, only with a clear margin
        m = min(p_idx.shape[0], v_idx.shape[0], left // 2)
        p_heat = heat.heat[p_idx[:m]].astype(np.float64)
        # Poisson noise: heat ~ unit * samples, so var(heat) ~ unit * heat; prio scales it further.
        # The unit is what one observation weighs now: it has decayed since the page was last seen,
        # so a page seen once is one observation however many cycles ago.
        p_unit = heat.unit * heat.decay_factor ** np.maximum(view.now - heat.last_seen[p_idx[:m]], 0)
        p_sd = np.sqrt(p_unit * p_heat) * p_prio[:m] / np.maximum(p_heat, 1e-30)
        v_raw = heat.heat[v_idx[:m]].astype(np.float64)
        v_unit = heat.unit * heat.decay_factor ** np.maximum(view.now - heat.last_seen[v_idx[:m]], 0)
        v_sd = np.sqrt(v_unit * v_raw) * v_prio[:m] / np.maximum(v_raw, 1e-30)
        noise = self.noise_z * np.hypot(p_sd, v_sd)
        good = p_heat >= self.min_evidence * p_unit * (1 - 1e-6)
        # the larger hysteresis of the two cgroups: a workload's margin protects its pages both ways
        margin = np.maximum(hyst[cg[p_idx[:m]]], hyst[cg[v_idx[:m]]])
        # only a page that belongs in the fast tier (priority >= 1) comes in, for one that does not
        good &= (p_prio[:m] >= 1.0) & (v_prio[:m] < 1.0) & (p_prio[:m] > (1.0 + margin) * v_prio[:m])
        good &= p_prio[:m] - v_prio[:m] >= noise * (1 - 1e-6)  # float32 heat against float64 units
        n_swap = int(np.argmin(good)) if not good.all() else m
        swap_in, swap_out = p_idx[:n_swap], v_idx[:n_swap]

        self.stats = TierctlStats(
            target=target,
            headroom=headroom,
            growth=self._growth,
            global_bin=global_bin,
            thresholds=thr,
            forced_demotions=int(forced.shape[0] + n_restore),
            fills=int(n_fill),
            swaps=n_swap,
        )
        demote = np.concatenate([forced, restore, swap_out])
        promote = np.concatenate([fill, swap_in])
        if demote.size == 0 and promote.size == 0:
            return Plan.empty()
        return Plan.build(promote, topo.promotion_target(), demote, topo.demotion_target())
