"""``tierctl sim``: run policies on the simulated two-tier machine."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

import numpy as np

from tierctl.cli import args as args_
from tierctl.cli.table import render
from tierctl.core.heat import DEFAULT_HALF_LIFE
from tierctl.core.policies import DEFAULT_POLICY, POLICIES
from tierctl.errors import InputError
from tierctl.fmt import fmt_bytes
from tierctl.sim.ceiling import causal_ceiling, load_rates
from tierctl.sim.rates import DENSITIES
from tierctl.sim.runner import SAMPLE_MODES, SimConfig, SimResult, simulate
from tierctl.sim.shapes import SHAPES
from tierctl.sim.trace import load_trace
from tierctl.sim.workloads import WORKLOADS, make_workload


def register(sub: Any) -> None:
    p = sub.add_parser(
        "sim",
        help="simulate a policy on a built-in workload or a trace, scored against the causal ceiling "
        "and a clairvoyant oracle",
        description=(
            "Run the controller on a simulated two-tier machine (node 0 = fast, node 1 = slow). "
            "Each epoch the controller decides from what was observed in earlier epochs, then the "
            "epoch's accesses are served. The oracle keeps each epoch's most accessed pages in the "
            "fast tier. The causal ceiling knows the true rates of every epoch already served and "
            "moves as many pages per epoch as the policy may (docs/formats.md)."
        ),
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--workload", metavar="NAME", help=f"built-in workload: {', '.join([*WORKLOADS, *SHAPES])}"
    )
    src.add_argument("--trace", metavar="FILE.npz", help="access trace (format in docs/formats.md)")
    p.add_argument(
        "--observed",
        metavar="FILE.npz",
        help="what the sampler saw (same format); default: thin the trace with --sample-rate",
    )
    p.add_argument(
        "--density",
        choices=tuple(DENSITIES),
        help="accesses per page per epoch of a shape workload: sparse ~5, medium ~30, dense ~128 "
        "(default medium; the four original workloads have their own)",
    )
    p.add_argument(
        "--rates",
        metavar="FILE.npz",
        help="true access rates behind a --trace (trace format, float counts allowed) for the causal "
        "ceiling; default: the ceiling uses the previous epoch's counts",
    )
    p.add_argument(
        "--fast-pages",
        type=args_.PAGES,
        metavar="K",
        help="fast-tier capacity in pages (default for built-in workloads: their own, 25 %% of their pages)",
    )
    policy_arguments(p)
    p.add_argument(
        "--sample-rate",
        type=args_.PROBABILITY,
        default=0.01,
        metavar="P",
        help="probability that an access is observed (default 0.01)",
    )
    p.add_argument(
        "--sample-mode",
        choices=SAMPLE_MODES,
        default="all",
        help="all: accesses on both tiers are sampled; hint: only slow-tier accesses (NUMA hint faults); "
        "scan: hint-fault scanning, one sample per slow page per --scan-period (rate ignored)",
    )
    p.add_argument(
        "--scan-period",
        type=args_.count(1, 1 << 20),
        default=4,
        metavar="EPOCHS",
        help="scan mode: epochs between two armings of a page (default 4)",
    )
    p.add_argument(
        "--migrate-limit",
        type=args_.count(0, 1 << 40),
        metavar="PAGES",
        help="pages that may change tier per epoch, promotions + demotions (default 10 %% of the fast tier)",
    )
    p.add_argument(
        "--half-life",
        type=args_.real(0.0, 1e6, lo_open=True),
        default=DEFAULT_HALF_LIFE,
        metavar="EPOCHS",
        help=f"heat half-life in epochs (default {DEFAULT_HALF_LIFE:g})",
    )
    p.add_argument("--seed", type=args_.SEED, default=0, help="seed for workloads and sampling (default 0)")
    p.add_argument(
        "--epochs",
        type=args_.count(1, 1 << 20),
        default=240,
        help="epochs of a built-in workload (default 240)",
    )
    p.add_argument(
        "--scale",
        type=args_.real(0.0, 64.0, lo_open=True),
        default=1.0,
        help="size factor of a built-in workload (default 1 = 64 Ki pages)",
    )
    p.add_argument(
        "--residency-out",
        metavar="FILE.npz",
        help="write the fast-tier residency bitmap per epoch (packbits rows)",
    )
    p.add_argument("--save-trace", metavar="FILE.npz", help="write the workload's trace and exit")
    p.add_argument(
        "--compare", action="store_true", help="run every policy on every built-in workload and print a table"
    )
    p.add_argument(
        "--progress",
        action="store_true",
        help="with --compare: report each run on stderr even when stderr is not a terminal (on a "
        "terminal it always does)",
    )
    p.add_argument("--list", action="store_true", help="list workloads and policies")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=run)


def policy_arguments(p: argparse.ArgumentParser) -> None:
    """``--policy NAME`` and ``--policy-option KEY=VALUE`` (repeatable), the same in ``tierctl sim``
    and ``tierctl daemon``; ``make_policy`` checks the options' names and types."""
    p.add_argument(
        "--policy",
        default=DEFAULT_POLICY,
        metavar="NAME",
        help=f"placement policy: {', '.join(POLICIES)} (default {DEFAULT_POLICY}; docs/policy.md)",
    )
    p.add_argument(
        "--policy-option",
        type=args_.key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an option of the policy, e.g. hysteresis=0.5 (repeatable; docs/policy.md lists them); a "
        "value of the wrong type is refused with the option's name",
    )


