"""``scripts/bench shift`` and ``scripts/bench daemon-cost``: one fresh guest boot per contender and round.

On the host, each contender runs in its own boot of the two-tier guest (``scripts/testbed run``), which
writes one JSON file into a --rwdir folder; the host collects them into bench/results/shift.json (or
daemon_cost.json) and prints a table. ``python -m bench.shift_run guest ...`` is what runs in the guest.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CONTENDERS = ("tierctl", "nb2-default", "nb2-tuned", "damon")


def guest_cmd(out: Path, contender: str, extra: str, opts: list[str]) -> list[str]:
    return [
        str(ROOT / "scripts" / "testbed"),
        "run",
        "--rwdir",
        str(out.parent),
        "--timeout",
        "900",
        "--",
        "env",
        "PYTHONDONTWRITEBYTECODE=1",
        f"PYTHONPATH={ROOT}",
        sys.executable,
        "-m",
        "bench.shift_run",
        "guest",
        "--contender",
        contender,
        f"--extra={extra}",
        "--out",
        str(out),
        *opts,
    ]


def boot(out: Path, contender: str, extra: str, opts: list[str]) -> dict[str, Any] | None:
    out.unlink(missing_ok=True)
    print(f"== {contender} {extra} ({out.name})", flush=True)
    rc = subprocess.run(guest_cmd(out, contender, extra, opts), cwd=ROOT, check=False).returncode
    if rc != 0 or not out.exists():
        print(f"   guest run failed (exit {rc})", flush=True)
        return None
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def host(args: argparse.Namespace, mode: str) -> list[dict[str, Any]]:
    opts = [f"--phase-s={args.phase_s}", f"--warmup-s={args.warmup_s}"]
    if mode == "cost":
        opts += ["--cost", f"--cold-mib={args.cold_mib}"]
    runs: list[tuple[str, str]] = []
    if mode == "cost":
        runs = [("tierctl", v) for v in ["", *args.tierctl_variant]]
    else:
        runs = [(c, "") for c in args.contenders.split(",") if c]
        runs += [("tierctl", v) for v in args.tierctl_variant]
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-shift-") as tmp:
        for r in range(args.rounds):
            for i, (c, extra) in enumerate(runs):
                res = boot(Path(tmp) / f"{mode}-{r}-{i}.json", c, extra, opts)
                if res is not None:
                    res["round"] = r
                    results.append(res)
    return results


def guest(argv: list[str]) -> int:
    from bench.shift import ShiftConfig, run_cost, run_one

    ap = argparse.ArgumentParser(prog="bench.shift_run guest")
    ap.add_argument("--contender", required=True)
    ap.add_argument("--extra", default="")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--phase-s", type=float, default=30.0)
    ap.add_argument("--warmup-s", type=float, default=10.0)
    ap.add_argument("--cold-mib", type=int, default=1 << 20)
    ap.add_argument("--cost", action="store_true")
    a = ap.parse_args(argv)
    cfg = ShiftConfig(
        contender=a.contender,
        extra=tuple(shlex.split(a.extra)),
        phase_s=a.phase_s,
        warmup_s=a.warmup_s,
        cold_mib=a.cold_mib,
    )
    res = run_cost(cfg, a.phase_s) if a.cost else run_one(cfg)
    tmp = a.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(res, indent=1) + "\n")
    tmp.replace(a.out)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["guest"]:
        sys.exit(guest(sys.argv[2:]))
    sys.exit("usage: python -m bench.shift_run guest --contender NAME --out FILE")
