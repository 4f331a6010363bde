"""``tierctl samplers`` and ``tierctl sample``: what can sample here, and a sampling run."""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from tierctl.cli import args as args_
from tierctl.cli.kernel_args import add_roots, pid_arg
from tierctl.cli.table import render
from tierctl.errors import InputError, NoSuchProcessError, TierctlError
from tierctl.kernel.cgroupfs import CgroupFS
from tierctl.kernel.numa import NumaSyscalls
from tierctl.kernel.procfs import ProcFS
from tierctl.kernel.roots import LIVE_CGROUP, Roots
from tierctl.samplers.base import RAW_SAMPLE_DTYPE, Availability, Health, Targets
from tierctl.samplers.chain import SamplerChain
from tierctl.samplers.registry import SAMPLERS, make_sampler, make_samplers

PAGE_SHIFT = 12


def register(sub: Any) -> None:
    p = sub.add_parser(
        "samplers",
        help="which samplers work here, and why the others do not",
        description="Probe every sampler (no side effects) and say which can run here and why the others "
        "cannot. The reasons wrap to the terminal's width ($COLUMNS when set); --json keeps each on one "
        "line.",
    )
    p.add_argument("--json", action="store_true", help="print a JSON list: name, available, reason")
    p.set_defaults(func=run_samplers)

    q = sub.add_parser(
        "sample",
        help="sample page accesses of a process or cgroup for a while",
        description="Run the best available sampler (or --source) on a process or a "
        "cgroup and report the hottest pages and the totals per node.",
    )
    who = q.add_mutually_exclusive_group()
    who.add_argument("--pid", help="process id")
    who.add_argument(
        "--cgroup", metavar="PATH", help="cgroup path below the cgroup root, e.g. system.slice/x"
    )
    q.add_argument("--source", metavar="NAME", help=f"one sampler: {', '.join(SAMPLERS)} (default: the best)")
    q.add_argument("--seconds", type=args_.SECONDS, help="how long to sample")
    q.add_argument(
        "--top", type=args_.count(1, 1 << 20), default=10, metavar="N", help="pages to list (default 10)"
    )
    q.add_argument("--regions", action="store_true", help="aggregate per 2 MiB region instead of per page")
    q.add_argument("--cgroup-root", type=Path, default=LIVE_CGROUP, help=argparse.SUPPRESS)
    add_roots(q)
    q.add_argument(
        "--print-bpf",
        action="store_true",
        help="print the BPF program(s) the sampler would compile (with --source: that one) and exit",
    )
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=run_sample)


def _roots(args: argparse.Namespace) -> Roots:
    """The kernel's interfaces where the (hidden) root flags put them: the live places by default."""
    return Roots(proc=args.proc_root, sys=args.sys_root, cgroup=args.cgroup_root)


def _probe_all() -> list[tuple[str, Availability]]:
    out = []
    for name in SAMPLERS:
        try:
            avail = make_sampler(name).probe()
        except TierctlError as e:
            avail = Availability(False, str(e))
        out.append((name, avail))
    return out


def run_samplers(args: argparse.Namespace) -> int:
    probes = _probe_all()
    if args.json:
        print(json.dumps([{"name": n, "available": a.ok, "reason": a.reason} for n, a in probes], indent=2))
        return 0
    print(
        render(
            ("sampler", "available", "reason"),
            [(n, "yes" if a.ok else "no", a.reason) for n, a in probes],
            right=[False, False, False],
            max_width=shutil.get_terminal_size().columns,  # $COLUMNS, the terminal, else 80
        )
    )
    print("\n(overhead: per run in `tierctl sample`, continuously in the daemon)")
    return 0


def _targets(args: argparse.Namespace) -> tuple[Targets, list[int], str]:
    if args.pid is not None:
        pid = pid_arg(args.pid)
        if not ProcFS(args.proc_root).exists(pid):
            raise NoSuchProcessError(f"no process {pid}", "--pid")
        return Targets(pids=(pid,)), [pid], f"pid {pid}"
    fs = CgroupFS(args.cgroup_root, proc_root=args.proc_root)
    pids = fs.pids(args.cgroup)
    if not pids:
        raise InputError("the cgroup has no processes to sample", args.cgroup)
    cg_id = fs.cgroup_id(args.cgroup)
    return Targets(pids=tuple(pids), cgroup_ids=(cg_id,) if cg_id else ()), pids, f"cgroup {args.cgroup}"


