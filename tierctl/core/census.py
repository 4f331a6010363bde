"""Block-wise passes over the tracked pages for the default policy.

Whole-array temporaries at 16 M pages would cost more memory than the per-page
state itself, so every full pass walks blocks of ``BLOCK`` pages: the working
set per pass is a few MiB whatever the page count, and only a uint8 bin per page
lives across passes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from tierctl.core.heat import N_BINS, NEVER, HeatModel, log_bins

BLOCK = 1 << 18
FAST, SLOW = 0, 1


T = TypeVar("T")
MAX_WORKERS = 4  # default threads for block passes (numpy releases the GIL inside each block's work)


def blocks(n: int, size: int = BLOCK) -> Iterator[tuple[int, int]]:
    for lo in range(0, n, size):
        yield lo, min(n, lo + size)


def default_workers() -> int:
    return min(MAX_WORKERS, os.cpu_count() or 1)


def map_blocks(
    fn: Callable[[int, int], T], n: int, size: int | None = None, workers: int | None = None
) -> list[T]:
    """``fn(lo, hi)`` for every block, on up to ``workers`` threads (default: ``default_workers()``)
    when there are several blocks; results in block order. ``fn`` may write only its own block's
    slice of shared arrays."""
    spans = list(blocks(n, size or BLOCK))
    workers = min(workers or default_workers(), len(spans))
    if workers <= 1:
        return [fn(lo, hi) for lo, hi in spans]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tierctl-block") as pool:
        return list(pool.map(lambda span: fn(*span), spans))


@dataclass(frozen=True)
class Census:
    """Present pages counted per (cgroup, tier, heat bin), and every page's bin."""

    hist: np.ndarray  # int64 [n_cg, 2, N_BINS]; tier 0 = fast, 1 = slow
    bins: np.ndarray  # uint8 per tracked page
    hmax: float

    @property
    def fast_per_cgroup(self) -> np.ndarray:
        return self.hist[:, FAST, :].sum(axis=1)

    @property
    def present(self) -> int:
        return int(self.hist.sum())


def take_census(
    values: np.ndarray,
    node: np.ndarray,
    cgroup: np.ndarray,
    n_cg: int,
    fast_lut: np.ndarray,
    *,
    workers: int | None = None,
) -> Census:
    """Count present pages per (cgroup, tier, log bin of ``values``): a page's heat or estimate."""
    n = node.shape[0]
    hmax = float(values.max()) if n else 0.0
    bins = np.empty(n, dtype=np.uint8)
    size = n_cg * 2 * N_BINS
    hist = np.zeros(size + 1, dtype=np.int64)

    def count(lo: int, hi: int) -> np.ndarray:
        nd = node[lo:hi]
        b = log_bins(values[lo:hi], hmax, bins[lo:hi])
        key = cgroup[lo:hi].astype(np.int32)
        key *= 2
        key += ~fast_lut[nd + 1]  # tier: 0 fast, 1 slow
        key *= N_BINS
        key += b
        key[nd < 0] = size  # not present: counted nowhere
        return np.bincount(key, minlength=size + 1)

    for part in map_blocks(count, n, workers=workers):
        hist += part
    return Census(hist[:size].reshape(n_cg, 2, N_BINS), bins, hmax)


def quota_bins(census: Census, target: int, mins: np.ndarray, maxs: np.ndarray) -> tuple[np.ndarray, int]:
    """Threshold bin per cgroup so that the pages at or above it fit ``target`` under the quotas.

    Returns (bin per cgroup, global bin); bin N_BINS means "none of this cgroup".
    """
    hist = census.hist.sum(axis=1)  # both tiers
    n_cg = hist.shape[0]
    at_least = np.zeros((n_cg, N_BINS + 1), dtype=np.int64)  # at_least[c, b]: pages of c with bin >= b
    at_least[:, :N_BINS] = np.cumsum(hist[:, ::-1], axis=1)[:, ::-1]
    mins = np.minimum(mins, at_least[:, 0])
    total = np.clip(at_least, mins[:, None], maxs[:, None]).sum(axis=0)
    fits = np.flatnonzero(total <= target)
    global_bin = int(fits[0]) if fits.size else N_BINS
    if global_bin == N_BINS and total[0] > 0:
        # even the hottest bin holds more pages than fit: it straddles the threshold, and the
        # swap rules choose within it and against colder fast pages
        global_bin = int(np.flatnonzero(hist.sum(axis=0))[-1])
    tbin = np.full(n_cg, global_bin, dtype=np.int64)
    col = at_least[:, global_bin]
    over = col > maxs
    tbin[over] = np.argmax(at_least <= maxs[:, None], axis=1)[over]
    under = col < mins
    tbin[under] = (at_least >= mins[:, None]).sum(axis=1)[under] - 1
    return tbin, global_bin


def relative_cuts(census: Census, tbin: np.ndarray, k_promote: int, k_victim: int) -> tuple[int, int]:
    """Cuts on the relative bin (page bin - its cgroup's threshold bin) that leave at least
    ``k_promote`` heated slow pages at or above, and ``k_victim`` fast pages at or below."""
    slow = np.zeros(2 * N_BINS + 1, dtype=np.int64)
    fast = np.zeros(2 * N_BINS + 1, dtype=np.int64)
    for c in range(census.hist.shape[0]):
        off = N_BINS - int(min(tbin[c], N_BINS))
        slow[off + 1 : off + N_BINS] += census.hist[c, SLOW, 1:]
        fast[off : off + N_BINS] += census.hist[c, FAST, :]
    reach = np.flatnonzero(np.cumsum(slow[::-1]) >= k_promote)
    cut_p = (N_BINS - int(reach[0])) if reach.size else -N_BINS
    reach = np.flatnonzero(np.cumsum(fast) >= k_victim)
    cut_v = (int(reach[0]) - N_BINS) if reach.size else N_BINS
    return cut_p, cut_v


def candidates(
    census: Census,
    heat: HeatModel,
    node: np.ndarray,
    cgroup: np.ndarray,
    fast_lut: np.ndarray,
    tbin: np.ndarray,
    cut_p: int,
    cut_v: int,
    settled_before: int,
    *,
    workers: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Settled pages to consider: heated slow pages with relative bin >= cut_p (promotion) and fast
    pages with relative bin <= cut_v (demotion)."""
    tb16 = np.minimum(tbin, N_BINS).astype(np.int16)

    def pick(lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        b = census.bins[lo:hi]
        rel = b.astype(np.int16)
        rel -= tb16[cgroup[lo:hi]]
        nd = node[lo:hi]
        fast = fast_lut[nd + 1]
        moved = heat.last_moved[lo:hi]
        settled = (moved <= settled_before) | (moved == NEVER)
        p = settled & ~fast & (nd >= 0) & (b > 0) & (rel >= cut_p)
        v = settled & fast & (rel <= cut_v)
        return np.flatnonzero(p) + lo, np.flatnonzero(v) + lo

    parts = map_blocks(pick, node.shape[0], workers=workers)
    prom = [p for p, _ in parts]
    vict = [v for _, v in parts]
    empty = np.zeros(0, dtype=np.int64)
    return (np.concatenate(prom) if prom else empty), (np.concatenate(vict) if vict else empty)


def fast_pages_of(node: np.ndarray, cgroup: np.ndarray, fast_lut: np.ndarray, c: int) -> np.ndarray:
    """Indices of cgroup ``c``'s pages in the fast tier."""
    out = [
        np.flatnonzero(fast_lut[node[lo:hi] + 1] & (cgroup[lo:hi] == c)) + lo
        for lo, hi in blocks(node.shape[0])
    ]
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)
