"""Rate estimates that hold up when samples are sparse.

A page's decayed heat alone is a poor estimate at well under one sample per page per cycle: most
pages carry zero or one sample, and a page that went cold keeps its heat for several half-lives.
This module turns the heat model into a posterior estimate per page, in heat units (what a steady
page of that rate would have as heat), using three pieces of evidence beside the page's own heat:

1. **Its region.** Pages that are near each other in the tracked page space (consecutive indices:
   nearby addresses of one process) tend to be alike. Per region of ``region_pages`` pages, the mean
   heat ``m`` and the spread of the pages' heat around it give, after the Poisson sampling noise is
   taken out, the between-page variance ``tau2``. A page's estimate is the credibility-weighted mix
   ``z * own + (1 - z) * m`` with ``z = tau2 / (tau2 + noise)``: in a uniform region (a sliding
   window, a scanned buffer) an unsampled page gets its region's heat; in a region of mixed pages
   (a random hash table) it keeps its own.
2. **Its region's recent level.** Regions gather many samples even when pages gather few, so a
   region's rate can follow a much shorter half-life (``level_half_life``) than a page's. Each
   page's estimate is scaled by its region's short-horizon rate over its long-horizon rate: a region
   that went quiet drops at once, one that lit up rises at once.
3. **Its silence.** A page estimated at ``s`` samples per cycle above its region's rate that was not
   sampled for ``t`` cycles has seen an event of likelihood ``exp(-s t)`` if it is still that hot.
   With a prior hazard ``hazard`` per cycle that a page's rate changed, the posterior weight of "still
   that hot" scales its excess over the region.

``sd()`` is the posterior standard deviation (credibility: ``z`` times the Poisson variance at the
estimate), for decisions that should not act on noise. Everything is per-region arrays plus the
heat model's own per-page state: no extra bytes per page persist between cycles.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tierctl.core.census import blocks, map_blocks
from tierctl.core.heat import HeatModel
from tierctl.errors import InputError

RATIO_MAX = 8.0  # a region's short-horizon level may raise its pages' estimates at most this much


class RateEstimator:
    """Posterior heat estimates per page from the heat model, its regions and its silences."""

    def __init__(
        self,
        *,
        region_pages: int = 512,
        level_half_life: float = 1.0,
        hazard: float = 0.05,
        workers: int | None = None,
    ) -> None:
        if region_pages < 1:
            raise InputError(f"must be >= 1, got {region_pages}", "estimate.region_pages")
        if level_half_life < 0:
            raise InputError(f"must be >= 0 (0 = off), got {level_half_life}", "estimate.level_half_life")
        if not 0 <= hazard < 1:
            raise InputError(f"must be in [0, 1), got {hazard}", "estimate.hazard")
        self.region_pages = region_pages
        self.workers = workers  # threads for the block passes (None: census.default_workers())
        self.level_half_life = level_half_life
        self.hazard = hazard
        # per region, between decisions: long-horizon heat sum then, short-horizon level now
        self._sum_then: np.ndarray | None = None
        self._level: np.ndarray | None = None
        self._then = 0
        # this decision's per-region figures
        self._mean = np.zeros(0)
        self._z = np.zeros(0)
        self._ratio = np.zeros(0)
        self._heat: HeatModel | None = None
        self._starts: np.ndarray | None = None  # first page of each region
        self._now = 0

    def reset(self) -> None:
        """Forget the regions' recent levels (the tracked page space was re-indexed)."""
        self._sum_then = self._level = None

    # ------------------------------------------------------------------------------------------
    def _regions(self, cgroup: np.ndarray) -> np.ndarray:
        """First page of each region: every ``region_pages``-th page and every change of cgroup
        (pages of two workloads are never pooled)."""
        n = cgroup.shape[0]
        fixed = np.arange(0, n, self.region_pages, dtype=np.int64)
        changes = [
            np.flatnonzero(cgroup[max(lo, 1) : hi] != cgroup[max(lo, 1) - 1 : hi - 1]) + max(lo, 1)
            for lo, hi in blocks(n)
        ]
        cuts = np.concatenate(changes) if changes else np.zeros(0, np.int64)
        if cuts.size == 0:
            return fixed
        return np.union1d(fixed, cuts)

    def prepare(self, heat: HeatModel, present: np.ndarray, cgroup: np.ndarray, now: int) -> None:
        """One pass over the pages: per-region mean, credibility weight and recent level."""
        n = heat.n_pages
        starts = self._regions(cgroup[:n])
        if self._starts is None or not np.array_equal(starts, self._starts):
            self.reset()  # other regions: their recent levels do not carry over
        self._starts = starts
        n_reg = starts.shape[0]
        cnt = np.zeros(n_reg)
        s1 = np.zeros(n_reg)
        s2 = np.zeros(n_reg)
        heat.settle_young(now)  # from here on, heat.estimate only reads: the blocks run in parallel

        def sums(lo: int, hi: int) -> tuple[int, int, np.ndarray, np.ndarray, np.ndarray]:
            h = heat.estimate(np.arange(lo, hi), now)
            h[~present[lo:hi]] = 0.0
            first = int(np.searchsorted(starts, lo, side="right")) - 1
            last = int(np.searchsorted(starts, hi, side="left"))
            local = starts[first:last] - lo
            local[0] = 0
            c = np.add.reduceat(present[lo:hi].astype(np.float64), local)
            return first, last, c, np.add.reduceat(h, local), np.add.reduceat(h * h, local)

        # block-wise (no page-sized float64 temporaries); a region split by a block boundary gets
        # both blocks' partial sums, added in block order
        for first, last, c, a, b in map_blocks(sums, n, workers=self.workers):
            cnt[first:last] += c
            s1[first:last] += a
            s2[first:last] += b
        mean = np.divide(s1, cnt, out=np.zeros(n_reg), where=cnt > 0)
        noise_unit = self._noise_unit(heat)
        # between-page variance after the Poisson noise (variance unit * heat / (1 + d) per page)
        within = s2 - cnt * mean * mean
        tau2 = np.maximum(within - noise_unit * s1, 0.0) / np.maximum(cnt - 1, 1)
        noise = noise_unit * mean
        z = np.divide(tau2, tau2 + noise, out=np.ones(n_reg), where=(tau2 + noise) > 0)
        z[cnt < 2] = 1.0  # a page alone in its region: no neighbours to learn from
        self._mean, self._z = mean, z
        self._ratio = self._recent_level(heat, s1, now)
        self._heat, self._now = heat, now

    def _noise_unit(self, heat: HeatModel) -> float:
        return max(heat.unit, 0.0) / (1.0 + heat.decay_factor)

    def _recent_level(self, heat: HeatModel, total: np.ndarray, now: int) -> np.ndarray:
        """Per region: short-horizon rate over long-horizon rate (1 where unknown)."""
        ones = np.ones(total.shape[0])
        if self.level_half_life <= 0:
            return ones
        d = heat.decay_factor
        ds = 0.5 ** (1.0 / self.level_half_life)
        if self._sum_then is None or self._level is None or self._sum_then.shape != total.shape:
            self._level = total * (1 - d)  # start level with the long-horizon rate: ratio 1
        else:
            dt = max(1, now - self._then)
            new = np.maximum(total - d**dt * self._sum_then, 0.0)  # heat added since then
            # an exponentially weighted rate: a cycle's new heat weighs (1 - ds) of the level
            self._level = ds**dt * self._level + (1 - ds**dt) * new / dt
        self._sum_then, self._then = total.copy(), now
        long_rate = total * (1 - d)
        ratio = np.divide(self._level, long_rate, out=ones, where=long_rate > 0)
        return np.clip(ratio, 0.0, RATIO_MAX)

    # ------------------------------------------------------------------------------------------
    def _prepared(self, idx: np.ndarray) -> tuple[HeatModel, Callable[[], np.ndarray]]:
        """The heat model of the last ``prepare``, and (lazily) the region of each page ``idx``."""
        heat, starts = self._heat, self._starts
        if heat is None or starts is None:
            raise InputError("prepare() must run before estimates are read", "estimate")
        return heat, lambda: np.searchsorted(starts, idx, side="right") - 1

    def _parts(
        self, idx: np.ndarray, reg: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        heat, regions = self._prepared(idx)
        if reg is None:
            reg = regions()
        own = heat.estimate(idx, self._now)
        m = self._mean[reg]
        if self.hazard > 0 and heat.unit > 0:
            above = np.flatnonzero(own > m)  # silence is evidence only against a page above its region
            if above.size:
                seen = heat.last_seen[idx[above]]
                quiet = np.where(seen >= 0, self._now - seen, 0)
                excess = own[above] - m[above]
                expected = excess * ((1 - heat.decay_factor) / heat.unit) * quiet  # samples not seen
                odds = ((1 - self.hazard) / self.hazard) * np.exp(-np.minimum(expected, 60.0))
                own[above] = m[above] + excess * (odds / (1 + odds))
        return own, m, self._z[reg], self._ratio[reg]

    def _block_regions(self, lo: int, hi: int) -> np.ndarray:
        """Region of each page lo..hi-1 (a contiguous block), without a search per page."""
        starts = self._starts
        assert starts is not None
        first = int(np.searchsorted(starts, lo, side="right")) - 1
        last = int(np.searchsorted(starts, hi, side="left"))
        edges = np.clip(np.r_[starts[first + 1 : last], hi], lo, hi)
        lengths = np.diff(np.r_[lo, edges])
        return np.repeat(np.arange(first, first + lengths.shape[0]), lengths)

    @staticmethod
    def _mix(own: np.ndarray, m: np.ndarray, z: np.ndarray, ratio: np.ndarray) -> np.ndarray:
        return (z * own + (1 - z) * m) * ratio

    def rate(self, idx: np.ndarray) -> np.ndarray:
        """Posterior heat of pages ``idx`` (float64)."""
        return self._mix(*self._parts(idx))

    def rate_and_sd(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        own, m, z, ratio = self._parts(idx)
        mix = z * own + (1 - z) * m
        noise_unit = self._noise_unit(self._heat)  # type: ignore[arg-type]
        return self._mix(own, m, z, ratio), np.sqrt(z * noise_unit * mix) * ratio

    def has_evidence(self, idx: np.ndarray) -> np.ndarray:
        """Whether there is evidence worth a move for pages ``idx``: a sample of their own within
        two half-lives, or a region uniform enough that its prior carries at least half of their
        estimate, and at least half an observation's worth of heat (a page at the edge of a hot
        region, among unlike pages, has neither)."""
        heat, regions = self._prepared(idx)
        seen = heat.last_seen[idx]
        own = (seen >= 0) & (self._now - seen <= 2 * heat.half_life)
        reg = regions()
        # the region's share must be worth half an observation: a cold uniform region that once
        # caught a stray sample lends its pages nothing
        prior = (1 - self._z[reg]) * self._mean[reg] * self._ratio[reg]
        return own | ((self._z[reg] <= 0.5) & (prior >= 0.5 * heat.unit))

    def rates(self, n: int, out: np.ndarray | None = None) -> np.ndarray:
        """Posterior heat of every page 0..n-1 as float32, block-wise."""
        if out is None:
            out = np.empty(n, dtype=np.float32)
        if self._heat is not None:
            self._heat.settle_young(self._now)

        def fill(lo: int, hi: int) -> None:
            own, m, z, ratio = self._parts(np.arange(lo, hi), self._block_regions(lo, hi))
            out[lo:hi] = self._mix(own, m, z, ratio)

        map_blocks(fill, n, workers=self.workers)
        return out
