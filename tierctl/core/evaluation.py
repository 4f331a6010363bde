"""Which pages a decision re-evaluates, and the running census they feed.

Up to ``sweep_pages`` tracked pages, or when anything under the census codes changed (a re-indexed
page space, a full read of where the pages are, a new heat epoch, the first decision), every page
is evaluated. Otherwise a decision costs what may have changed since the last one, not what is
tracked:

- the pages sampled since the last decision (their heat changed);
- pages that became present, the pages the last decision moved, and its best candidates that it
  did not move (``carry``);
- fast pages sampled 3 and 8 decisions ago that stood near or above their threshold and were not
  sampled since (silence is evidence against a page that was hot);
- the pages of regions whose estimate factors drifted by half an octave since their pages were
  last evaluated (a region that lit up or went quiet), at most four budgets' worth;
- a sweep slice of ``sweep_pages`` pages, going round the page space, for everything else
  (pages gone, young pages ageing, slow drifts).

The estimator's region sums follow the same split: the sweep slice is recomputed, the rest kept up
to date from the sampled pages' changes (``RateEstimator.prepare``).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from tierctl.core.census import Evaluated, map_blocks
from tierctl.core.estimate import RateEstimator
from tierctl.core.heat import BINS_PER_OCTAVE, N_BINS, distinct
from tierctl.core.policy import PolicyView
from tierctl.core.running_census import SLOW_BIT, RunningCensus

_EMPTY = np.zeros(0, dtype=np.int64)
SILENCE_CHECKS = (3, 8)  # decisions after a fast page's sample at which its silence is checked
# pages per block of an evaluation pass: its temporaries (~30 B per page) are what a cycle adds to the
# per-page state, so small enough to stay a few MB, large enough that per-block overhead does not show
PASS_BLOCK = 1 << 16


@dataclass(frozen=True)
class _Pages:
    """Scattered pages to evaluate, with the region of each; for pages all sampled in one cycle,
    their stored heat and that cycle."""

    idx: np.ndarray
    reg: np.ndarray
    stored: np.ndarray | None = None
    seen: int = 0


_Segment = slice | _Pages


class Evaluation:
    """Chooses the pages to re-evaluate each decision and keeps the census of their codes."""

    def __init__(self, estimator: RateEstimator, *, sweep_pages: int, threads: int | None) -> None:
        self.estimator = estimator
        self.sweep_pages = sweep_pages
        self.threads = threads
        self.census = RunningCensus()
        self._sweep_at = 0
        self._carry = _EMPTY  # pages to re-evaluate next decision: its pools' best, pages moved
        self._sampled: deque[tuple[int, np.ndarray]] = deque(maxlen=SILENCE_CHECKS[-1])
        self._just_sampled = _EMPTY
        self._just_stored = np.zeros(0, dtype=np.float32)
        self._node_ref: np.ndarray | None = None
        self._cgroup_ref: np.ndarray | None = None

    def run(self, view: PolicyView) -> tuple[list[Evaluated], bool]:
        """Prepare the estimator, re-evaluate pages into the census; returns the evaluated pages
        and whether they were all of them."""
        mem, heat = view.memory, view.heat
        n, n_cg = mem.node.shape[0], max(1, mem.n_cgroups)
        if mem.remap is not None:
            self.estimator.reset()
        rebuild = (
            n <= self.sweep_pages
            or mem.remap is not None
            or mem.node is not self._node_ref
            or mem.cgroup is not self._cgroup_ref
            or not self.census.consistent(n, n_cg)
        )
        sweep = None if rebuild else self._next_sweep(n)
        full = self.estimator.prepare(
            heat, mem.node, mem.cgroup, view.now, refresh=sweep, new_pages=mem.new_pages
        )
        self._node_ref, self._cgroup_ref = mem.node, mem.cgroup
        everything = full or sweep is None
        if everything:
            self._sampled.clear()
            self.census.reset(n, n_cg)
            segments: list[_Segment] = [slice(0, n)]
        else:
            assert sweep is not None
            if self.census.units != heat.rebased_log2:  # a rebase: shift the codes, not recount
                self.census.rescale(BINS_PER_OCTAVE * (heat.rebased_log2 - self.census.units), mem.cgroup)
            segments = self._segments(view, sweep)
        self.census.units = heat.rebased_log2
        evaluated = self._evaluate(view, segments)
        if not self.census.healthy():  # a page's cgroup changed under its code: count afresh
            self.census.reset(n, n_cg)
            everything = True
            evaluated = self._evaluate(view, [slice(0, n)])
        return evaluated, everything

    def after(self, view: PolicyView, tbin: np.ndarray, full: bool, carry: np.ndarray) -> None:
        """What the decision leaves for the next one: ``carry`` (pages to evaluate again) and the
        fast pages sampled for it that stand within an octave of their cgroup's threshold bin
        ``tbin`` or above and are hot enough to be sampled again before the last silence check
        (if they go silent, that is news)."""
        self._carry = _EMPTY if full else carry.astype(np.int64, copy=False)
        pages, stored = self._just_sampled, self._just_stored
        self._just_sampled = _EMPTY
        if full or pages.shape[0] == 0:
            return
        heat = view.heat
        if heat.unit > 0:  # samples expected over the wait: rate = heat * (1 - d) / unit a cycle
            per_cycle = (1 - heat.decay_factor) / heat.unit
            pages = pages[stored * (heat.scale * per_cycle * SILENCE_CHECKS[-1]) >= 1.0]
        codes = self.census.codes[pages]
        rel = self.census.window_of(codes) - np.minimum(tbin, N_BINS)[view.memory.cgroup[pages]]
        keep = ((codes & SLOW_BIT) == 0) & (rel >= -BINS_PER_OCTAVE)
        self._sampled.append((view.now, pages[keep]))

    # ------------------------------------------------------------------------------------------
    def _next_sweep(self, n: int) -> tuple[int, int]:
        lo = self._sweep_at if self._sweep_at < n else 0
        hi = min(n, lo + self.sweep_pages)
        self._sweep_at = hi
        return lo, hi

    def _segments(self, view: PolicyView, sweep: tuple[int, int]) -> list[_Segment]:
        """The pages to re-evaluate when not everything is: the sweep slice, then in one array the
        pages of drifted regions and the distinct scattered pages outside both."""
        est, mem = self.estimator, view.memory
        r0, r1 = (int(r) for r in est.regions_of(np.array([sweep[0], sweep[1] - 1])))
        lo, hi = est.region_span(r0, r1 + 1)  # the estimator refreshed whole regions
        est.note_evaluated(slice(r0, r1 + 1))
        # as many regions as a few budgets of pages: enough to find what a region that lit up
        # has to promote, and what one that went quiet has to give back
        drifted = est.drifted(-(-4 * view.budget // est.region_pages))
        drifted = drifted[(drifted < r0) | (drifted > r1)]
        est.note_evaluated(drifted)
        d_lo, d_hi = est.region_bounds(drifted)
        lengths = d_hi - d_lo
        d_idx = np.arange(int(lengths.sum()), dtype=np.int64)
        d_idx += np.repeat(d_lo - (np.cumsum(lengths) - lengths), lengths)
        d_reg = np.repeat(drifted, lengths)
        # the sampled pages come sorted and distinct from one ingest; the others are merged with
        # them without sorting them again (the order only has to be cache-friendly, not total)
        touched = est.touched
        if len(touched) == 1:  # one ingest: its stored heat and cycle serve the estimates
            sampled, stored, seen = touched[0].pages, touched[0].stored, touched[0].now
        else:  # several ingests (the gate skipped decisions): read the heat again
            sampled = distinct(np.concatenate([_EMPTY, *(t.pages for t in touched)]))
            stored, seen = view.heat.stored[sampled], None
        self._just_sampled, self._just_stored = sampled, stored
        others = [self._carry, *self._gone_silent(view)]
        if mem.new_pages is not None:
            others.append(np.asarray(mem.new_pages, dtype=np.int64))
        more = np.concatenate(others).astype(np.int64, copy=False)
        more = distinct(more[(more >= 0) & (more < mem.node.shape[0])])
        if sampled.shape[0] and more.shape[0]:
            at = np.minimum(np.searchsorted(sampled, more), sampled.shape[0] - 1)
            more = more[sampled[at] != more]
        if seen is None:
            sampled, more = _EMPTY, np.sort(np.concatenate([sampled, more]))  # disjoint: one sort

        in_drifted = np.zeros(est.n_regions, dtype=bool)  # a small table: a gather per page
        in_drifted[drifted] = True

        def outside(pages: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            """Which of ``pages`` (sorted) lie outside the sweep slice and the drifted regions (a
            mask), and the regions of those."""
            reg = est.regions_of(pages)
            keep = ~in_drifted[reg]
            a, b = np.searchsorted(pages, [lo, hi])
            keep[a:b] = False
            return keep, reg[keep]

        k_s, r_s = outside(sampled)
        k_m, r_m = outside(more)
        segments: list[_Segment] = [slice(lo, hi)]
        if r_s.shape[0]:
            assert seen is not None
            segments.append(_Pages(sampled[k_s], r_s, stored[k_s], seen))
        segments.append(_Pages(np.concatenate([d_idx, more[k_m]]), np.concatenate([d_reg, r_m])))
        return segments

    def _gone_silent(self, view: PolicyView) -> list[np.ndarray]:
        """Fast pages sampled ``SILENCE_CHECKS`` decisions ago and not since."""
        out = []
        seen = view.heat.last_seen
        for t, pages in self._sampled:
            if view.now - t in SILENCE_CHECKS:
                ok = pages[pages < seen.shape[0]]
                out.append(ok[seen[ok] == t])
        return out

    def _evaluate(self, view: PolicyView, segments: list[_Segment]) -> list[Evaluated]:
        """Estimates of the pages in ``segments`` into the census. Returns per block of a page range
        its new codes (a view of the census's), and for the scattered pages their estimates and new
        codes. A page range's estimates are not kept: at a full pass they would cost 4 bytes a page,
        and the few pages picked from it are estimated again."""
        mem, est, census = view.memory, self.estimator, self.census
        lut = mem.topology.fast_lut()
        scale = view.heat.scale
        out: list[Evaluated] = []
        for seg in segments:
            if isinstance(seg, slice):

                def block(lo: int, hi: int) -> tuple[int, int, np.ndarray]:
                    return lo, hi, census.codes_for(est.block_rates(lo, hi), mem.node[lo:hi], lut, scale)

                step = PASS_BLOCK * 4  # a few blocks at a time: their codes are applied, then dropped
                for glo in range(seg.start, seg.stop, step):
                    ghi = min(seg.stop, glo + step)
                    for lo, hi, codes in map_blocks(block, ghi, PASS_BLOCK, self.threads, start=glo):
                        census.apply(slice(lo, hi), codes, mem.cgroup[lo:hi])
                        out.append(Evaluated(slice(lo, hi), None, census.codes[lo:hi], mem.cgroup[lo:hi]))
            elif seg.idx.shape[0]:

                def chunk(lo: int, hi: int, seg: _Pages = seg) -> Evaluated:
                    idx = seg.idx[lo:hi]
                    reg = seg.reg[lo:hi]
                    known = None if seg.stored is None else (seg.stored[lo:hi], seg.seen)
                    e = est.rates32(idx, reg, sampled=known)
                    codes = census.codes_for(e, mem.node[idx], lut, scale)
                    return Evaluated(idx, e, codes, est.region_cgroup(mem.cgroup)[reg])

                for ev in map_blocks(chunk, seg.idx.shape[0], PASS_BLOCK, self.threads):
                    census.apply(ev.where, ev.codes, ev.cgroup)
                    out.append(ev)
        return out
