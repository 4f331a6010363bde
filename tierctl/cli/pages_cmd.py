"""``tierctl pages PID``: where a process's resident memory is, per node and tier."""

from __future__ import annotations

import argparse
import json
from typing import Any

from tierctl.cli.kernel_args import add_roots, pid_arg
from tierctl.cli.table import render
from tierctl.fmt import fmt_bytes
from tierctl.kernel.procfs import ProcFS
from tierctl.kernel.topology import SysfsTopology


def register(sub: Any) -> None:
    p = sub.add_parser(
        "pages",
        help="resident pages of a process per node and tier",
        description="Resident memory of PID per NUMA node and memory tier, from the "
        "kernel's own numa_maps; --maps breaks it down by mapping.",
    )
    p.add_argument("pid", metavar="PID")
    p.add_argument("--maps", action="store_true", help="one row per mapping")
    p.add_argument("--json", action="store_true")
    add_roots(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    pid = pid_arg(args.pid)
    procfs = ProcFS(args.proc_root)
    topo = SysfsTopology(args.sys_root, args.proc_root).read()
    tier_of = {n.id: n.tier for n in topo.topology.nodes}
    nodes = sorted(tier_of)
    rows = []
    total_bytes = dict.fromkeys(nodes, 0)
    for m in procfs.numa_maps(pid):
        per = m.bytes_per_node()
        if not per:
            continue
        for n, b in per.items():
            total_bytes[n] = total_bytes.get(n, 0) + b
        rows.append(
            {
                "start": m.start,
                "file": m.file or ("[" + ",".join(m.tags) + "]" if m.tags else ""),
                "policy": m.policy,
                "kernelpagesize_kb": m.kernelpagesize_kb,
                "bytes_per_node": {str(n): per.get(n, 0) for n in nodes},
            }
        )
    by_tier: dict[int, int] = {}
    for n, b in total_bytes.items():
        by_tier[tier_of.get(n, -1)] = by_tier.get(tier_of.get(n, -1), 0) + b
    out = {
        "pid": pid,
        "comm": procfs.comm(pid),
        "page_size": procfs.page_size,
        "bytes_per_node": {str(n): b for n, b in total_bytes.items()},
        "bytes_per_tier": {str(t): b for t, b in sorted(by_tier.items())},
        "tier_of_node": {str(n): t for n, t in tier_of.items()},
    }
    if args.maps:
        out["maps"] = rows
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    total = sum(total_bytes.values()) or 1
    print(f"pid {pid} ({out['comm']}): {fmt_bytes(sum(total_bytes.values()))} resident")
    print(
        render(
            ("node", "tier", "resident", "share"),
            [(n, tier_of.get(n, "?"), fmt_bytes(b), f"{b / total:.1%}") for n, b in total_bytes.items()],
        )
    )
    if args.maps:
        print()
        print(
            render(
                ("start", *(f"N{n}" for n in nodes), "page", "policy", "mapping"),
                [
                    (
                        f"{r['start']:#x}",
                        *(fmt_bytes(r["bytes_per_node"][str(n)]) for n in nodes),
                        fmt_bytes(r["kernelpagesize_kb"] * 1024),
                        r["policy"],
                        r["file"],
                    )
                    for r in rows
                ],
                right=[False, *([True] * len(nodes)), True, False, False],
            )
        )
    return 0
