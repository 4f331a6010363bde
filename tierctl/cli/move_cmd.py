"""``tierctl move PID --to fast|slow|NODE``: migrate a process's resident pages."""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import numpy as np

from tierctl.cli import args as args_
from tierctl.cli.kernel_args import add_roots, pid_arg
from tierctl.core.plan import DEMOTE, PROMOTE, Plan
from tierctl.errors import InputError
from tierctl.fmt import fmt_bytes
from tierctl.kernel.mover import KernelMover, ProcessPages
from tierctl.kernel.numa import NumaSyscalls
from tierctl.kernel.pages import AddressRange, present_pages
from tierctl.kernel.procfs import ProcFS
from tierctl.kernel.thp import KpageflagsHugeResolver
from tierctl.kernel.topology import SysfsTopology


def register(sub: Any) -> None:
    p = sub.add_parser(
        "move",
        help="migrate a process's pages to the fast or slow tier or a node",
        description="Move the resident pages of PID (all movable mappings, or --range) "
        "with move_pages and report the outcome of every page.",
    )
    p.add_argument("pid", metavar="PID")
    p.add_argument(
        "--to",
        required=True,
        metavar="fast|slow|NODE",
        help="fast: the top tier's roomiest node; slow: the demotion target; or a node id",
    )
    p.add_argument("--range", metavar="START-END", help="only pages in [START, END) (hex or decimal)")
    p.add_argument(
        "--rate", type=args_.RATE_MBPS, metavar="MBPS", help="bandwidth cap in MB/s (default: none)"
    )
    p.add_argument(
        "--batch",
        type=args_.count(1, 1 << 20),
        default=16384,
        metavar="PAGES",
        help="pages per syscall (default 16384)",
    )
    p.add_argument("--json", action="store_true")
    add_roots(p)
    p.set_defaults(func=run)


def target_node(spec: str, topo_nodes: list[int], promotion: int, demotion: int | None) -> int:
    if spec == "fast":
        return promotion
    if spec == "slow":
        if demotion is None:
            raise InputError("this machine has one tier only: nothing is slow", "--to")
        return demotion
    try:
        node = int(spec)
    except ValueError:
        raise InputError(f"expected fast, slow or a node id, got {spec!r}", "--to") from None
    if node not in topo_nodes:
        raise InputError(f"unknown node {node} (online: {', '.join(map(str, topo_nodes))})", "--to")
    return node


def run(args: argparse.Namespace) -> int:
    pid = pid_arg(args.pid)
    procfs = ProcFS(args.proc_root)
    ktopo = SysfsTopology(args.sys_root, args.proc_root).read()
    topo = ktopo.topology
    ids = [n.id for n in topo.nodes]
    demotion = topo.demotion_target() if topo.slow_nodes else None
    dest = target_node(args.to, ids, topo.promotion_target(), demotion)
    within = AddressRange.parse(args.range) if args.range else None
    addrs = present_pages(procfs, pid, within, page_size=procfs.page_size)
    n = addrs.shape[0]
    kind = PROMOTE if topo.node(dest).tier == min(x.tier for x in topo.nodes) else DEMOTE
    plan = Plan(np.arange(n, dtype=np.int64), np.full(n, dest, np.int16), np.full(n, kind, np.uint8))
    resolver = KpageflagsHugeResolver(procfs, page_size=procfs.page_size) if os.geteuid() == 0 else None
    mover = KernelMover(
        NumaSyscalls(),
        ProcessPages(pid, addrs),
        page_size=procfs.page_size,
        batch_pages=args.batch,
        rate_mbps=args.rate,
        huge=resolver,
    )
    t0 = time.monotonic()
    report = mover.apply(plan, budget_pages=max(n, 1) * 2)
    dt = time.monotonic() - t0
    moved_bytes = report.counts["moved"] * procfs.page_size
    out = {
        "pid": pid,
        "to": dest,
        "pages": n,
        "outcomes": report.counts,
        "seconds": dt,
        "moved_mib": moved_bytes / 2**20,
        "mb_per_s": moved_bytes / 1e6 / dt if dt > 0 else None,
        "thp": resolver.reason or "detected via kpageflags" if resolver else "not detected (needs root)",
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    counts = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in report.counts.items() if v)
    rate = f", {out['mb_per_s']:.0f} MB/s" if out["mb_per_s"] else ""
    size = fmt_bytes(n * procfs.page_size)
    print(
        f"pid {pid}: {n} resident pages ({size}) -> node {dest}: {counts or 'nothing to do'} "
        f"({fmt_bytes(moved_bytes)} moved in {dt:.2f} s{rate})"
    )
    return 0
