"""Block-wise passes over the tracked pages, and the census arithmetic of the default policy.

Whole-array temporaries at 16 M pages would cost more memory than the per-page
state itself, so every pass over a page range walks blocks of ``BLOCK`` pages:
the working set per pass is a few MiB whatever the page count.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from tierctl.core.heat import N_BINS, NEVER, HeatModel
from tierctl.core.running_census import BIN_MASK, SLOW_BIT, Census, RunningCensus

BLOCK = 1 << 18
FAST, SLOW = 0, 1


T = TypeVar("T")
MAX_WORKERS = 4  # default threads for block passes (numpy releases the GIL inside each block's work)


def blocks(n: int, size: int = BLOCK, start: int = 0) -> Iterator[tuple[int, int]]:
    for lo in range(start, n, size):
        yield lo, min(n, lo + size)


def default_workers(cpus: int | None) -> int:
    """Threads for the block passes on a machine with ``cpus`` CPUs (None: unknown): up to
    ``MAX_WORKERS``, one per CPU. The caller counts them (``os.cpu_count()``); the core never asks."""
    return max(1, min(MAX_WORKERS, cpus or 1))


def map_blocks(
    fn: Callable[[int, int], T],
    n: int,
    size: int | None = None,
    workers: int | None = None,
    *,
    start: int = 0,
) -> list[T]:
    """``fn(lo, hi)`` for every block of ``start..n``, on up to ``workers`` threads (None: this thread
    only; callers size it with ``default_workers``) when there are several blocks; results in block
    order. ``fn`` may write only its own block's slice of shared arrays."""
    spans = list(blocks(n, size or BLOCK, start))
    workers = min(workers or 1, len(spans))
    if workers <= 1:
        return [fn(lo, hi) for lo, hi in spans]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tierctl-block") as pool:
        return list(pool.map(lambda span: fn(*span), spans))


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


@dataclass(frozen=True)
class Evaluated:
    """Pages just re-evaluated: a page range or indices, their estimates and census codes."""

    where: slice | np.ndarray
    est: np.ndarray | None  # posterior heat (float32); None: not kept
    codes: np.ndarray  # uint16 census codes (tier and bin)
    cgroup: np.ndarray  # their cgroups

    def pages(self, sel: np.ndarray) -> np.ndarray:
        """Page indices of positions ``sel``."""
        if isinstance(self.where, slice):
            return sel + self.where.start
        return self.where[sel]


@dataclass(frozen=True)
class Candidates:
    """Pages to consider moving, with their estimates."""

    pages: np.ndarray
    est: np.ndarray

    @staticmethod
    def join(parts: list[Candidates]) -> Candidates:
        if not parts:
            return Candidates(np.zeros(0, dtype=np.int64), np.zeros(0))
        return Candidates(np.concatenate([p.pages for p in parts]), np.concatenate([p.est for p in parts]))


def pick_candidates(
    census: RunningCensus,
    ev: Evaluated,
    heat: HeatModel,
    tbin: np.ndarray,
    cuts: tuple[int, int],
    settled_before: int,
    rate: Callable[[np.ndarray], np.ndarray],
) -> tuple[Candidates, Candidates]:
    """Among pages just evaluated, the settled ones to consider: heated slow pages with relative
    bin (bin - its cgroup's threshold bin) >= cuts[0] (promotion) and fast pages with relative bin
    <= cuts[1] (demotion). ``rate`` estimates pages whose estimates were not kept."""
    b = census.window_of(ev.codes)
    rel = b - np.minimum(tbin, N_BINS)[ev.cgroup]
    slow = (ev.codes & SLOW_BIT) != 0
    p = np.flatnonzero(slow & (b > 0) & (rel >= cuts[0]))  # heated present slow pages
    v = np.flatnonzero(~slow & ((ev.codes & BIN_MASK) > 0) & (rel <= cuts[1]))  # present fast pages
    out = []
    for sel in (p, v):
        pages = ev.pages(sel)
        moved = heat.last_moved[pages]
        settled = (moved <= settled_before) | (moved == NEVER)
        pages, sel = pages[settled], sel[settled]
        out.append(Candidates(pages, rate(pages).astype(np.float32) if ev.est is None else ev.est[sel]))
    return out[0], out[1]


def fast_pages_in(spans: list[tuple[int, int]], node: np.ndarray, fast_lut: np.ndarray) -> np.ndarray:
    """Indices of the fast-tier pages within page ``spans``."""
    out = [np.flatnonzero(fast_lut[node[lo:hi] + 1]) + lo for a, b in spans for lo, hi in blocks(b, start=a)]
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)
