"""Built-in workloads: synthetic traces with a known shape, reproducible by seed.

Each epoch's counts are Poisson draws around an access-rate vector, so a
workload is fully described by how that vector evolves.  Rows within an epoch
are in page-id order, which is also first-touch order.

Intensity: ``ACCESSES`` memory accesses per epoch for 64 Ki pages (256 MiB), i.e.
~128 per page per epoch on average — about 512 MB/s of cache-line traffic for a
1 s epoch, a light memory-bound load.  With fewer accesses the per-epoch oracle
mostly rewards Poisson luck rather than placement.

These four are the original workloads (dense only); the shapes at three densities and the
random-shape generator are in tierctl/sim/shapes.py.  Every workload carries its true rate
vector per epoch (``Workload.rates``) for the causal ceiling.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

import numpy as np

from tierctl.core.policy import quota_from
from tierctl.errors import InputError
from tierctl.registry import pick
from tierctl.sim.rates import DENSITIES, Piecewise, Workload
from tierctl.sim.shapes import SHAPES
from tierctl.sim.trace import from_epochs

__all__ = ["ALL_WORKLOADS", "DENSITIES", "SHAPES", "WORKLOADS", "Workload", "make_workload"]

ACCESSES = 8_000_000


class _Changes:
    """Collects a rate vector per epoch, keeping only the change points (piecewise constant)."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.vectors: list[np.ndarray] = []

    def add(self, e: int, rate: np.ndarray) -> None:
        if not self.vectors or not np.array_equal(rate, self.vectors[-1]):
            self.starts.append(e)
            self.vectors.append(rate.copy())

    def rates(self) -> Piecewise:
        return Piecewise(self.starts, range(len(self.vectors)), self.vectors)


def _zipf(n: int, s: float) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** s
    return w / w.sum()