def run_sample(args: argparse.Namespace) -> int:
    if args.print_bpf:
        from tierctl.samplers.bpf_compile import PROGRAMS, print_bpf

        names = [args.source] if args.source else [aliases[0] for aliases in PROGRAMS.values()]
        for name in names:
            print(print_bpf(name))
        return 0
    if args.pid is None and args.cgroup is None:
        raise InputError("give --pid PID or --cgroup PATH (or --print-bpf)", "tierctl sample")
    if args.seconds is None:
        raise InputError("required", "--seconds")
    if args.seconds <= 0:
        raise InputError(f"must be > 0, got {args.seconds}", "--seconds")
    targets, pids, what = _targets(args)
    # a one-shot command: its own BPF host (record under /run/tierctl), below the roots
    samplers = make_samplers([args.source] if args.source else list(SAMPLERS), roots=_roots(args))
    chain = SamplerChain(samplers, max_running=1)
    chain.start(targets)
    if not chain.running:
        reasons = "; ".join(f"{s.name}: {s.reason}" for s in chain.status())
        raise InputError(f"no sampler could start ({reasons})", what)
    parts = []
    events: list[str] = []
    t_end = time.monotonic() + args.seconds
    try:
        while (left := t_end - time.monotonic()) > 0:
            time.sleep(min(1.0, left))
            parts.append(chain.drain())
            events += chain.watchdog()
        parts.append(chain.drain())
    finally:
        status = chain.status()
        chain.stop()
    rows = np.concatenate(parts) if parts else np.zeros(0, RAW_SAMPLE_DTYPE)
    rows = rows[np.isin(rows["pid"], np.array(pids, dtype=np.uint32))]
    out = summarize(rows, top=args.top, regions=args.regions)
    # the sampler that ran (status was taken before stop); if it was detached mid-run, that one
    used = next((s for s in status if s.state == "running"), None) or next(
        s for s in status if s.state == "detached"
    )
    out.update(
        {
            "target": what,
            "sampler": used.name,
            "reason": used.reason,
            "seconds": args.seconds,
            "health": _health(used.health),
            "watchdog": events,
        }
    )
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(
        f"{what}: {out['samples']} samples of {out['pages']} pages in {args.seconds:g} s by {used.name} "
        f"({used.reason})"
    )
    print(
        render(
            ("node", "pages", "samples"), [(n, v["pages"], v["samples"]) for n, v in out["per_node"].items()]
        )
    )
    unit = "region (2 MiB)" if args.regions else "page"
    print()
    print(
        render(
            ("pid", unit, "node", "samples"),
            [(t["pid"], f"{t['address']:#x}", t["node"], t["samples"]) for t in out["top"]],
        )
    )
    h = out["health"]
    print(
        f"\ncost: {h['cpu_seconds']:.3f} s user CPU, {h['bpf_run_ns'] / 1e6:.1f} ms in BPF, "
        f"{h['dropped']} dropped" + (f"; watchdog: {'; '.join(events)}" if events else "")
    )
    return 0


def _health(h: Health) -> dict[str, Any]:
    return {
        "samples": h.samples,
        "dropped": h.dropped,
        "cpu_seconds": h.cpu_seconds,
        "bpf_run_ns": h.bpf_run_ns,
        "notes": list(h.notes),
    }


def summarize(
    rows: np.ndarray, *, top: int, regions: bool, numa: NumaSyscalls | None = None
) -> dict[str, Any]:
    """Aggregate raw rows per (pid, page), find each page's node, total per node, list the top."""
    if rows.shape[0] == 0:
        return {"samples": 0, "pages": 0, "per_node": {}, "top": []}
    numa = numa or NumaSyscalls()
    key = (rows["pid"].astype(np.uint64) << np.uint64(40)) | rows["vpn"]
    uniq, inv = np.unique(key, return_inverse=True)
    counts = np.bincount(inv.reshape(-1), weights=rows["count"].astype(np.float64)).astype(np.int64)
    pid = (uniq >> np.uint64(40)).astype(np.int64)
    vpn = uniq & np.uint64((1 << 40) - 1)
    node = np.full(uniq.shape[0], -1, dtype=np.int64)
    for p in np.unique(pid):
        m = pid == p
        with contextlib.suppress(NoSuchProcessError):  # exited: node stays unknown (-1)
            node[m] = numa.query(int(p), vpn[m] << np.uint64(PAGE_SHIFT))
    node[node < 0] = -1
    per_node = {}
    for n in np.unique(node):
        m = node == n
        per_node[str(int(n)) if n >= 0 else "unknown"] = {
            "pages": int(m.sum()),
            "samples": int(counts[m].sum()),
        }
    if regions:
        rkey = (pid.astype(np.uint64) << np.uint64(40)) | (vpn >> np.uint64(9))
        ru, rinv = np.unique(rkey, return_inverse=True)
        rcount = np.bincount(rinv.reshape(-1), weights=counts.astype(np.float64)).astype(np.int64)
        order = np.argsort(-rcount, kind="stable")[:top]
        top_rows = [
            {
                "pid": int(ru[i] >> np.uint64(40)),
                "address": int((ru[i] & np.uint64((1 << 40) - 1)) << np.uint64(PAGE_SHIFT + 9)),
                "node": _majority_node(node, rinv.reshape(-1), int(i)),
                "samples": int(rcount[i]),
            }
            for i in order
        ]
    else:
        order = np.argsort(-counts, kind="stable")[:top]
        top_rows = [
            {
                "pid": int(pid[i]),
                "address": int(vpn[i]) << PAGE_SHIFT,
                "node": int(node[i]),
                "samples": int(counts[i]),
            }
            for i in order
        ]
    return {"samples": int(counts.sum()), "pages": int(uniq.shape[0]), "per_node": per_node, "top": top_rows}


def _majority_node(node: np.ndarray, region_of_page: np.ndarray, region: int) -> int:
    members = node[region_of_page == region]
    vals, cnt = np.unique(members, return_counts=True)
    return int(vals[np.argmax(cnt)])
