"""The causal ceiling: the best a policy could do if it knew the true rates of every served epoch.

Before serving epoch e > 0, the ceiling looks at the rates of epoch e-1 (the true rate vector of a
built-in workload, or for a trace file the counts of e-1) and, within the migration limit
(promotions + demotions per epoch, as for the policy under test):

1. fills free fast-tier room with the highest-rate slow pages (rate > 0; one move each);
2. swaps the highest-rate slow page for the lowest-rate fast page while the slow one's rate is
   higher (two moves per swap).

First touches are allocated by the machine (fast while it has room, in row order) and hits are
counted exactly as in ``runner.simulate``.  Epoch e's rates are never read before epoch e is served.
Quotas are not applied: the ceiling is the unconstrained reference.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from tierctl.core.mover import Outcome
from tierctl.core.plan import DEMOTE, PROMOTE, Plan
from tierctl.errors import InputError
from tierctl.sim.machine import FAST, SLOW, MachineSpec, SimMachine
from tierctl.sim.rates import RateFn
from tierctl.sim.trace import Trace, check_observed, validate_trace

CeilingFrom = Literal["rates", "counts"]


@dataclass(frozen=True)
class Ceiling:
    hits: int
    accesses: int
    hit_ratio: float
    promoted: int
    demoted: int
    source: CeilingFrom  # "rates": true rate vectors; "counts": the previous epoch's counts
    residency: np.ndarray | None = None  # packbits rows of the fast tier per epoch, when asked for


def _top(values: np.ndarray, m: int, largest: bool) -> np.ndarray:
    """Positions of the m largest (or smallest) values, best first (ties: lower position first)."""
    n = values.shape[0]
    m = min(m, n)
    if m <= 0:
        return np.zeros(0, np.int64)
    key = -values if largest else values
    part = np.argpartition(key, m - 1)[:m] if m < n else np.arange(n)
    return part[np.lexsort((part, key[part]))]


def plan_epoch(node: np.ndarray, rate: np.ndarray, fast_pages: int, limit: int) -> Plan:
    """The ceiling's moves for one epoch given the rates it may use and the current placement."""
    fast = np.flatnonzero(node == FAST)
    slow = np.flatnonzero(node == SLOW)
    slow = slow[rate[slow] > 0]
    room = max(0, fast_pages - fast.shape[0])
    cand = slow[_top(rate[slow], limit, largest=True)]  # never more than `limit` promotions
    n_fill = min(room, cand.shape[0], limit)
    fill, rest = cand[:n_fill], cand[n_fill:]
    n_swap_max = min((limit - n_fill) // 2, rest.shape[0], fast.shape[0])
    low = fast[_top(rate[fast], n_swap_max, largest=False)]
    rest = rest[:n_swap_max]
    better = rate[rest] > rate[low]  # slow descending, fast ascending: a prefix is True
    n_swap = int(np.argmin(better)) if not better.all() else int(better.shape[0])
    return Plan.build(np.concatenate([fill, rest[:n_swap]]), FAST, low[:n_swap], SLOW)


def causal_ceiling(
    trace: Trace,
    fast_pages: int,
    limit: int,
    rates: RateFn | None = None,
    *,
    page_size: int | None = None,
    keep_residency: bool = False,
) -> Ceiling:
    """Run the ceiling over ``trace``; ``rates(e)`` = true rates of epoch e (None: use counts)."""
    if limit < 0:
        raise InputError(f"must be >= 0, got {limit}", "--migrate-limit")
    spec = MachineSpec(fast_pages, page_size or trace.page_size)
    machine = SimMachine(spec, trace.n_pages)
    hits = total = promoted = demoted = 0
    prev = np.zeros(trace.n_pages)
    residency = np.zeros((trace.n_epochs, (trace.n_pages + 7) // 8), np.uint8) if keep_residency else None
    for e in range(trace.n_epochs):
        if e > 0 and limit > 0:
            if rates is not None:
                rate = np.asarray(rates(e - 1), dtype=np.float64)
                if rate.shape != (trace.n_pages,):
                    raise InputError(
                        f"rates of epoch {e - 1} have shape {rate.shape}, expected ({trace.n_pages},)",
                        "rates",
                    )
            else:
                rate = prev
            plan = plan_epoch(machine.node, rate, fast_pages, limit)
            report = machine.move(plan, limit)
            done = report.outcome == Outcome.MOVED
            promoted += int(np.count_nonzero(done & (plan.kind == PROMOTE)))
            demoted += int(np.count_nonzero(done & (plan.kind == DEMOTE)))
        page, count = trace.epoch(e)
        machine.touch(page)
        if residency is not None:
            residency[e] = np.packbits(machine.fast_mask())
        hits += int(count[machine.node[page] == FAST].sum())
        total += int(count.sum())
        if rates is None:
            prev[:] = 0
            prev[page] = count
    return Ceiling(
        hits=hits,
        accesses=total,
        hit_ratio=hits / total if total else 1.0,
        promoted=promoted,
        demoted=demoted,
        source="counts" if rates is None else "rates",
        residency=residency,
    )


class RowRates:
    """Rates given as rows per epoch (the trace layout): ``rate`` of ``page`` in epoch e, 0 elsewhere."""

    def __init__(self, n_pages: int, offsets: np.ndarray, page: np.ndarray, rate: np.ndarray) -> None:
        self.n_pages, self.offsets, self.page, self.rate = n_pages, offsets, page, rate

    def __call__(self, e: int) -> np.ndarray:
        lo, hi = int(self.offsets[e]), int(self.offsets[e + 1])
        out = np.zeros(self.n_pages)
        np.add.at(out, self.page[lo:hi], self.rate[lo:hi])
        return out


def load_rates(path: str | Path, trace: Trace) -> RowRates:
    """A ``--rates`` file: the trace format, with float counts (>= 0) allowed; it must match the trace."""
    where = str(path)
    try:
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise InputError("rates file not found", where) from None
    except (OSError, ValueError, AttributeError, zipfile.BadZipFile, EOFError) as e:
        raise InputError(f"cannot read rates as an .npz archive: {e}", where) from None
    count = np.asarray(arrays.get("count", np.zeros(0)))
    if count.ndim != 1 or count.dtype.kind not in "iuf":
        raise InputError(f"array 'count' must be a 1-D numeric array, has dtype {count.dtype}", where)
    count = count.astype(np.float64)
    bad = ~np.isfinite(count) | (count < 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(f"array 'count' row {i}: rate {count[i]} must be finite and >= 0", where)
    shaped = validate_trace({**arrays, "count": np.ones(count.shape[0], np.int64)}, where)
    check_observed(trace, shaped, where)
    return RowRates(shaped.n_pages, shaped.offsets, shaped.page, count)
