"""What a built-in workload is: a trace plus the true access-rate vector behind each epoch.

A workload's counts are Poisson draws around a rate vector per epoch.  The rates are kept so
that the causal ceiling (tierctl/sim/ceiling.py) can place pages by what really happened rather
than by Poisson luck.  Many shapes are piecewise constant, so ``Piecewise`` stores only the change
points (and each distinct vector once); shapes whose rates move every epoch give a function of the
epoch instead.  Either way ``workload.rates(e)`` is the float64 rate vector of epoch ``e``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from tierctl.core.policy import Quota
from tierctl.errors import InputError
from tierctl.sim.trace import Trace, from_epochs

RateFn = Callable[[int], np.ndarray]

# mean accesses per (live) page per epoch; at sample rate 0.01: 0.05, 0.3, 1.28 samples/page/epoch
DENSITIES: Mapping[str, float] = MappingProxyType({"sparse": 5.0, "medium": 30.0, "dense": 128.0})


def density_value(density: str) -> float:
    if density not in DENSITIES:
        raise InputError(f"unknown density {density!r}; choose from {', '.join(DENSITIES)}", "--density")
    return DENSITIES[density]


@dataclass(frozen=True)
class Workload:
    name: str
    description: str
    trace: Trace
    fast_pages: int
    quotas: Mapping[int, Quota] = field(default_factory=dict)
    rates: RateFn | None = None  # true rate vector of epoch e (float64[n_pages]); None = unknown
    density: str | None = None  # sparse / medium / dense for the shapes; None = the workload's own


class Piecewise:
    """Piecewise-constant rates: ``vectors[index[i]]`` holds from epoch ``starts[i]`` on."""

    def __init__(self, starts: Sequence[int], index: Sequence[int], vectors: Sequence[np.ndarray]) -> None:
        self.starts = np.asarray(starts, dtype=np.int64)
        self.index = np.asarray(index, dtype=np.int64)
        self.vectors = [np.asarray(v, dtype=np.float64) for v in vectors]
        if self.starts.shape != self.index.shape or not self.starts.size or self.starts[0] != 0:
            raise ValueError("starts must begin at 0 and match index")
        if (np.diff(self.starts) <= 0).any():
            raise ValueError("starts must be increasing")

    def __call__(self, e: int) -> np.ndarray:
        i = int(np.searchsorted(self.starts, e, side="right")) - 1
        return self.vectors[int(self.index[i])]

    @staticmethod
    def cycle(
        vectors: Sequence[np.ndarray], phase: int, epochs: int, order: Sequence[int] | None = None
    ) -> Piecewise:
        """``vectors`` take turns (in ``order``, default 0, 1, ...) for ``phase`` epochs each."""
        order = list(range(len(vectors))) if order is None else list(order)
        starts = np.arange(0, max(epochs, 1), phase)
        index = np.asarray(order)[np.arange(starts.shape[0]) % len(order)]
        return Piecewise(starts, index, vectors)


def draw_trace(
    rng: np.random.Generator,
    rates: RateFn,
    n_pages: int,
    epochs: int,
    *,
    cgroup: np.ndarray | None = None,
    cgroup_names: tuple[str, ...] | None = None,
) -> Trace:
    """Poisson draws around ``rates(e)`` for every epoch; rows in page-id (first-touch) order."""
    rows = []
    for e in range(epochs):
        counts = rng.poisson(rates(e))
        page = np.flatnonzero(counts)
        rows.append((page, counts[page]))
    return from_epochs(rows, n_pages=n_pages, cgroup=cgroup, cgroup_names=cgroup_names)


def zipf(n: int, s: float) -> np.ndarray:
    """Zipf(s) popularity over n ranks, summing to 1."""
    w = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** s
    return w / w.sum()