def run(args: argparse.Namespace) -> int:
    if args.list:
        return _list(args)
    if args.compare:
        if args.trace or args.workload:
            raise InputError("--compare runs the built-in workloads; drop --trace/--workload", "--compare")
        if args.density or args.rates:
            raise InputError("--compare runs the original workloads at their own density", "--compare")
        if args.policy_option:
            raise InputError(
                "--compare runs every policy with its defaults; drop --policy-option", "--compare"
            )
        return _compare(args)
    if not (args.trace or args.workload):
        raise InputError("give --workload NAME, --trace FILE.npz or --compare", "tierctl sim")
    quotas = {}
    rates = None
    if args.density and not args.workload:
        raise InputError("--density goes with --workload", "--density")
    if args.workload:
        if args.observed:
            raise InputError("--observed goes with --trace", "--observed")
        if args.rates:
            raise InputError("--rates goes with --trace (built-in workloads know their rates)", "--rates")
        wl = make_workload(
            args.workload, seed=args.seed, scale=args.scale, epochs=args.epochs, density=args.density
        )
        trace, name, quotas, rates = wl.trace, wl.name, dict(wl.quotas), wl.rates
        if wl.density:
            name = f"{name}/{wl.density}"
        fast = args.fast_pages if args.fast_pages is not None else wl.fast_pages
        if args.save_trace:
            _write(args.save_trace, trace.save)
            print(f"wrote {args.save_trace}: {trace.n_epochs} epochs, {trace.n_pages} pages", file=sys.stderr)
            return 0
    else:
        trace, name = load_trace(args.trace), args.trace
        if args.fast_pages is None:
            raise InputError("required with --trace", "--fast-pages")
        fast = args.fast_pages
    if fast <= 0 or fast > trace.n_pages:
        raise InputError(f"must be within 1..n_pages={trace.n_pages}, got {fast}", "--fast-pages")
    observed = load_trace(args.observed, what="observed") if args.observed else None
    if args.rates:
        rates = load_rates(args.rates, trace)
    cfg = _config(args, fast, args.policy)
    result, residency = simulate(
        trace,
        cfg,
        observed=observed,
        quotas=quotas,
        workload=name,
        keep_residency=bool(args.residency_out),
        rates=rates,
    )
    if args.residency_out:
        out_path = args.residency_out

        def save(f: str) -> None:
            with open(f, "wb") as fh:
                np.savez_compressed(fh, residency=residency)

        _write(out_path, save)
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        print(_describe(result, trace.page_size))
    return 0


