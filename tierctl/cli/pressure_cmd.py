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


def describe(st: dict[str, Any]) -> list[str]:
    if not st.get("active"):
        return [f"pressure ladder: {st.get('mode', '?')} ({st.get('reason', 'inactive')})"]
    lines = [f"pressure ladder: {st['mode']}"]
    m, target = st.get("machine"), st.get("target_ratio", 0.0)
    if m:
        share = m["used"] / m["total"] if m["total"] else 0.0
        state = "ABOVE target" if share > target else "under target"
        lines.append(
            f"memory: {fmt_bytes(m['used'])} of {fmt_bytes(m['total'])} used ({share:.1%}), "
            f"target {target:.0%}: {state}"
        )
    for path, n in sorted((st.get("notified") or {}).items()):
        lines.append(f"notified: {path} to shed {fmt_bytes(n['bytes'])} by {n['deadline']:.0f}")
    rows = [
        [path, fmt_bytes(w["estimate"]) if w.get("estimate") is not None else "-", w.get("ended") or "-"]
        for path, w in sorted((st.get("working_sets") or {}).items())
    ]
    if rows:
        lines.append(render(["cgroup", "working set", "last probe ended by"], rows))
    for a in st.get("last_actions") or []:
        lines.append(f"{a['kind']}: {a['cgroup']} {fmt_bytes(a['bytes'])} ({a['reason']})")
    return lines
