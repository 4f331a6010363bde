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
from tierctl.core.heat import HeatModel, Touched
from tierctl.errors import InputError

_EMPTY = np.zeros(0, dtype=np.int64)
RATIO_MAX = 8.0  # a region's short-horizon level may raise its pages' estimates at most this much
REFRESH_BLOCK = 1 << 16  # pages per block of a region-sum pass (its float64 temporaries: ~30 B per page)


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
        self.workers = workers  # threads for the block passes (None: one; callers size it)
        self.level_half_life = level_half_life
        self.hazard = hazard
        # per region, between decisions: long-horizon heat sum then, short-horizon level now
        self._sum_then: np.ndarray | None = None
        self._level: np.ndarray | None = None
        self._then = 0
        # per region, kept up to date between decisions: present pages, and the sums of their
        # (young-corrected) stored heat and its square; valid for one heat epoch
        self._cnt = np.zeros(0)
        self._s1 = np.zeros(0)
        self._s2 = np.zeros(0)
        self._epoch = -1
        self._rebased = 0  # the heat model's rebased_log2 the sums are in
        self._cgroup_ref: np.ndarray | None = None  # the cgroup array the regions were cut from
        self._starts_n = 0
        self._cell_region = np.zeros(0, dtype=np.int64)
        self._cell_cut = np.zeros(0, dtype=bool)
        self._reg_cg: np.ndarray | None = None
        self.touched: list[Touched] = []  # what the ingests since the previous prepare changed
        # per region, the factors its pages were last evaluated with (see ``drifted``)
        self._seen_prior = np.zeros(0)
        self._seen_gain = np.zeros(0)
        # this decision's per-region figures
        self._mean = np.zeros(0)
        self._z = np.zeros(0)
        self._m32 = self._gain32 = self._prior32 = np.zeros(0, dtype=np.float32)
        self._ratio = np.zeros(0)
        self._heat: HeatModel | None = None
        self._starts: np.ndarray | None = None  # first page of each region
        self._now = 0

    def reset(self) -> None:
        """Forget the regions and their recent levels (the tracked page space was re-indexed)."""
        self._sum_then = self._level = None
        self._starts = self._cgroup_ref = None

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

    @property
    def n_regions(self) -> int:
        return 0 if self._starts is None else int(self._starts.shape[0])

    def region_span(self, first: int, last: int) -> tuple[int, int]:
        """Pages of regions ``first..last-1``."""
        starts, heat = self._starts, self._heat
        assert starts is not None and heat is not None
        hi = int(starts[last]) if last < starts.shape[0] else heat.n_pages
        return int(starts[first]), hi

    def region_bounds(self, regions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """First page and end of each of ``regions``."""
        starts, heat = self._starts, self._heat
        assert starts is not None and heat is not None
        ends = np.r_[starts[1:], heat.n_pages]
        return starts[regions], ends[regions]

    def _grid(self, starts: np.ndarray, n: int) -> None:
        """Per grid cell of ``region_pages`` pages: the region of its first page, and whether
        another region starts inside it (a cgroup changes there)."""
        cells = np.arange(0, n, self.region_pages, dtype=np.int64)
        self._cell_region = np.searchsorted(starts, cells, side="right") - 1
        inner = starts[starts % self.region_pages != 0] // self.region_pages
        self._cell_cut = np.zeros(cells.shape[0], dtype=bool)
        self._cell_cut[inner] = True

    def region_cgroup(self, cgroup: np.ndarray) -> np.ndarray:
        """The cgroup of each region (a region never spans two)."""
        if self._reg_cg is None:
            assert self._starts is not None
            self._reg_cg = cgroup[self._starts]
        return self._reg_cg

    def regions_of(self, idx: np.ndarray) -> np.ndarray:
        """Region of each page ``idx``: a lookup by grid cell, a search only in cells a cgroup
        change cuts."""
        assert self._starts is not None
        cell = idx // self.region_pages
        reg = self._cell_region[cell]
        cut = np.flatnonzero(self._cell_cut[cell])
        if cut.shape[0]:
            reg[cut] = np.searchsorted(self._starts, idx[cut], side="right") - 1
        return reg

    def prepare(
        self,
        heat: HeatModel,
        present: np.ndarray,  # bool per page, or the node per page (present: >= 0)
        cgroup: np.ndarray,
        now: int,
        *,
        refresh: tuple[int, int] | None = None,
        new_pages: np.ndarray | None = None,
    ) -> bool:
        """Per-region mean, credibility weight and recent level for this decision.

        ``refresh=None`` recomputes every region's sums in one pass over the pages. A page range
        ``(lo, hi)`` recomputes only the regions that overlap it; the others are kept up to date
        from the heat model's changes since the last call (samples) and ``new_pages`` (pages that
        became present), and drift from the truth only by what those miss (pages gone, young
        pages ageing) until their turn comes. Returns True when every region was recomputed
        (always on the first call, after ``reset`` and when the heat model changed epoch)."""
        n = heat.n_pages
        heat.track_touched()
        touched = heat.take_touched()
        self.touched = touched
        cg = cgroup[:n]
        if self._starts is None or self._cgroup_ref is not cgroup or self._starts_n != n:
            starts = self._regions(cg)
            if self._starts is None or not np.array_equal(starts, self._starts):
                self.reset()  # other regions: their recent levels do not carry over
            self._starts, self._cgroup_ref, self._starts_n = starts, cgroup, n
            self._grid(starts, n)
            self._reg_cg = None
        starts = self._starts
        n_reg = starts.shape[0]
        full = refresh is None or self._epoch != heat.epoch or self._s1.shape[0] != n_reg
        if not full and self._rebased != heat.rebased_log2:  # stored units changed by 2**k: exact
            f = 2.0 ** (heat.rebased_log2 - self._rebased)
            self._s1 *= f
            self._s2 *= f * f
        self._rebased = heat.rebased_log2
        heat.settle_young(now)  # from here on, heat.estimate only reads: the blocks run in parallel
        self._heat, self._now = heat, now
        if full:
            self._cnt, self._s1, self._s2 = np.zeros(n_reg), np.zeros(n_reg), np.zeros(n_reg)
            self._refresh(heat, present, 0, n)
        else:
            for t in touched:  # bincount: several times cheaper than np.add.at
                reg = self.regions_of(t.pages)
                self._s1 += np.bincount(reg, weights=t.d1, minlength=n_reg)
                self._s2 += np.bincount(reg, weights=t.d2, minlength=n_reg)
            if new_pages is not None and new_pages.shape[0]:
                np.add.at(self._cnt, self.regions_of(new_pages[_present(present[new_pages])]), 1.0)
            assert refresh is not None
            lo, hi = refresh
            first, last = self.regions_of(np.array([lo, max(lo, hi - 1)]))
            lo, hi = self.region_span(int(first), int(last) + 1)
            self._refresh(heat, present, lo, hi)
        self._epoch = heat.epoch
        scale = heat.scale
        cnt, s1, s2 = self._cnt, self._s1 * scale, self._s2 * (scale * scale)  # current units
        mean = np.divide(s1, cnt, out=np.zeros(n_reg), where=cnt > 0)
        noise_unit = self._noise_unit(heat)
        # between-page variance after the Poisson noise (variance unit * heat / (1 + d) per page)
        within = np.maximum(s2 - cnt * mean * mean, 0.0)
        tau2 = np.maximum(within - noise_unit * s1, 0.0) / np.maximum(cnt - 1, 1)
        noise = noise_unit * mean
        z = np.divide(tau2, tau2 + noise, out=np.ones(n_reg), where=(tau2 + noise) > 0)
        z[cnt < 2] = 1.0  # a page alone in its region: no neighbours to learn from
        self._mean, self._z = mean, z
        self._ratio = self._recent_level(heat, s1, now)
        # float32 per-region factors for bulk estimates: est = own * gain + prior
        f32 = np.float32
        self._m32 = mean.astype(f32)
        self._gain32 = (z * self._ratio).astype(f32)
        self._prior32 = ((1 - z) * mean * self._ratio).astype(f32)
        if full or self._seen_prior.shape[0] != n_reg:
            self._seen_prior, self._seen_gain = self._factors()
        return full

    def _refresh(self, heat: HeatModel, present: np.ndarray, lo: int, hi: int) -> None:
        """Recompute the sums of the regions in pages lo..hi-1 (region-aligned), block-wise."""
        starts = self._starts
        assert starts is not None
        inv = 1.0 / heat.scale

        def sums(blo: int, bhi: int) -> tuple[int, int, np.ndarray, np.ndarray, np.ndarray]:
            h = heat.estimate(slice(blo, bhi), self._now) * inv
            here = _present(present[blo:bhi])
            h[~here] = 0.0
            first = int(np.searchsorted(starts, blo, side="right")) - 1
            last = int(np.searchsorted(starts, bhi, side="left"))
            local = starts[first:last] - blo
            local[0] = 0
            c = np.add.reduceat(here.astype(np.float64), local)
            return first, last, c, np.add.reduceat(h, local), np.add.reduceat(h * h, local)

        r0 = int(np.searchsorted(starts, lo, side="right")) - 1
        r1 = int(np.searchsorted(starts, hi, side="left"))
        for arr in (self._cnt, self._s1, self._s2):
            arr[r0:r1] = 0.0
        # block-wise (no page-sized float64 temporaries); a region split by a block boundary gets
        # both blocks' partial sums, added in block order
        for first, last, c, a, b in map_blocks(sums, hi, REFRESH_BLOCK, self.workers, start=lo):
            self._cnt[first:last] += c
            self._s1[first:last] += a
            self._s2[first:last] += b

    def _factors(self) -> tuple[np.ndarray, np.ndarray]:
        """Per region: what its pages' estimates take from the region (prior) and the weight of
        their own heat (gain) — see ``_mix``."""
        return (1 - self._z) * self._mean * self._ratio, self._z * self._ratio

    def drifted(self, max_regions: int, octaves: float = 0.5) -> np.ndarray:
        """Regions whose factors moved by more than ``octaves`` since their pages were last
        evaluated (a region that lit up or went quiet), the largest moves first, at most
        ``max_regions``; ``note_evaluated`` records them as evaluated."""
        heat = self._heat
        if heat is None or max_regions <= 0 or self._seen_prior.shape[0] == 0:
            return np.zeros(0, dtype=np.int64)
        prior, gain = self._factors()
        eps = 0.05 * max(heat.unit, 1e-12) / (1 - heat.decay_factor)  # a twentieth of a sample a cycle
        move = np.abs(np.log2((prior + eps) / (self._seen_prior + eps)))
        np.maximum(move, np.abs(np.log2((gain + 1e-3) / (self._seen_gain + 1e-3))), out=move)
        big = np.flatnonzero(move > octaves)
        if big.shape[0] > max_regions:
            big = big[np.argpartition(-move[big], max_regions - 1)[:max_regions]]
        return np.sort(big)

    def note_evaluated(self, regions: np.ndarray | slice) -> None:
        prior, gain = self._factors()
        self._seen_prior[regions] = prior[regions]
        self._seen_gain[regions] = gain[regions]

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
        return heat, lambda: self.regions_of(idx)

    def _parts(
        self, idx: np.ndarray | slice, reg: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Own (silence-weighed) heat, region mean, credibility and level ratio of pages ``idx``
        (indices, or a slice with ``reg`` given)."""
        if reg is None:
            assert isinstance(idx, np.ndarray)
            heat, regions = self._prepared(idx)
            reg = regions()
        else:
            heat, _ = self._prepared(_EMPTY)
        own = heat.estimate(idx, self._now)
        m = self._mean[reg]
        if self.hazard > 0 and heat.unit > 0:
            above = np.flatnonzero(own > m)  # silence is evidence only against a page above its region
            if above.size:
                self._silence(heat, idx, above, own, m)
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

    def rate(self, idx: np.ndarray, reg: np.ndarray | None = None) -> np.ndarray:
        """Posterior heat of pages ``idx`` (float64); ``reg``: their regions, when known."""
        return self._mix(*self._parts(idx, reg))

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

    def block_rates(self, lo: int, hi: int) -> np.ndarray:
        """Posterior heat of pages lo..hi-1 (float32, for binning); after ``settle_young``, any
        thread."""
        return self.rates32(slice(lo, hi), self._block_regions(lo, hi))

    def rates32(
        self, idx: np.ndarray | slice, reg: np.ndarray, *, sampled: tuple[np.ndarray, int] | None = None
    ) -> np.ndarray:
        """Posterior heat of pages ``idx`` in regions ``reg``, in float32 with fewer temporaries:
        what the census bins (1/8 octave) needs, for many pages at once. ``sampled``: the pages'
        stored heat and the cycle all of them were last sampled in, when the caller knows them
        (pages just sampled: no gathers of their heat and last sample)."""
        heat, _ = self._prepared(_EMPTY)
        stored = None if sampled is None else sampled[0]
        own = heat.estimate(idx, self._now, np.float32, stored=stored)
        if self.hazard > 0 and heat.unit > 0:
            m = self._m32[reg]
            above = np.flatnonzero(own > m)
            if above.size:
                quiet = None if sampled is None else self._now - sampled[1]
                self._silence(heat, idx, above, own, m, quiet)
        own *= self._gain32[reg]
        own += self._prior32[reg]
        return own

    def _silence(
        self,
        heat: HeatModel,
        idx: np.ndarray | slice,
        above: np.ndarray,
        own: np.ndarray,
        m: np.ndarray,
        quiet_for: int | None = None,
    ) -> None:
        """Weigh down, in place, the excess over their region of pages ``above`` (positions in
        ``idx``) by the likelihood of their silence since their last sample (``quiet_for`` cycles
        ago for all of them, when the caller knows it)."""
        dt = own.dtype  # float32 for the census's many pages: half the memory traffic, a float32 exp
        m_above = m[above]
        excess = own[above] - m_above
        expected = excess * dt.type((1 - heat.decay_factor) / heat.unit)  # samples not seen
        if quiet_for is None:
            pages = idx.start + above if isinstance(idx, slice) else idx[above]
            seen = heat.last_seen[pages]
            quiet = (self._now - seen).astype(dt)
            quiet[seen < 0] = 0
            expected *= quiet
        else:
            expected *= dt.type(max(0, quiet_for))
        np.minimum(expected, 60.0, out=expected)
        np.negative(expected, out=expected)
        odds = np.exp(expected, out=expected)
        odds *= dt.type((1 - self.hazard) / self.hazard)
        excess *= odds / (1 + odds)
        excess += m_above
        own[above] = excess

    def cgroup_spans(self, cgroup: np.ndarray, c: int) -> list[tuple[int, int]]:
        """Page spans of cgroup ``c``'s regions (a region never spans two cgroups)."""
        starts = self._starts
        assert starts is not None
        mine = np.flatnonzero(cgroup[starts] == c)
        if mine.shape[0] == 0:
            return []
        breaks = np.flatnonzero(np.diff(mine) > 1)
        firsts = np.r_[mine[0], mine[breaks + 1]]
        lasts = np.r_[mine[breaks], mine[-1]]
        return [self.region_span(int(f), int(la) + 1) for f, la in zip(firsts, lasts, strict=True)]


def _present(p: np.ndarray) -> np.ndarray:
    return p if p.dtype == np.bool_ else p >= 0
