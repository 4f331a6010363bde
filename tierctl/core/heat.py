"""Heat model: a decaying access score per tracked page, plus recency.

Per tracked page it keeps 12 bytes: ``heat`` (float32, estimated accesses per
cycle, exponentially decayed), ``last_seen`` and ``last_moved`` (int32 cycle
numbers, -1 = never).  Region (2 MiB) scores and log-scale bins are derived on
demand, never stored.

Decay is lazy: the array holds heat divided by a common ``scale`` (the product of
every decay since the last rebase), so a cycle's decay costs nothing and a sample
adds ``weight / scale``.  When the scale falls below 2**-32 the array is multiplied
by exactly 2**-32 (a power of two: every stored value keeps its mantissa, so log
bins of stored values shift by a whole number of octaves) and ``epoch`` counts up.
``heat`` gives the current values (read-only); ``stored`` and ``scale`` the raw ones.

Young pages: a page that appeared ``age`` cycles ago has had time to gather only
a fraction ``1 - d**(age+1)`` of the heat a steady page of the same rate has, so
``estimate()`` divides by that.  The pages that appeared in the last few
half-lives are kept in a short ring (their number follows the allocation rate,
not the size of memory), so this costs no per-page state.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from tierctl.core.samples import SAMPLE_DTYPE
from tierctl.errors import InputError

NEVER = -1
# cycles for a page's heat to halve: long enough that sparse samples add up (a page seen once in 6
# cycles is still told from one never seen), short enough to follow a page whose rate changed; the
# region level in core/estimate.py follows faster changes (docs/policy.md, docs/bench-quality.md)
DEFAULT_HALF_LIFE = 6.0
N_BINS = 256  # bin 0 = no heat; bins 1..255 cover 255/BINS_PER_OCTAVE octaves below the maximum
BINS_PER_OCTAVE = 8


@dataclass(frozen=True)
class Touched:
    """One ingest's changes: its distinct pages (sorted), the change of their stored heat and of
    its square, their stored heat after it, and the cycle it was observed in."""

    pages: np.ndarray
    d1: np.ndarray
    d2: np.ndarray
    stored: np.ndarray
    now: int


class HeatModel:
    def __init__(self, n_pages: int = 0, *, half_life: float = DEFAULT_HALF_LIFE) -> None:
        if half_life <= 0:
            raise InputError(f"half_life must be > 0, got {half_life}", "heat.half_life")
        self.half_life = float(half_life)
        self.decay_factor = float(0.5 ** (1.0 / half_life))
        self._n = 0
        self._heat = np.zeros(0, dtype=np.float32)
        self._last_seen = np.zeros(0, dtype=np.int32)
        self._last_moved = np.zeros(0, dtype=np.int32)
        self._young: deque[tuple[int, np.ndarray]] = deque(maxlen=max(2, math.ceil(4 * half_life)))
        self._young_window = max(2, math.ceil(4 * half_life))  # cycles a page counts as young
        self._young_sorted: tuple[np.ndarray, np.ndarray] | None = None  # (pages, born) by page
        self._scale = 1.0  # current heat = stored * scale
        self.epoch = 0  # counts loads and re-indexings: stored values from before are not comparable
        # stored values were multiplied by 2**rebased_log2 in all by rebases (exact powers of two):
        # consumers that keep stored units rescale by the difference instead of starting over
        self.rebased_log2 = 0
        # per ingest, while tracked: (pages, change of stored heat, change of its square), one row
        # per distinct page, for consumers that keep sums of heat up to date without a full pass
        self._touched: list[Touched] | None = None
        self.unit = 0.0  # weight of one observation (the sampler's, else the smallest weight in a batch)
        self.dropped_samples = 0  # samples naming a page outside the tracked space
        self.ingested_samples = 0
        self.resize(n_pages)

    # ---- page space -------------------------------------------------------------------------
    @property
    def n_pages(self) -> int:
        return self._n

    def resize(self, n_pages: int) -> None:
        """Grow (or shrink) the tracked page space; new pages start cold and unseen."""
        if n_pages < 0:
            raise InputError(f"n_pages must be >= 0, got {n_pages}", "heat.n_pages")
        cap = self._heat.shape[0]
        if n_pages > cap:
            new_cap = max(n_pages, int(cap * 1.5))
            self._heat = _grow(self._heat, new_cap, 0)
            self._last_seen = _grow(self._last_seen, new_cap, NEVER)
            self._last_moved = _grow(self._last_moved, new_cap, NEVER)
        elif n_pages < self._n:
            self._heat[n_pages : self._n] = 0
            self._last_seen[n_pages : self._n] = NEVER
            self._last_moved[n_pages : self._n] = NEVER
        self._n = n_pages

    def remap(self, old_to_new: np.ndarray, n_pages: int) -> None:
        """Re-index after the tracked page space changed: page i becomes ``old_to_new[i]`` (-1: gone).
        Pages new to the space start cold and unseen."""
        if old_to_new.shape[0] != self._n:
            raise InputError(f"remap has {old_to_new.shape[0]} entries for {self._n} pages", "heat.remap")
        keep = old_to_new >= 0
        dest = old_to_new[keep]
        if dest.size:  # unique and in range; O(n) with a mark array (np.unique sorts: slow per cycle)
            if int(dest.max()) >= n_pages:
                raise InputError("remap targets must be unique and below n_pages", "heat.remap")
            mark = np.zeros(n_pages, dtype=bool)
            mark[dest] = True
            if int(np.count_nonzero(mark)) != dest.shape[0]:
                raise InputError("remap targets must be unique and below n_pages", "heat.remap")
        heat = np.zeros(n_pages, dtype=np.float32)
        seen = np.full(n_pages, NEVER, dtype=np.int32)
        moved = np.full(n_pages, NEVER, dtype=np.int32)
        heat[dest] = self.heat[keep]
        self._scale = 1.0
        self._new_epoch()
        seen[dest] = self.last_seen[keep]
        moved[dest] = self.last_moved[keep]
        self._heat, self._last_seen, self._last_moved, self._n = heat, seen, moved, n_pages
        young = [(t, old_to_new[p[p < old_to_new.shape[0]]]) for t, p in self._young]
        self._young.clear()
        self._young_sorted = None
        for t, p in young:
            if (p >= 0).any():
                self._young.append((t, p[p >= 0]))

    @property
    def heat(self) -> np.ndarray:
        """Current heat of every tracked page (read-only; ``load`` writes)."""
        if self._scale == 1.0:
            out = self._heat[: self._n].view()
        else:
            out = self._heat[: self._n] * np.float32(self._scale)
        out.flags.writeable = False
        return out

    @property
    def stored(self) -> np.ndarray:
        """Heat divided by ``scale`` (read-only): unchanged by decay, so comparable across cycles
        of one ``epoch``."""
        out = self._heat[: self._n].view()
        out.flags.writeable = False
        return out

    @property
    def scale(self) -> float:
        return self._scale

    def current(
        self, idx: np.ndarray | slice, dtype: type = np.float64, *, stored: np.ndarray | None = None
    ) -> np.ndarray:
        """Current heat of pages ``idx`` (indices, or a slice; float64, or ``dtype``); ``stored``:
        their stored heat, when the caller has it (saves a gather at random pages)."""
        out = self._heat[idx] if stored is None else stored
        if dtype is not np.float32 or isinstance(idx, slice) or stored is not None:
            out = out.astype(dtype)
        out *= dtype(self._scale)
        return out

    def load(self, values: np.ndarray) -> None:
        """Set the current heat of every tracked page (tests, benchmarks, restored state)."""
        values = np.asarray(values, dtype=np.float32)
        if values.shape != (self._n,):
            raise InputError(f"heat has {values.shape} values for {self._n} pages", "heat.load")
        self._heat[: self._n] = values
        self._scale = 1.0
        self._new_epoch()

    @property
    def last_seen(self) -> np.ndarray:
        return self._last_seen[: self._n]

    @property
    def last_moved(self) -> np.ndarray:
        return self._last_moved[: self._n]

    @property
    def nbytes(self) -> int:
        return self._heat.nbytes + self._last_seen.nbytes + self._last_moved.nbytes

    # ---- updates ----------------------------------------------------------------------------
    def decay(self, cycles: float = 1.0) -> None:
        self._scale *= self.decay_factor**cycles
        if self._scale < 2.0**-32:  # rebase by an exact power of two (amortised: every 32 half-lives)
            k = math.floor(math.log2(self._scale))
            shift = 2.0**k
            heat = self._heat[: self._n]
            np.multiply(heat, np.float32(shift), out=heat)
            self._scale /= shift
            self.rebased_log2 += k
            if self._touched:  # the changes not yet taken, in the new units
                f32 = np.float32(shift)
                self._touched = [
                    Touched(t.pages, t.d1 * shift, t.d2 * (shift * shift), t.stored * f32, t.now)
                    for t in self._touched
                ]

    def _new_epoch(self) -> None:
        self.epoch += 1
        if self._touched is not None:
            self._touched = []  # deltas in the old units mean nothing now

    def track_touched(self) -> None:
        """From now on, record the stored-heat changes of each ingest (see ``take_touched``)."""
        if self._touched is None:
            self._touched = []

    def take_touched(self) -> list[Touched]:
        """What every ingest since the last call changed, in order."""
        if self._touched is None:
            return []
        out, self._touched = self._touched, []
        return out

    def ingest(self, batch: np.ndarray, now: int, *, unit: float | None = None) -> int:
        """Add a sample batch observed during cycle ``now``; returns the number of rows used.

        ``unit``: the weight of one observation, when the sampler knows it (a row may stand for
        several observations: DAMON's ``nr_accesses``); else the batch's smallest weight."""
        if batch.dtype != SAMPLE_DTYPE:
            raise InputError(f"sample batch has dtype {batch.dtype}, expected {SAMPLE_DTYPE}", "samples")
        if batch.shape[0] == 0:
            return 0
        page = batch["page"]
        ok = (page >= 0) & (page < self._n)
        n_bad = int(ok.size - np.count_nonzero(ok))
        if n_bad:
            self.dropped_samples += n_bad
            page = page[ok]
            weight = batch["weight"][ok]
        else:
            weight = batch["weight"]
        if unit is not None:
            self.unit = float(unit)
        elif weight.shape[0]:
            self.unit = float(weight.min())
        # one add per distinct page: sorted (a SIMD sort of the batch is several times cheaper than
        # np.add.at's unbuffered adds, and the sorted pages make the writes below cache-friendly)
        uniq, added = _per_page(page, weight)
        added *= 1.0 / self._scale
        heat = self._heat[: self._n]
        old = heat[uniq]
        new = old + added.astype(np.float32)
        heat[uniq] = new
        self.last_seen[uniq] = now
        if self._touched is not None:
            o, nw = old.astype(np.float64), new.astype(np.float64)
            self._touched.append(Touched(uniq, nw - o, nw * nw - o * o, new, now))
        self.ingested_samples += int(page.shape[0])
        return int(page.shape[0])

    def note_moved(self, pages: np.ndarray, now: int) -> None:
        self.last_moved[pages] = now

    def note_new(self, pages: np.ndarray, now: int) -> None:
        """Pages that became present since the last cycle; their samples start counting at ``now``."""
        if pages.shape[0]:
            self._young.append((now, np.asarray(pages, dtype=np.int64)))
            self._young_sorted = None

    def settle_young(self, now: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The young pages at ``now`` as (pages, birth cycle), sorted by page; None when there are
        none. After this, ``estimate(.., now)`` only reads (safe from several threads)."""
        # pages present for longer than the window are not young any more (their correction
        # would be < 1/16): drop them, so cycles that note no new pages do not keep them forever
        while self._young and now - self._young[0][0] > self._young_window:
            self._young.popleft()
            self._young_sorted = None
        if not self._young:
            return None
        if self._young_sorted is None:  # sorted once per change, not once per call
            pages = np.concatenate([p for _, p in self._young])
            born = np.concatenate([np.full(p.shape[0], t, np.int64) for t, p in self._young])
            order = np.argsort(pages, kind="stable")
            self._young_sorted = (pages[order], born[order])
        return self._young_sorted

    def estimate(
        self, idx: np.ndarray | slice, now: int, dtype: type = np.float64, *, stored: np.ndarray | None = None
    ) -> np.ndarray:
        """Heat of pages ``idx`` (indices, or a slice of pages) corrected for how long they have
        been present (float64, or ``dtype``); ``stored`` as for ``current``."""
        est = self.current(idx, dtype, stored=stored)
        young = self.settle_young(now)
        if young is None or est.shape[0] == 0:
            return est
        pages, born = young
        if isinstance(idx, slice):  # the young pages within the slice: two searches
            lo = 0 if idx.start is None else idx.start
            hi = self._n if idx.stop is None else idx.stop
            a, b = np.searchsorted(pages, [lo, hi])
            at = pages[a:b] - lo
            age = np.maximum(now - born[a:b], 0)
            est[at] /= 1.0 - self.decay_factor ** (age + 1)
            return est
        pos = np.searchsorted(pages, idx)
        pos_ok = np.minimum(pos, pages.shape[0] - 1)
        hit = pages[pos_ok] == idx
        if hit.any():
            age = np.maximum(now - born[pos_ok[hit]], 0)
            est[hit] /= 1.0 - self.decay_factor ** (age + 1)
        return est

    # ---- derived views ----------------------------------------------------------------------
    def bins(
        self,
        out: np.ndarray | None = None,
        *,
        start: int = 0,
        stop: int | None = None,
        hmax: float | None = None,
    ) -> np.ndarray:
        """Log-scale bin (uint8) of the heat of pages ``start:stop`` (see ``log_bins``), against
        ``hmax`` (default: the current maximum over all pages)."""
        stop = self._n if stop is None else stop
        if hmax is None:
            hmax = self._max()
        values = self._heat[start:stop]
        if self._scale != 1.0:
            values = values * np.float32(self._scale)
        return log_bins(values, hmax, out)

    def _max(self) -> float:
        return float(self._heat[: self._n].max()) * self._scale if self._n else 0.0

    def bin_floor(self, b: np.ndarray | int, *, hmax: float | None = None) -> np.ndarray:
        """Lower heat edge of bin(s) ``b`` (0 for bin 0), for bins computed against ``hmax``."""
        if hmax is None:
            hmax = self._max()
        return bin_floor(b, hmax)

    def region_heat(self, pages_per_region: int = 512) -> np.ndarray:
        """Summed heat per region of ``pages_per_region`` consecutive tracked pages (2 MiB at 4 KiB)."""
        if pages_per_region <= 0:
            raise InputError(f"pages_per_region must be > 0, got {pages_per_region}", "heat.region")
        n_regions = -(-self._n // pages_per_region)
        starts = np.arange(n_regions, dtype=np.int64) * pages_per_region
        if self._n == 0:
            return np.zeros(0, dtype=np.float64)
        return np.add.reduceat(self.heat, starts, dtype=np.float64)


def log_bins(values: np.ndarray, hmax: float, out: np.ndarray | None = None) -> np.ndarray:
    """Log-scale bin (uint8) of each value: 0 = no heat, 255 = within 1/8 octave of ``hmax``.

    Bin b >= 1 holds values in [hmax * 2**((b-256)/8), hmax * 2**((b-255)/8)).
    """
    if out is None:
        out = np.empty(values.shape[0], dtype=np.uint8)
    if hmax <= 0.0:
        out[...] = 0
        return out
    tmp = np.empty(values.shape[0], dtype=np.float32)
    with np.errstate(divide="ignore"):
        np.log2(values, out=tmp)
    tmp -= np.float32(np.log2(hmax))
    tmp *= np.float32(BINS_PER_OCTAVE)
    tmp += np.float32(N_BINS)  # the max lands at 256 (clipped to 255); heat 0 stays -inf
    np.floor(tmp, out=tmp)
    np.clip(tmp, 1, N_BINS - 1, out=tmp)  # far below the max but not zero: bin 1
    out[...] = tmp
    out[values <= 0] = 0
    return out


def bin_floor(b: np.ndarray | int, hmax: float) -> np.ndarray:
    """Lower edge of bin(s) ``b`` (0 for bin 0), for bins computed against ``hmax``."""
    b = np.asarray(b)
    edge = hmax * np.exp2((b.astype(np.float64) - N_BINS) / BINS_PER_OCTAVE)
    return np.where(b <= 0, 0.0, edge)


def _per_page(page: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct pages of a batch (sorted, int64) and the sum of their rows' weights (float64)."""
    page = page.astype(np.int64, copy=False)
    if page.shape[0] == 0:
        return page, np.zeros(0)
    w0 = float(weight[0])
    if bool((weight == w0).all()):  # one weight (the common case): a sort of the pages is enough
        s = np.sort(page)
        w = None
    else:
        order = np.argsort(page)
        s = page[order]
        w = weight[order].astype(np.float64)
    first = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    if w is None:
        added = np.diff(np.r_[first, s.shape[0]]).astype(np.float64) * w0
    else:
        added = np.add.reduceat(w, first)
    return s[first], added


def distinct(pages: np.ndarray) -> np.ndarray:
    """``pages`` sorted, without repeats (a SIMD sort: cheaper than np.unique, and the sorted
    indices make later gathers cache-friendly)."""
    if pages.shape[0] < 2:
        return pages
    s = np.sort(pages)
    return s[np.r_[True, s[1:] != s[:-1]]]


def _grow(arr: np.ndarray, cap: int, fill: int) -> np.ndarray:
    out = np.full(cap, fill, dtype=arr.dtype)
    out[: arr.shape[0]] = arr
    return out
