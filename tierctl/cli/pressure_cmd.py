"""``tierctl pressure``: the running daemon's memory-pressure ladder (docs/pressure.md)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from tierctl.api.client import ApiClient, default_socket
from tierctl.cli.client_cmds import common_options
from tierctl.cli.table import render
from tierctl.fmt import fmt_bytes


def register(sub: Any) -> None:
    p = sub.add_parser(
        "pressure",
        help="memory pressure: the machine against its target, working sets, the ladder's last actions",
        description="The running daemon's memory-pressure ladder: memory used against the target, the "
        "current episode (notifications and their deadlines), each cgroup's working-set estimate and "
        "the last actions (docs/pressure.md).",
    )
    common_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with ApiClient(args.socket or default_socket()) as client:
        st = client.call("pressure")
    if args.json:
        print(json.dumps(st, indent=2, sort_keys=True))
        return 0
    print("\n".join(describe(st)))
    return 0


KINDS = ("anon", "file", "shmem", "kernel", "sock", "swap", "zswap")


def _psi(psi: dict[str, Any] | None) -> str:
    if not psi:
        return "-"
    full = psi.get("full_avg10")
    return f"{psi['some_avg10']:.1f}/{full:.1f}" if full is not None else f"{psi['some_avg10']:.1f}"


def _size(v: Any) -> str:
    return "-" if v is None else fmt_bytes(int(v))


def cgroup_table(cgroups: dict[str, dict[str, Any]], working_sets: dict[str, Any]) -> str:
    """One row per managed cgroup: state, priority, charge, memory by kind (kinds no cgroup has on
    this kernel left out), by node, PSI some/full avg10 %, working set and how its probe ended."""
    kinds = [k for k in KINDS if any((c.get("kinds") or {}).get(k) is not None for c in cgroups.values())]
    nodes = sorted({n for c in cgroups.values() for n in c.get("nodes") or {}}, key=int)
    headers = ["cgroup", "state", "prio", "charge", *kinds, *(f"node{n}" for n in nodes)]
    headers += ["PSI %", "working set", "probe ended by"]
    rows = []
    for path, c in sorted(cgroups.items()):
        k, nd = c.get("kinds") or {}, c.get("nodes") or {}
        ws = working_sets.get(path) or {}
        rows.append(
            [path, c["state"], c["priority"], fmt_bytes(c["current"])]
            + [_size(k.get(name)) for name in kinds]
            + [_size(nd.get(n)) for n in nodes]
            + [_psi(c.get("psi")), _size(c.get("working_set")), ws.get("ended") or "-"]
        )
    return render(headers, rows, right=[False, False] + [True] * (len(headers) - 3) + [False])


def describe(st: dict[str, Any]) -> list[str]:
    if not st.get("active"):
        return [f"pressure ladder: {st.get('mode', '?')} ({st.get('reason', 'inactive')})"]
    lines = [f"pressure ladder: {st['mode']}"]
    m, target = st.get("machine"), st.get("target_ratio", 0.0)
    if m:
        share = m["used"] / m["total"] if m["total"] else 0.0
        state = "ABOVE target" if share > target else "under target"
        psi = f", PSI some/full avg10 {_psi(m['psi'])} %" if m.get("psi") else ""
        lines.append(
            f"memory: {fmt_bytes(m['used'])} of {fmt_bytes(m['total'])} used ({share:.1%}), "
            f"target {target:.0%}: {state}{psi}"
        )
    for path, n in sorted((st.get("notified") or {}).items()):
        lines.append(f"notified: {path} to shed {fmt_bytes(n['bytes'])} by {n['deadline']:.0f}")
    cgroups = st.get("cgroups") or {}
    if cgroups:
        lines.append(cgroup_table(cgroups, st.get("working_sets") or {}))
    for a in st.get("last_actions") or []:
        lines.append(f"{a['kind']}: {a['cgroup']} {fmt_bytes(a['bytes'])} ({a['reason']})")
    return lines
