"""``tierctl daemon``: the control loop in the foreground (so far: a given number of cycles)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from tierctl.cli.kernel_args import pid_arg
from tierctl.errors import InputError
from tierctl.kernel.cgroupfs import CgroupFS
from tierctl.kernel.procfs import ProcFS
from tierctl.service.kernel_loop import KernelLoop, LoopConfig


def register(sub: Any) -> None:
    p = sub.add_parser(
        "daemon",
        help="run the control loop on this machine (foreground)",
        description="Run the control loop on the target processes: sample, decide, move. "
        "This version runs a fixed number of cycles (--once, --cycles N); the long-running "
        "daemon with its socket API, profiles and signals comes next.",
    )
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--pid", action="append", default=None, help="a target process (repeatable)")
    who.add_argument(
        "--cgroup",
        action="append",
        default=None,
        metavar="PATH",
        help="a target cgroup below the cgroup root (repeatable)",
    )
    runs = p.add_mutually_exclusive_group()
    runs.add_argument("--once", action="store_true", help="run one cycle (after one cycle of sampling)")
    runs.add_argument("--cycles", type=int, metavar="N", help="run N cycles")
    p.add_argument("--cycle-seconds", type=float, default=1.0, help="cycle period (default 1 s)")
    p.add_argument("--dry-run", action="store_true", help="plan, but never move a page")
    p.add_argument("--rate", type=float, metavar="MBPS", help="migration bandwidth cap")
    p.add_argument(
        "--hint-faults",
        action="store_true",
        help="turn on NUMA hint faults for sampling (knobs recorded and restored)",
    )
    p.add_argument("--state-dir", type=Path, default=Path("/run/tierctl"), help=argparse.SUPPRESS)
    p.add_argument("--json", action="store_true", help="one JSON object per cycle")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.once and not args.cycles:
        raise InputError(
            "the long-running daemon is not built yet: give --once or --cycles N", "tierctl daemon"
        )
    if args.cycles is not None and args.cycles <= 0:
        raise InputError(f"must be > 0, got {args.cycles}", "--cycles")
    if args.cycle_seconds <= 0:
        raise InputError(f"must be > 0, got {args.cycle_seconds}", "--cycle-seconds")
    procfs = ProcFS()
    if args.pid:
        fixed = [(pid_arg(p), "") for p in args.pid]
        for pid, _ in fixed:
            if not procfs.exists(pid):
                raise InputError(f"no process {pid}", "--pid")

        def targets() -> list[tuple[int, str]]:
            return [(pid, procfs.cgroup_path(pid) if procfs.exists(pid) else "") for pid, _ in fixed]
    else:
        fs = CgroupFS()
        paths = list(args.cgroup)
        for path in paths:
            fs.pids(path)  # InputError naming the cgroup when it does not exist

        def targets() -> list[tuple[int, str]]:
            return [(pid, path) for path in paths for pid in fs.pids(path)]

    state = None
    if args.hint_faults:
        args.state_dir.mkdir(parents=True, exist_ok=True)
        state = args.state_dir / "knobs.json"
    loop = KernelLoop(targets, LoopConfig(dry_run=args.dry_run, rate_mbps=args.rate, hint_faults_state=state))
    status = loop.start()
    if not loop.chain.running:
        loop.stop()
        reasons = "; ".join(f"{s.name}: {s.reason}" for s in status)
        raise InputError(f"no sampler could start ({reasons})", "tierctl daemon")
    n = 1 if args.once else args.cycles
    try:
        for _ in range(n):
            time.sleep(args.cycle_seconds)
            rep = loop.cycle()
            out = {
                "cycle": rep.now,
                "tracked_pages": loop.view.index.keys.shape[0],
                "samples": rep.samples,
                "planned_promotions": rep.planned_promotions,
                "planned_demotions": rep.planned_demotions,
                "promoted": rep.promoted,
                "demoted": rep.demoted,
                "outcomes": rep.outcomes,
                "seconds": rep.seconds,
                "sampler": loop.chain.running,
                "dry_run": args.dry_run,
            }
            if args.json:
                print(json.dumps(out), flush=True)
            else:
                print(
                    f"cycle {rep.now}: {out['tracked_pages']} pages tracked, {rep.samples} samples, planned "
                    f"+{rep.planned_promotions}/-{rep.planned_demotions}, "
                    f"moved +{rep.promoted}/-{rep.demoted} "
                    f"({rep.seconds * 1000:.0f} ms){' [dry run]' if args.dry_run else ''}",
                    flush=True,
                )
    finally:
        loop.stop()
    for e in loop.watchdog_events:
        print(f"watchdog: {e}", file=sys.stderr)
    return 0
