"""Run the benchmarks, write bench/results/<name>.json and print a table.

Usage: python -m bench.run [quality] [cost] [amortised] [mover] [overhead] [shift] [daemon-cost]
                          [--seeds 0,1,2] [--sizes 1M,4M,16M] [--rounds N] [--phase-s S] ...

``shift`` and ``daemon-cost`` boot the two-tier guest once per contender and round
(docs/bench-shift.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.shift_run import CONTENDERS
from tierctl.cli.table import render

RESULTS = Path(__file__).resolve().parent / "results"


def _size(s: str) -> int:
    s = s.strip().upper()
    mult = {"K": 1 << 10, "M": 1 << 20}.get(s[-1:], 1)
    return int(s[:-1] if mult > 1 else s) * mult


def _write(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": name,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": platform.node(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        **payload,
    }
    path = RESULTS / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    tmp.replace(path)
    return path


def quality(seeds: list[int]) -> None:
    """Policies vs the causal ceiling over shapes x densities (bench/quality.py); for --quick,
    --policies, --shapes, --densities run ``python -m bench.quality``."""
    from bench import quality as q

    q.report("quality", RESULTS, _write, seeds=seeds)


def cost(sizes: list[int]) -> None:
    from bench import cycle_cost

    out = cycle_cost.run(sizes)
    path = _write("cycle_cost", out)
    rows = [
        (
            f"{r['pages'] / (1 << 20):g} Mi",
            r["budget"],
            f"{r['evaluated_pages_median'] / (1 << 20):.2f} Mi",
            f"{r['cycle_s_median'] * 1000:.0f} ms",
            f"{r['rebase_cycle_s'] * 1000:.0f} ms",
            f"{r['full_cycle_s'] * 1000:.0f} ms",
            f"{r['cycle_s_amortised'] * 1000:.0f} ms",
            f"{r['cycle_s_median_threaded'] * 1000:.0f} ms",
            f"{r['time_ratio_vs_smallest']:.2f}",
            f"{r['size_ratio_vs_smallest']:g}",
            f"{r['bytes_per_page']:.1f}",
        )
        for r in out["rows"]
    ]
    print(
        render(
            (
                "tracked pages",
                "budget",
                "evaluated",
                "cycle, 1 core",
                "rebase",
                "full pass",
                "amortised",
                f"{out['threads']} threads",
                "time ratio",
                "size ratio",
                "B/page peak",
            ),
            rows,
        )
    )
    print(f"-> {path}\n")


def amortised() -> None:
    from bench import amortised as am

    out = am.run()
    path = _write("amortised", out)
    print(render(*am.table(out)))
    print(f"-> {path}\n")


def bound(seeds: list[int]) -> None:
    """What sparse samples allow (bench/bound.py) on the rows where tierctl misses 0.95 x ceiling in
    bench/results/quality.json; run ``scripts/bench quality`` first."""
    import json

    from bench import bound as b

    quality = json.loads((RESULTS / "quality.json").read_text())
    out = b.run(b.unmet(quality), seeds, quality)
    path = _write("bound", out)
    print(b.table(out))
    print(f"-> {path}\n")


def bound_all(seeds: list[int]) -> None:
    """The same on every shape x density, with the best ONE grid point for all of them (a default)
    beside the per-run choice; writes bench/results/bound_all.json."""
    import json

    from bench import bound as b

    quality = json.loads((RESULTS / "quality.json").read_text())
    out = b.run(b.all_rows(quality), seeds, quality)
    out["one_default"] = b.one_default(out)
    path = _write("bound_all", out)
    print(b.one_default_table(out))
    print(f"-> {path}\n")


def pressure(args: argparse.Namespace) -> None:
    """A runaway beside a protected workload in the guest: the kernel alone against tierctl."""
    from bench import pressure as pr

    out = pr.host(
        args.rounds, 10.0, args.phase_s, [c for c in args.contenders.split(",") if c in pr.CONTENDERS]
    )
    path = _write("pressure", out)
    print(pr.table(out))
    print(f"-> {path}\n")


def mover() -> None:
    """In the guest: measure and write; on the host: boot the guest to do it."""
    if os.environ.get("TIERCTL_IN_GUEST") != "1":
        root = Path(__file__).resolve().parents[1]
        RESULTS.mkdir(parents=True, exist_ok=True)
        cmd = [
            str(root / "scripts" / "testbed"),
            "run",
            "--rwdir",
            str(RESULTS),
            "--timeout",
            "900",
            "--",
            "env",
            "TIERCTL_IN_GUEST=1",
            "PYTHONDONTWRITEBYTECODE=1",
            f"PYTHONPATH={root}",
            sys.executable,
            "-m",
            "bench.run",
            "mover",
        ]
        rc = subprocess.run(cmd, cwd=root, check=False).returncode
        if rc != 0:
            raise SystemExit(f"scripts/bench: the guest run failed (exit {rc})")
        out = json.loads((RESULTS / "mover.json").read_text())
    else:
        from bench import mover_bw

        out = mover_bw.run()
        _write("mover", out)
        return
    rows = [
        ("THP" if r["thp"] else "4 KiB", r["batch_pages"], r["move_units"], f"{r['to_slow_mb_s']:.0f}",
         f"{r['to_fast_mb_s']:.0f}", f"{r['mbind_move_mb_s']:.0f}", f"{r['mbind_move_to_fast_mb_s']:.0f}",
         f"{r['ratio_to_mbind_move']:.2f}", f"{r['ratio_to_mbind_move_to_fast']:.2f}",
         f"{r['one_move_pages_call_mb_s']:.0f} ({r['ratio_to_one_move_pages_call']:.2f})")
        for r in out["rows"]
    ]  # fmt: skip
    print(render(("pages", "batch", "units", "mover->slow MB/s", "->fast", "mbind->slow", "->fast",
                  "x mbind ->slow", "->fast", "1 move_pages call ->slow (x)"), rows))  # fmt: skip
    print(
        f"best of {out['rows'][0]['rounds']} interleaved rounds on the same pages; memcpy node0->node1 "
        f"{out['copy_node0_to_node1_mb_s']:.0f} MB/s; kernel copy (process_vm_readv) "
        f"{out['kernel_copy_node0_to_node1_mb_s']:.0f} MB/s; 256 MiB in the two-tier guest under TCG"
    )
    print(f"-> {RESULTS / 'mover.json'}\n")


def overhead(seconds: float) -> None:
    from bench import sampler_overhead

    out = sampler_overhead.run(["bpf-fault", "bpf-perf", "damon", "idle"], seconds=seconds)
    path = _write("sampler_overhead", out)
    rows = []
    for r in out["results"]:
        if r["available"]:
            rows.append(
                (
                    r["workload"],
                    r["sampler"],
                    f"{r['slowdown']:+.1%}",
                    int(r["rows_per_run"]),
                    int(r["dropped_per_run"]),
                    r["reason"][:60],
                )
            )
        else:
            rows.append((r["workload"], r["sampler"], "n/a", "-", "-", r["reason"][:60]))
    print(
        render(
            ("workload", "sampler", "slowdown", "rows", "dropped", "how / why not"),
            rows,
            right=[False, False, True, True, True, False],
        )
    )
    print(f"-> {path}\n")


def shift(args: argparse.Namespace) -> None:
    from bench import shift_run, shift_table

    results = shift_run.host(args, "shift")
    out = shift_table.summarise(results)
    path = _write("shift", {"runs": results, **out})
    print(shift_table.render_shift(out))
    print(f"-> {path}\n")


def daemon_cost(args: argparse.Namespace) -> None:
    from bench import shift_run, shift_table

    results = shift_run.host(args, "cost")
    path = _write("daemon_cost", {"runs": results})
    print(shift_table.render_cost(results))
    print(f"-> {path}\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="scripts/bench", description=__doc__)
    ap.add_argument(
        "which",
        nargs="*",
        metavar="quality|cost|amortised|bound|bound-all|mover|overhead|shift|daemon-cost|pressure|tui",
        help="which benchmarks (default: quality, cost and overhead; mover, shift and daemon-cost boot "
        "the two-tier guest)",
    )
    ap.add_argument("--rounds", type=int, default=2, help="shift/daemon-cost: fresh boots per contender")
    ap.add_argument("--phase-s", type=float, default=30.0, help="shift: seconds per phase (default 30)")
    ap.add_argument("--warmup-s", type=float, default=10.0, help="shift: idle seconds before phase 1")
    ap.add_argument(
        "--contenders",
        default=",".join(CONTENDERS),
        help=f"shift: comma-separated, from {', '.join(CONTENDERS)} (default: all)",
    )
    ap.add_argument(
        "--tierctl-variant",
        action="append",
        default=[],
        metavar="ARGS",
        help="shift/daemon-cost: also run the daemon with these extra options (repeatable)",
    )
    ap.add_argument(
        "--cold-mib", type=int, default=640, help="daemon-cost: cold memory beside the 2 x 192 MiB hot sets"
    )
    ap.add_argument("--seconds", type=float, default=5.0, help="overhead: seconds per run (default 5)")
    ap.add_argument("--seeds", default="0,1,2", help="workload/sampling seeds for quality (default 0,1,2)")
    ap.add_argument("--sizes", default="1M,4M,16M", help="tracked page counts for cost (default 1M,4M,16M)")
    args, rest = ap.parse_known_args(argv)
    which = args.which or ["quality", "cost", "overhead"]
    if rest and which != ["quality"]:
        ap.error(f"unrecognized arguments: {' '.join(rest)}")
    known = {"quality", "cost", "amortised", "bound", "bound-all", "mover", "overhead", "shift"}
    known |= {"daemon-cost", "tui", "pressure"}
    unknown = set(which) - known
    if unknown:
        ap.error(f"unknown benchmark(s) {sorted(unknown)}; choose from {', '.join(sorted(known))}")
    if "quality" in which:
        if rest:  # --quick, --policies, --shapes ...: bench/quality.py's own options
            from bench import quality as q

            q.main(["--seeds", args.seeds, *rest])
        else:
            quality([int(s) for s in args.seeds.split(",")])
    if "cost" in which:
        cost([_size(s) for s in args.sizes.split(",")])
    if "amortised" in which:
        amortised()
    if "bound" in which:
        bound([int(s) for s in args.seeds.split(",")])
    if "bound-all" in which:
        bound_all([int(s) for s in args.seeds.split(",")])
    if "pressure" in which:
        if args.contenders == ",".join(CONTENDERS):  # the shift bench's default: use this one's
            args.contenders = "kernel,tierctl,cpu"  # cpu: the CPU-sharing bound
        pressure(args)
    if "mover" in which:
        mover()
    if "overhead" in which:
        overhead(args.seconds)
    if "shift" in which:
        shift(args)
    if "daemon-cost" in which:
        daemon_cost(args)
    if "tui" in which:  # TUI refresh with 500 cgroups and key-to-screen latency (Pilot)
        from bench import tui_refresh

        tui_refresh.main([])
    return 0


if __name__ == "__main__":
    sys.exit(main())
