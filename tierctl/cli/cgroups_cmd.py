"""``tierctl cgroups``: memory per cgroup and per NUMA node, with memory pressure, and the Kubernetes pod
of each cgroup that is one's (docs/pods.md)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tierctl.cli import args as args_
from tierctl.cli.table import render
from tierctl.errors import InputError, UnavailableError
from tierctl.fmt import fmt_bytes
from tierctl.k8s import PodResolver, pod_text
from tierctl.kernel import kubelet
from tierctl.kernel.cgroupfs import CgroupFS
from tierctl.kernel.roots import LIVE_CGROUP, LIVE_PROC


@dataclass(frozen=True)
class Row:
    path: str  # "/" for the root, "/a/b" below it
    memory_current: int | None  # bytes; None for the cgroup v2 root (it has no memory.current)
    node_bytes: dict[int, int]  # anon + file per node, descendants included
    some_avg10: float | None  # percent; None where the kernel has no per-cgroup PSI (cgroup v1)
    full_avg10: float | None
    pod: dict[str, Any] | None = None  # as in the daemon's cgroup rows (service/contract.py)

    def to_json(self) -> dict[str, Any]:
        out = {
            "path": self.path,
            "memory_current": self.memory_current,
            "node_bytes": {str(n): b for n, b in sorted(self.node_bytes.items())},
            "some_avg10": self.some_avg10,
            "full_avg10": self.full_avg10,
        }
        if self.pod is not None:
            out["pod"] = self.pod
        return out


def register(sub: Any) -> None:
    p = sub.add_parser(
        "cgroups",
        help="memory of each cgroup per NUMA node, with memory pressure",
        description=(
            "List the cgroups of the memory hierarchy (cgroup v2, or v1 on hybrid hosts): memory "
            "charged (memory.current / memory.usage_in_bytes, descendants included), anon + file "
            "bytes per NUMA node (memory.numa_stat) and memory pressure (PSI 'some' and 'full', "
            "10 s average, percent). The root comes first with the system-wide pressure, then the "
            "other cgroups by memory, largest first. Cgroups without the memory controller are "
            "not listed. On a Kubernetes node, the pod of each pod cgroup: its UID from the kubelet's "
            "cgroup names, its namespace and name from the API server with --node-name."
        ),
    )
    p.add_argument("--json", action="store_true", help="print a JSON list of objects, one per cgroup")
    p.add_argument("--all", action="store_true", help="also list cgroups that use no memory")
    p.add_argument(
        "--cgroup-root",
        type=Path,
        default=LIVE_CGROUP,
        metavar="PATH",
        help="cgroup mount point (default /sys/fs/cgroup)",
    )
    p.add_argument(
        "--proc-root",
        type=Path,
        default=LIVE_PROC,
        metavar="PATH",
        help="procfs for the system-wide pressure (default /proc; for captured trees)",
    )
    args_.pod_options(
        p,
        node_help="read the namespace and name of this node's pods from the API server (default "
        "$TIERCTL_NODE_NAME; credentials: --kubeconfig, $KUBECONFIG or the in-cluster service account)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.cgroup_root.is_dir():
        raise InputError("not a directory", str(args.cgroup_root))
    drv = kubelet.driver(args.kubelet_cgroup_driver, "--kubelet-cgroup-driver")
    pods = PodResolver.from_config(drv, args.node_name, args.kubeconfig)
    if (why := pods.list_once()) is not None:
        print(f"tierctl cgroups: {why}", file=sys.stderr)
    rows = collect(CgroupFS(args.cgroup_root, proc_root=args.proc_root), show_empty=args.all, pods=pods)
    if args.json:
        print(json.dumps([r.to_json() for r in rows], indent=2))
    else:
        print(describe(rows))
    return 0


def collect(cg: CgroupFS, *, show_empty: bool = False, pods: PodResolver | None = None) -> list[Row]:
    """The root's row, then every other cgroup with memory accounting, largest first; with ``pods``,
    the pod of each cgroup that is one's."""
    root: Row | None = None
    rows: list[Row] = []
    for path in cg.list():
        try:
            if not cg.has_memory(path):
                continue
            row = _row(cg, path, pods)
        except InputError:  # the cgroup went away while we read it
            continue
        if not path:
            root = row
        elif show_empty or row.memory_current:
            rows.append(row)
    rows.sort(key=lambda r: (-(r.memory_current or 0), r.path))
    return ([root] if root else []) + rows


def _row(cg: CgroupFS, path: str, pods: PodResolver | None = None) -> Row:
    try:
        current: int | None = cg.memory_current(path)
    except UnavailableError:
        if path:
            raise
        current = None  # the cgroup v2 root
    try:
        nodes = cg.node_memory(path)
    except UnavailableError:  # no memory.numa_stat: a kernel without NUMA
        nodes = {}
    psi = cg.pressure(path)
    return Row(
        path="/" + path,
        memory_current=current,
        node_bytes=nodes,
        some_avg10=psi.some.avg10 if psi.some else None,
        full_avg10=psi.full.avg10 if psi.full else None,
        pod=pods.row("/" + path) if pods is not None and path else None,
    )


def describe(rows: list[Row]) -> str:
    nodes = sorted({n for r in rows for n in r.node_bytes})
    pods = any(r.pod is not None for r in rows)  # a pod column only on a Kubernetes node
    headers = ["cgroup", *(["pod"] if pods else []), "memory", *(f"N{n}" for n in nodes)]
    headers += ["some avg10", "full avg10"]
    table = [
        (
            r.path,
            *([pod_text(r.pod) or "-"] if pods else []),
            fmt_bytes(r.memory_current),
            *(fmt_bytes(r.node_bytes.get(n)) for n in nodes),
            _pct(r.some_avg10),
            _pct(r.full_avg10),
        )
        for r in rows
    ]
    left = 2 if pods else 1
    return render(headers, table, right=[False] * left + [True] * (len(headers) - left))


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"