def _config(args: argparse.Namespace, fast: int, policy: str) -> SimConfig:
    if args.migrate_limit is not None and args.migrate_limit < 0:
        raise InputError(f"must be >= 0, got {args.migrate_limit}", "--migrate-limit")
    if not 0 < args.sample_rate <= 1:
        raise InputError(f"must be within (0, 1], got {args.sample_rate}", "--sample-rate")
    if args.half_life <= 0:
        raise InputError(f"must be > 0, got {args.half_life}", "--half-life")
    if args.scan_period < 1:
        raise InputError(f"must be >= 1, got {args.scan_period}", "--scan-period")
    if args.observed and args.sample_mode == "scan":
        raise InputError("scan sampling is simulated; it does not read an --observed file", "--sample-mode")
    return SimConfig(
        fast_pages=fast,
        policy=policy,
        sample_rate=args.sample_rate,
        migrate_limit=args.migrate_limit,
        seed=args.seed,
        sample_mode=args.sample_mode,
        scan_period=args.scan_period,
        half_life=args.half_life,
        policy_options=dict(args.policy_option),
    )


def _write(path: str, writer: Any) -> None:
    try:
        writer(path)
    except OSError as e:
        raise InputError(f"cannot write: {e.strerror or e}", path) from None


def _describe(r: SimResult, page_size: int) -> str:
    lines = [
        f"workload      {r.workload}: {r.epochs} epochs, {r.n_pages} pages of {fmt_bytes(page_size)}, "
        f"fast tier {r.fast_pages} pages ({100 * r.fast_pages / r.n_pages:.1f} %)",
        f"policy        {r.policy} (sample rate {r.sample_rate:g}, {r.sample_mode} mode, "
        f"migrate limit {r.migrate_limit} pages/epoch)",
        f"fast hit      {r.fast_hit_ratio:.4f}   ceiling {r.ceiling_hit_ratio:.4f} (from {r.ceiling_from})"
        f"   = {r.vs_ceiling:.3f} x ceiling",
        f"              oracle {r.oracle_hit_ratio:.4f}   = {r.quality:.3f} x oracle",
        f"migrations    {r.promoted} promoted, {r.demoted} demoted "
        f"(~{r.migration_seconds:.2f} s of slow-tier bandwidth, {r.migration_share:.2%} of the run)",
        f"latency       {r.mean_latency_ns:.1f} ns mean (oracle {r.oracle_latency_ns:.1f} ns), "
        f"slowdown {r.slowdown:.3f} x all-DRAM",
    ]
    if len(r.per_cgroup) > 1:
        for cg, v in r.per_cgroup.items():
            lines.append(
                f"  cgroup {cg:<10} fast hit {v['fast_hit_ratio']:.4f}  "
                f"({v['accesses'] / max(r.accesses, 1):.1%} of accesses)"
            )
    return "\n".join(lines)


