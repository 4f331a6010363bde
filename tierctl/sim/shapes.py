"""Workload shapes at three densities, and a random-shape generator.

Every shape is a rate vector per epoch (known exactly, ``Workload.rates``) with Poisson draws
around it, reproducible by seed.  ``density`` sets the mean accesses per live page per epoch:
sparse ~5, medium ~30, dense ~128 (at sample rate 0.01: 0.05, 0.3, 1.3 samples/page/epoch).
n = 64 Ki pages at scale 1, fast tier K = 25 % of the pages, page ids = first-touch order (rows
of an epoch are in page-id order).  Most shapes keep a small background over every page, so
that pages get touched (and allocated) early.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

import numpy as np

from tierctl.sim.rates import Piecewise, RateFn, Workload, density_value, draw_trace, zipf

PAGES = 65536


def _size(scale: float) -> tuple[int, int]:
    n = max(16, int(PAGES * scale))
    return n, n // 4


def _jitter(rng: np.random.Generator, n: int, sigma: float) -> np.ndarray:
    """Per-page weights with mean ~1, so pages of a uniform set still differ a little."""
    w = rng.lognormal(0.0, sigma, size=n)
    return w / w.mean()


def _share(weights: np.ndarray, total: float) -> np.ndarray:
    return weights * (total / weights.sum()) if weights.sum() > 0 else weights


def _finish(
    name: str,
    doc: str | None,
    rng: np.random.Generator,
    rates: RateFn,
    n: int,
    k: int,
    epochs: int,
    density: str,
    cgroup: np.ndarray | None = None,
    names: tuple[str, ...] | None = None,
) -> Workload:
    trace = draw_trace(rng, rates, n, epochs, cgroup=cgroup, cgroup_names=names)
    return Workload(name, " ".join((doc or "").split()), trace, k, rates=rates, density=density)


def sliding(seed: int = 0, scale: float = 1.0, epochs: int = 240, density: str = "medium") -> Workload:
    """A hot window of K/2 pages (85 % of the accesses) slides through the address space, 3 % of its
    size per epoch; the rest is a background over every page."""
    rng = np.random.default_rng([seed, 11])
    n, k = _size(scale)
    total = density_value(density) * n
    w = max(1, k // 2)
    step = max(1, (3 * w) // 100)
    start = int(rng.integers(n))
    bg = _share(_jitter(rng, n, 1.0), 0.15 * total)
    hot = _jitter(rng, n, 0.3)

    def rates(e: int) -> np.ndarray:
        idx = (start + e * step + np.arange(w)) % n
        r = bg.copy()
        r[idx] += _share(hot[idx], 0.85 * total)
        return r

    return _finish("sliding", sliding.__doc__, rng, rates, n, k, epochs, density)


def alternating(seed: int = 0, scale: float = 1.0, epochs: int = 240, density: str = "medium") -> Workload:
    """Two working sets of 0.8 K pages each (random pages, Zipf 0.8) take turns every 25 epochs with
    85 % of the accesses; the rest is a background over every page."""
    rng = np.random.default_rng([seed, 12])
    n, k = _size(scale)
    total = density_value(density) * n
    m = max(1, (8 * k) // 10)
    pages = rng.permutation(n)
    bg = _share(_jitter(rng, n, 1.0), 0.15 * total)
    vectors = []
    for s in (pages[:m], pages[m : 2 * m]):
        v = bg.copy()
        v[s] += zipf(s.shape[0], 0.8) * 0.85 * total
        vectors.append(v)
    rates = Piecewise.cycle(vectors, 25, epochs)
    return _finish("alternating", alternating.__doc__, rng, rates, n, k, epochs, density)


def grow_newest(seed: int = 0, scale: float = 1.0, epochs: int = 240, density: str = "medium") -> Workload:
    """Memory grows from n/8 pages to n, evenly over the run; a page's rate decays with its age (time
    constant 20 epochs), so the newest pages are the hottest."""
    rng = np.random.default_rng([seed, 13])
    n0, _ = _size(scale / 8)
    n_full, _ = _size(scale)
    per = max(1, (n_full - n0) // epochs)
    n = n0 + per * epochs
    k = n // 4
    d = density_value(density)
    base = _jitter(rng, n, 0.5)
    born = np.zeros(n)
    born[n0:] = 1 + np.arange(n - n0) // per

    def rates(e: int) -> np.ndarray:
        live = n0 + per * e
        r = np.zeros(n)
        r[:live] = _share(base[:live] * np.exp(-(e - born[:live]) / 20.0), d * live)
        return r

    return _finish("grow-newest", grow_newest.__doc__, rng, rates, n, k, epochs, density)


def burst(seed: int = 0, scale: float = 1.0, epochs: int = 240, density: str = "medium") -> Workload:
    """Three tenants: 'steady' (3/8 of the pages, Zipf 1.0), 'bursty' (1/4, Zipf 0.8: hot for 15
    epochs, then quiet for 25, repeatedly) and 'batch' (3/8, near-uniform low reuse)."""
    rng = np.random.default_rng([seed, 14])
    n, k = _size(scale)
    total = density_value(density) * n
    sizes = [3 * n // 8, n // 4]
    sizes.append(n - sum(sizes))
    cgroup = np.repeat(np.arange(3), sizes)
    shapes = [
        zipf(sizes[0], 1.0)[rng.permutation(sizes[0])],
        zipf(sizes[1], 0.8)[rng.permutation(sizes[1])],
        _share(_jitter(rng, sizes[2], 0.3), 1.0),
    ]

    def vector(shares: tuple[float, float, float]) -> np.ndarray:
        return np.concatenate([w * s * total for w, s in zip(shapes, shares, strict=True)])

    quiet, hot = vector((0.55, 0.05, 0.40)), vector((0.35, 0.45, 0.20))
    starts = sorted({*range(0, epochs, 40), *range(25, epochs, 40)})
    index = [0 if s % 40 == 0 else 1 for s in starts]
    rates = Piecewise(starts, index, [quiet, hot])
    return _finish(
        "burst", burst.__doc__, rng, rates, n, k, epochs, density, cgroup, ("steady", "bursty", "batch")
    )


def periodic_scan(seed: int = 0, scale: float = 1.0, epochs: int = 240, density: str = "medium") -> Workload:
    """A steady hot set of 0.8 K pages (Zipf 0.9, 90 % of the accesses) above cold data that is
    loaded first; every 40 epochs a scan reads all the cold data over 8 epochs."""
    rng = np.random.default_rng([seed, 15])
    n, k = _size(scale)
    d = density_value(density)
    total = d * n
    h = max(1, (8 * k) // 10)
    cold = n - h
    hot = np.zeros(n)
    hot[cold:] = zipf(h, 0.9)[rng.permutation(h)] * 0.9 * total
    base = hot.copy()
    base[:cold] = _share(_jitter(rng, cold, 1.0), 0.1 * total)
    load = hot.copy()
    load[:cold] = d  # the load phase reads every cold page once or so, filling DRAM with them
    per = max(1, -(-cold // 8))

    def rates(e: int) -> np.ndarray:
        if e == 0:
            return load
        phase = e % 40 - 20
        if not 0 <= phase < 8:
            return base
        r = base.copy()
        r[phase * per : min(cold, (phase + 1) * per)] += 2 * d
        return r

    return _finish("periodic-scan", periodic_scan.__doc__, rng, rates, n, k, epochs, density)


def jump(seed: int = 0, scale: float = 1.0, epochs: int = 240, density: str = "medium") -> Workload:
    """A Zipf(1.0) hot set of K pages (90 % of the accesses) that wholly relocates to other random
    pages every 40 epochs; the rest is a background over every page."""
    rng = np.random.default_rng([seed, 16])
    n, k = _size(scale)
    total = density_value(density) * n
    bg = _share(_jitter(rng, n, 1.0), 0.1 * total)
    pop = zipf(k, 1.0) * 0.9 * total
    vectors = []
    for _ in range(0, max(epochs, 1), 40):
        v = bg.copy()
        v[rng.choice(n, size=k, replace=False)] += pop
        vectors.append(v)
    rates = Piecewise(range(0, 40 * len(vectors), 40), range(len(vectors)), vectors)
    return _finish("jump", jump.__doc__, rng, rates, n, k, epochs, density)


def _regions(
    rng: np.random.Generator, n: int, k: int, total: float, blocks: np.ndarray, size: int
) -> list[np.ndarray]:
    bg = _share(_jitter(rng, n, 1.0), 0.2 * total)
    hot = _jitter(rng, n, 0.3)
    out = []
    for b in blocks:
        v = bg.copy()
        sl = slice(int(b) * size, (int(b) + 1) * size)
        v[sl] += _share(hot[sl], 0.8 * total)
        out.append(v)
    return out


def fast_phase(seed: int = 0, scale: float = 1.0, epochs: int = 240, density: str = "medium") -> Workload:
    """Regions of K/2 pages become hot one after another through the address space, 5 epochs each
    (80 % of the accesses): faster than a 10 %-of-K migration limit can follow."""
    rng = np.random.default_rng([seed, 17])
    n, k = _size(scale)
    size = max(1, k // 2)
    first = int(rng.integers(n // size))
    blocks = (first + np.arange(n // size)) % (n // size)
    vectors = _regions(rng, n, k, density_value(density) * n, blocks, size)
    rates = Piecewise.cycle(vectors, 5, epochs)
    return _finish("fast-phase", fast_phase.__doc__, rng, rates, n, k, epochs, density)


def fast_cycle(seed: int = 0, scale: float = 1.0, epochs: int = 240, density: str = "medium") -> Workload:
    """Like fast-phase, but the hot region cycles among 4 fixed regions of K/2 pages (2 K in all),
    5 epochs each."""
    rng = np.random.default_rng([seed, 18])
    n, k = _size(scale)
    size = max(1, k // 2)
    blocks = rng.choice(n // size, size=min(4, n // size), replace=False)
    vectors = _regions(rng, n, k, density_value(density) * n, blocks, size)
    rates = Piecewise.cycle(vectors, 5, epochs)
    return _finish("fast-cycle", fast_cycle.__doc__, rng, rates, n, k, epochs, density)


SHAPES: Mapping[str, Callable[..., Workload]] = MappingProxyType(
    {
        "sliding": sliding,
        "alternating": alternating,
        "grow-newest": grow_newest,
        "burst": burst,
        "periodic-scan": periodic_scan,
        "jump": jump,
        "fast-phase": fast_phase,
        "fast-cycle": fast_cycle,
    }
)


# ---- random shapes ----------------------------------------------------------------------------
Part = Callable[[int], np.ndarray]  # epoch -> rates over the part's own segment, summing to 1 or 0


def _part(rng: np.random.Generator, kind: str, m: int, epochs: int) -> tuple[Part, np.ndarray]:
    """One primitive over a segment of m pages: its rate shape per epoch and each page's birth epoch."""
    born = np.zeros(m)
    jit = _jitter(rng, m, float(rng.uniform(0.1, 1.0)))
    if kind == "zipf":
        size = max(1, int(m * rng.uniform(0.2, 1.0)))
        v = np.zeros(m)
        v[rng.permutation(m)[:size]] = zipf(size, float(rng.uniform(0.6, 1.3)))
        return (lambda e: v), born
    if kind == "sliding":
        w = max(1, int(m * rng.uniform(0.1, 0.5)))
        step = max(1, int(w * rng.uniform(0.01, 0.08)))
        s0 = int(rng.integers(m))

        def slide(e: int) -> np.ndarray:
            v = np.zeros(m)
            idx = (s0 + e * step + np.arange(w)) % m
            v[idx] = _share(jit[idx], 1.0)
            return v

        return slide, born
    if kind == "phases":
        c = int(rng.integers(2, 6))
        length = int(rng.integers(3, 41))
        group = rng.integers(c, size=m)
        vecs = [_share(jit * (group == g), 1.0) for g in range(c)]
        return (lambda e: vecs[(e // length) % c]), born
    if kind == "growth":
        start = max(1, int(m * rng.uniform(0.05, 0.3)))
        born[start:] = 1 + np.arange(m - start) * max(1, epochs - 1) // max(1, m - start)
        tau = float(rng.uniform(5, 50))

        def grow(e: int) -> np.ndarray:
            v = np.where(born <= e, jit * np.exp(-np.maximum(e - born, 0) / tau), 0.0)
            return _share(v, 1.0)

        return grow, born
    # burst: Zipf 0.8, on for `on` epochs, then at 5 % for `off` epochs, from a random offset
    on, off = int(rng.integers(3, 31)), int(rng.integers(3, 31))
    offset = int(rng.integers(on + off))
    v = zipf(m, 0.8)[rng.permutation(m)]
    return (lambda e: v if (e + offset) % (on + off) < on else 0.05 * v), born


PRIMITIVES = ("zipf", "sliding", "phases", "growth", "burst")


def random_workload(
    seed: int = 0, density: str = "medium", *, scale: float = 1.0, epochs: int = 240
) -> Workload:
    """A random composition of 1-4 primitives (Zipf over a random subset, sliding window, phase
    cycle, growth, bursts) over disjoint segments with random sizes, weights and parameters, a
    background over every live page, a random-permutation or address-ordered layout, 1-3 cgroups."""
    rng = np.random.default_rng([seed, 99])
    n, k = _size(scale)
    d = density_value(density)
    n_parts = int(rng.integers(1, 5))
    kinds = [str(x) for x in rng.choice(PRIMITIVES, size=n_parts)]
    cuts = np.sort(rng.choice(np.arange(1, n), size=n_parts - 1, replace=False)) if n_parts > 1 else []
    bounds = np.r_[0, cuts, n].astype(np.int64)
    parts, born_l = [], np.zeros(n)
    for i, kind in enumerate(kinds):
        fn, born = _part(rng, kind, int(bounds[i + 1] - bounds[i]), epochs)
        parts.append(fn)
        born_l[bounds[i] : bounds[i + 1]] = born
    weights = rng.dirichlet(np.ones(n_parts)) * 0.9
    bg = _jitter(rng, n, 1.0)
    layout = rng.permutation(n) if rng.random() < 0.5 else np.arange(n)  # logical -> page id
    n_cg = int(rng.integers(1, 4))
    part_cg = rng.integers(n_cg, size=n_parts)
    part_cg[: min(n_cg, n_parts)] = np.arange(min(n_cg, n_parts))
    cgroup = None
    names = None
    if n_cg > 1 and n_parts > 1:
        cgroup = np.empty(n, np.int64)
        cgroup[layout] = np.repeat(part_cg, np.diff(bounds))
        names = tuple(f"cg{i}" for i in range(int(cgroup.max()) + 1))

    def rates(e: int) -> np.ndarray:
        live = born_l <= e
        total = d * int(live.sum())
        logical = _share(bg * live, 0.1 * total)
        for i, fn in enumerate(parts):
            logical[bounds[i] : bounds[i + 1]] += fn(e) * weights[i] * total
        out = np.empty(n)
        out[layout] = _share(logical, total)  # quiet bursts etc. leave the others more, not less
        return out

    desc = f"random shape: {' + '.join(kinds)}, {n_cg} cgroup(s)"
    wl = _finish(f"random-{seed}", desc, rng, rates, n, k, epochs, density, cgroup, names)
    return wl
