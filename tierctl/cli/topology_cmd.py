"""``tierctl topology``: NUMA nodes, memory tiers, distances and tiering knobs, like ``numactl -H``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from tierctl.cli.table import render
from tierctl.fmt import fmt_bytes
from tierctl.kernel.idlist import format_list
from tierctl.kernel.roots import LIVE_PROC, LIVE_SYS
from tierctl.kernel.topology import KernelTopology, SysfsTopology

COLUMNS = (
    "node",
    "tier",
    "memory tier",
    "cpus",
    "size",
    "free",
    "latency ns",
    "bandwidth",
    "demotes to",
)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "topology",
        help="show NUMA nodes with their memory tier, capacity, HMAT figures and demotion target",
        description=(
            "Read the NUMA topology from sysfs: per node its tier rank (0 = fastest), the kernel's "
            "memory tier, CPUs, capacity and free memory, HMAT latency/bandwidth when the firmware "
            "reports them, and its demotion target; then the distance matrix, where the tier ranks "
            "came from, and the kernel's tiering knobs (demotion, NUMA balancing)."
        ),
    )
    p.add_argument("--json", action="store_true", help="print one JSON object with everything")
    p.add_argument(
        "--sys-root", type=Path, default=LIVE_SYS, metavar="PATH", help="sysfs root (default /sys)"
    )
    p.add_argument(
        "--proc-root", type=Path, default=LIVE_PROC, metavar="PATH", help="procfs root (default /proc)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    kt = SysfsTopology(args.sys_root, args.proc_root).read()
    if args.json:
        print(json.dumps(kt.to_json(), indent=2))
    else:
        print(describe(kt))
    return 0


def describe(kt: KernelTopology) -> str:
    t = kt.topology
    rows = []
    for n in t.nodes:
        target = t.demotion_targets.get(n.id)
        preferred = kt.demotion_preferred.get(n.id, [])
        rows.append(
            (
                n.id,
                n.tier,
                kt.memory_tier_of(n.id) or "-",
                _ids(n.cpus) or "-",
                fmt_bytes(n.capacity_pages * t.page_size),
                fmt_bytes(n.free_pages * t.page_size),
                "-" if n.latency_ns is None else f"{n.latency_ns:g}",
                _bandwidth(n.bandwidth_mbps),
                "-" if target is None else (_ids(preferred) if len(preferred) > 1 else str(target)),
            )
        )
    lines = [
        render(
            COLUMNS,
            rows,
            right=[True, True, False, False, True, True, True, True, False],
        ),
        "",
        "node distances:",
        "node " + "".join(f"{i:>4}" for i in kt.node_ids),
    ]
    for i in kt.node_ids:
        lines.append(f"{i:>3}: " + "".join(f"{d:>4}" for d in kt.distances[i]))
    lines.append("")
    tiers = ", ".join(f"{name} = {_ids(nodes) or '(empty)'}" for name, nodes in kt.memory_tiers.items())
    lines.append(f"tier source   {kt.tier_source}")
    if tiers:
        lines.append(f"memory tiers  {tiers}")
    if len({n.tier for n in t.nodes}) == 1 and len(t.nodes) > 1:
        lines.append("              (one tier: nothing to demote into)")
    k = kt.knobs
    bal = _val(k.get("numa_balancing"))
    if k.get("numa_balancing") is not None:
        bal += f" ({k.get('numa_balancing_mode')})"
    lines.append(
        "knobs         "
        f"demotion_enabled {_val(k.get('demotion_enabled'))}, numa_balancing {bal}, "
        f"promote rate limit {_val(k.get('numa_balancing_promote_rate_limit_MBps'))} MB/s"
    )
    return "\n".join(lines)


def _bandwidth(mib_s: float | None) -> str:
    """HMAT bandwidth (sysfs gives MiB/s) as bytes per second: 20.0G/s."""
    return "-" if mib_s is None else f"{fmt_bytes(mib_s * 2**20)}/s"


def _ids(ids: Any) -> str:
    """[0, 1, 2, 5] -> "0-2,5" (kernel list syntax)."""
    return format_list(ids)


def _val(v: Any) -> str:
    if v is None:
        return "(absent)"
    if isinstance(v, bool):
        return str(v).lower()
    return str(v)
