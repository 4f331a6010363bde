"""Placement quality when a decision re-evaluates only part of the pages.

The simulator's workloads track 32 Ki pages, below the policy's ``sweep_pages``, so the quality
benchmark sees every page evaluated every decision. Past ``sweep_pages`` (256 Ki) a decision
re-evaluates the sampled, new, moved and carried pages, the pages gone silent, the drifted regions
and a sweep slice (``tierctl.core.evaluation``). This runs the same workloads with ``sweep_pages``
set to 1/k of the tracked pages (k = 8 and 64; at 64 Mi tracked pages the default slice is 1/256)
and reports each as a ratio to the causal ceiling next to the full evaluation. Tuning seeds,
held-out seeds and fresh random shapes are reported apart.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from typing import Any

import numpy as np

from bench.quality import (
    DENSITIES,
    FRESH_SEEDS,
    HELDOUT_SEEDS,
    RANDOM,
    SCALE,
    TUNING_SEEDS,
    run_one,
    workload,
)
from tierctl.sim.shapes import SHAPES

FRACTIONS = (1, 8, 64)  # 1: every page (the default at the simulator's size)


def _one(task: tuple[str, str, int, str, int]) -> dict[str, Any]:
    shape, density, seed, kind, k = task
    n = workload(shape, density, seed, SCALE, 240).trace.n_pages
    opts = {} if k == 1 else {"sweep_pages": max(512, n // k)}
    r = run_one(shape, density, "tierctl", seed, **opts)
    return {
        "set": kind,
        "shape": shape,
        "density": density,
        "seed": seed,
        "fraction": k,
        "pages": n,
        "vs_ceiling": r["vs_ceiling"],
        "moved": r["moved"],
    }


def run(
    shapes: Sequence[str] = tuple(SHAPES),
    densities: Sequence[str] = DENSITIES,
    fractions: Sequence[int] = FRACTIONS,
    workers: int = 2,
) -> dict[str, Any]:
    todo = [
        (s, d, seed, kind, k)
        for s in shapes
        for d in densities
        for kind, seeds in (("tuning", TUNING_SEEDS), ("heldout", HELDOUT_SEEDS))
        for seed in seeds
        for k in fractions
    ]
    # random shapes nothing was chosen on (the quality benchmark's fresh set)
    todo += [(RANDOM, d, seed, "fresh", k) for d in densities for seed in FRESH_SEEDS for k in fractions]
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        rows = pool.map(_one, todo)
    summary: dict[str, dict[str, float]] = {}
    for kind in ("tuning", "heldout", "fresh"):
        for k in fractions:
            sel = [r["vs_ceiling"] for r in rows if r["set"] == kind and r["fraction"] == k]
            summary[f"{kind}/1:{k}"] = {"mean": float(np.mean(sel)), "min": float(np.min(sel))}
    return {"fractions": list(fractions), "rows": rows, "summary": summary}


def table(out: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Mean vs-ceiling per shape x density (tuning and held-out seeds together) per fraction."""
    ks = out["fractions"]
    keys = sorted({(r["shape"], r["density"]) for r in out["rows"]}, key=lambda t: (t[0], t[1]))
    rows = []
    for shape, dens in keys:
        row = [shape, dens]
        for k in ks:
            v = [
                r["vs_ceiling"]
                for r in out["rows"]
                if (r["shape"], r["density"], r["fraction"]) == (shape, dens, k)
            ]
            row.append(f"{np.mean(v):.3f}")
        rows.append(row)
    for name, s in out["summary"].items():
        rows.append([name, "mean/min", f"{s['mean']:.3f} / {s['min']:.3f}"] + [""] * (len(ks) - 1))
    head = ["shape", "density", *(("every page" if k == 1 else f"1/{k} swept") for k in ks)]
    return head, rows