class Progress:
    """Where ``--compare`` is: ``[n/N] workload x policy, elapsed`` on ``out`` (stderr). On a terminal
    one line rewritten in place and cleared at the end; elsewhere (``--progress``) one line per run."""

    def __init__(self, total: int, out: TextIO, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.total = total
        self.out = out
        self.tty = out.isatty()
        self.clock = clock
        self.t0 = clock()

    def step(self, n: int, what: str) -> None:
        line = f"sim --compare: [{n}/{self.total}] {what}, {self.clock() - self.t0:.1f} s elapsed"
        self.out.write(f"\r\x1b[K{line}" if self.tty else f"{line}\n")
        self.out.flush()

    def done(self) -> None:
        line = f"sim --compare: {self.total} runs in {self.clock() - self.t0:.1f} s"
        self.out.write(f"\r\x1b[K{line}\n" if self.tty else f"{line}\n")
        self.out.flush()


def best_policies(results: list[SimResult]) -> dict[str, list[str]]:
    """Per workload, the policies with the highest ratio to the causal ceiling (ties within the
    table's precision, 0.0005, all named), best first."""
    out: dict[str, list[str]] = {}
    for wname in dict.fromkeys(r.workload for r in results):
        runs = sorted((r for r in results if r.workload == wname), key=lambda r: -r.vs_ceiling)
        out[wname] = [r.policy for r in runs if runs[0].vs_ceiling - r.vs_ceiling < 0.0005]
    return out


def _best_line(results: list[SimResult]) -> str:
    score = {(r.workload, r.policy): r.vs_ceiling for r in results}
    parts = [f"{w} {' = '.join(ps)} ({score[w, ps[0]]:.3f})" for w, ps in best_policies(results).items()]
    return "best policy per workload (x ceiling): " + ", ".join(parts)


def _compare(args: argparse.Namespace) -> int:
    results: list[SimResult] = []
    runs = [(w, p) for w in WORKLOADS for p in POLICIES]
    progress = Progress(len(runs), sys.stderr) if args.progress or sys.stderr.isatty() else None
    for wname in WORKLOADS:
        wl = make_workload(wname, seed=args.seed, scale=args.scale, epochs=args.epochs)
        fast = args.fast_pages if args.fast_pages is not None else wl.fast_pages
        ceiling = None
        for pname in POLICIES:
            if progress is not None:
                progress.step(len(results) + 1, f"{wname} x {pname}")
            cfg = _config(args, fast, pname)
            if ceiling is None:
                ceiling = causal_ceiling(wl.trace, fast, cfg.limit(), wl.rates)
            res, _ = simulate(wl.trace, cfg, quotas=wl.quotas, workload=wname, ceiling=ceiling)
            results.append(res)
    if progress is not None:
        progress.done()
    if args.json:
        runs_json = [r.to_json() for r in results]
        print(json.dumps({"runs": runs_json, "best": best_policies(results)}, indent=2))
        return 0
    rows = [
        (
            r.workload,
            r.policy,
            r.fast_hit_ratio,
            r.oracle_hit_ratio,
            r.quality,
            r.vs_ceiling,
            r.promoted,
            r.demoted,
            f"{r.slowdown:.3f}",
        )
        for r in results
    ]
    print(
        render(
            (
                "workload",
                "policy",
                "hit",
                "oracle",
                "x oracle",
                "x ceiling",
                "promoted",
                "demoted",
                "slowdown",
            ),
            rows,
            right=[False, False, True, True, True, True, True, True, True],
        )
    )
    print(
        f"\nsample rate {args.sample_rate:g} ({args.sample_mode}), migrate limit "
        f"{results[0].migrate_limit if results else '-'} pages/epoch, seed {args.seed}; "
        "slowdown = estimated mean access latency / all-DRAM (100 ns fast, 300 ns slow)"
    )
    print(_best_line(results))
    return 0


def _list(args: argparse.Namespace) -> int:
    if args.json:
        print(
            json.dumps(
                {
                    "workloads": list(WORKLOADS),
                    "shapes": list(SHAPES),
                    "densities": dict(DENSITIES),
                    "policies": list(POLICIES),
                }
            )
        )
        return 0
    print("workloads (fixed dense intensity, ~128 accesses per page per epoch):")
    for name, fn in WORKLOADS.items():
        doc = " ".join((fn.__doc__ or "").split())
        print(f"  {name:<13} {doc}")
    dens = ", ".join(f"{k} ~{v:g}" for k, v in DENSITIES.items())
    print(f"shapes (--density: {dens} accesses per page per epoch; default medium):")
    for name, fn in SHAPES.items():
        doc = " ".join((fn.__doc__ or "").split())
        print(f"  {name:<13} {doc}")
    print("policies:")
    for name, cls in POLICIES.items():
        print(f"  {name:<13} {' '.join((cls.__doc__ or '').split())}")
    return 0