def _draw(rng: np.random.Generator, rate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    counts = rng.poisson(rate)
    page = np.flatnonzero(counts)
    return page, counts[page]


def zipf_shift(seed: int = 0, scale: float = 1.0, epochs: int = 240) -> Workload:
    """Zipf(1.0) popularity over 64 Ki pages; every 40 epochs a quarter of the hot set moves elsewhere."""
    rng = np.random.default_rng([seed, 1])
    n = int(65536 * scale)
    k = n // 4
    accesses = ACCESSES * scale
    rank_to_page = rng.permutation(n)
    pop = _zipf(n, 1.0) * accesses
    rows = []
    changes = _Changes()
    for e in range(epochs):
        if e and e % 40 == 0:
            hot = rng.choice(k, size=k // 4, replace=False)
            cold = rng.choice(np.arange(k, n), size=k // 4, replace=False)
            rank_to_page[hot], rank_to_page[cold] = rank_to_page[cold].copy(), rank_to_page[hot].copy()
        rate = np.empty(n)
        rate[rank_to_page] = pop
        changes.add(e, rate)
        rows.append(_draw(rng, rate))
    trace = from_epochs(rows, n_pages=n)
    return Workload("zipf-shift", zipf_shift.__doc__ or "", trace, k, rates=changes.rates())


def multi_cgroup(seed: int = 0, scale: float = 1.0, epochs: int = 240) -> Workload:
    """Three cgroups: a streaming batch job that allocates first (low reuse over 32 Ki pages, max
    15 % of DRAM), a latency-critical cache (Zipf 1.1 over 8 Ki pages, min 30 % of DRAM) and a
    database (Zipf 0.9 over 24 Ki pages) whose hot set moves at half time."""
    rng = np.random.default_rng([seed, 2])
    names = ("batch", "cache", "db")
    sizes = [int(32768 * scale), int(8192 * scale), int(24576 * scale)]
    n = sum(sizes)
    k = n // 4
    starts = np.cumsum([0, *sizes])
    cgroup = np.repeat(np.arange(3), sizes)
    perms = [rng.permutation(sz) for sz in sizes]
    pops = [
        np.full(sizes[0], ACCESSES * 0.15 * scale / sizes[0]),
        _zipf(sizes[1], 1.1) * ACCESSES * 0.35 * scale,
        _zipf(sizes[2], 0.9) * ACCESSES * 0.5 * scale,
    ]
    rows = []
    changes = _Changes()
    for e in range(epochs):
        if e == epochs // 2:
            perms[2] = rng.permutation(sizes[2])
        rate = np.empty(n)
        for i in range(3):
            seg = np.empty(sizes[i])
            seg[perms[i]] = pops[i]
            rate[starts[i] : starts[i + 1]] = seg
        changes.add(e, rate)
        rows.append(_draw(rng, rate))
    trace = from_epochs(rows, n_pages=n, cgroup=cgroup, cgroup_names=names)
    quotas = {
        0: quota_from(max="15%", page_size=trace.page_size, fast_capacity=k, where="batch"),
        1: quota_from(min="30%", page_size=trace.page_size, fast_capacity=k, where="cache"),
    }
    return Workload("multi-cgroup", multi_cgroup.__doc__ or "", trace, k, quotas, rates=changes.rates())


def scan(seed: int = 0, scale: float = 1.0, epochs: int = 240) -> Workload:
    """A load phase reads 48 Ki cold pages first (filling DRAM with them), then a steady Zipf hot
    set of 15 Ki pages (DRAM holds 16 Ki) runs beside a sequential scan over the cold pages
    (8 Ki pages an epoch, 4 touches each), repeating."""
    rng = np.random.default_rng([seed, 3])
    hot_n, cold_n = int(15360 * scale), int(49152 * scale)
    n = hot_n + cold_n
    k = int(16384 * scale)
    per_epoch = int(8192 * scale)
    # the cold table sits below the hot heap in the address space, so the load touches it first
    cold_pages, hot_pages = np.arange(cold_n), cold_n + np.arange(hot_n)
    hot_rate = _zipf(hot_n, 1.0)[rng.permutation(hot_n)] * ACCESSES * scale

    def rates(e: int) -> np.ndarray:
        rate = np.zeros(n)
        rate[hot_pages] = hot_rate
        if e == 0:
            rate[cold_pages] = 1.0
        else:
            lo = (e * per_epoch) % cold_n
            rate[cold_pages[lo : lo + per_epoch]] = 4.0
        return rate

    rows = []
    for e in range(epochs):
        page, count = _draw(rng, rates(e))
        if e == 0:  # the load really reads every cold page
            missing = np.setdiff1d(cold_pages, page)
            page = np.concatenate([page, missing])
            count = np.concatenate([count, np.ones(missing.shape[0], np.int64)])
            order = np.argsort(page)
            page, count = page[order], count[order]
        rows.append((page, count))
    trace = from_epochs(rows, n_pages=n)
    return Workload("scan", scan.__doc__ or "", trace, k, rates=rates)


def grow(seed: int = 0, scale: float = 1.0, epochs: int = 240) -> Workload:
    """A growing heap: 8 Ki pages at start, 512 new pages an epoch; a page's access rate decays with
    its age (time constant 20 epochs), so the newest pages are the hottest."""
    rng = np.random.default_rng([seed, 4])
    start, per_epoch = int(8192 * scale), int(512 * scale)
    n = start + per_epoch * epochs
    k = min(int(16384 * scale), n // 2)  # a short run has fewer pages: the fast tier holds half at most
    base = rng.lognormal(0.0, 0.5, size=n)
    born = np.zeros(n)
    born[start:] = 1 + np.arange(n - start) // per_epoch

    def rates(e: int) -> np.ndarray:
        live = start + per_epoch * e
        age = e - born[:live]
        rate = base[:live] * np.exp(-age / 20.0)
        rate *= ACCESSES * scale / rate.sum()
        r = np.zeros(n)
        r[:live] = rate
        return r

    rows = [_draw(rng, rates(e)) for e in range(epochs)]
    trace = from_epochs(rows, n_pages=n)
    return Workload("grow", grow.__doc__ or "", trace, k, rates=rates)


# the original four workloads, at their own (dense) intensity; `tierctl sim --compare` runs these
WORKLOADS: Mapping[str, Callable[..., Workload]] = MappingProxyType(
    {"zipf-shift": zipf_shift, "multi-cgroup": multi_cgroup, "scan": scan, "grow": grow}
)
# every name `--workload` accepts: the four above and the shapes (which take a density)
ALL_WORKLOADS: Mapping[str, Callable[..., Workload]] = MappingProxyType({**WORKLOADS, **SHAPES})


def make_workload(
    name: str, *, seed: int = 0, scale: float = 1.0, epochs: int = 240, density: str | None = None
) -> Workload:
    """A built-in workload by name; ``density`` (sparse, medium, dense; default medium) is for the shapes."""
    builder = pick(ALL_WORKLOADS, name, kind="workload", where="--workload")
    if scale <= 0 or epochs <= 0:
        raise InputError("scale and epochs must be > 0", "--workload")
    if name in WORKLOADS:
        if density is not None:
            raise InputError(
                f"workload {name!r} has a fixed (dense) intensity; --density goes with the shapes: "
                f"{', '.join(SHAPES)}",
                "--density",
            )
        return builder(seed=seed, scale=scale, epochs=epochs)
    if density is not None and density not in DENSITIES:
        raise InputError(f"unknown density {density!r}; choose from {', '.join(DENSITIES)}", "--density")
    return builder(seed=seed, scale=scale, epochs=epochs, density=density or "medium")
