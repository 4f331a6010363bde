"""Clients of the running daemon: ``tierctl status|top|pin|unpin|pause|resume|reload``.

Each talks to the socket API (``--socket PATH``, default ``$TIERCTL_SOCKET`` or
/run/tierctl/tierctl.sock) and prints text, or the raw result with ``--json``. A daemon that is not
running or a refused permission is one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from tierctl.api.client import ApiClient, default_socket
from tierctl.api.protocol import TIERS
from tierctl.cli import args as args_
from tierctl.cli.table import render
from tierctl.fmt import fmt_bytes
from tierctl.k8s import pod_text


def register(sub: Any) -> None:
    p = sub.add_parser(
        "status",
        help="state of the running daemon",
        description="Show the running daemon's state: cycle, samplers, moved pages, profiles, overrides.",
    )
    common_options(p)
    p.set_defaults(func=run_status)

    p = sub.add_parser(
        "top",
        help="managed cgroups of the running daemon, most fast-tier memory first (one shot)",
        description="One table of the cgroups the daemon manages, sorted by bytes in the fast tier.",
    )
    p.add_argument(
        "-n", "--limit", type=args_.count(1, 1 << 20), metavar="N", help="show the first N cgroups only"
    )
    common_options(p)
    p.set_defaults(func=run_top)

    p = sub.add_parser(
        "pin",
        help="pin a cgroup's memory to a tier (needs root or the mutators group)",
        description="Operator override: keep a cgroup's memory in the fast or slow tier, or let the "
        "policy decide (auto). Persisted by the daemon across restarts.",
    )
    p.add_argument("cgroup", metavar="CGROUP", help="cgroup path below the cgroup root, e.g. /app.slice/db")
    p.add_argument("--tier", required=True, choices=TIERS, help="fast, slow or auto")
    common_options(p)
    p.set_defaults(func=run_pin)

    p = sub.add_parser("unpin", help="drop a cgroup's pin", description="Drop a cgroup's pin override.")
    p.add_argument("cgroup", metavar="CGROUP", help="cgroup path below the cgroup root")
    common_options(p)
    p.set_defaults(func=run_unpin)

    for name, help_text in (
        ("pause", "stop moving pages (sampling continues)"),
        ("resume", "resume moving pages after pause"),
        ("reload", "reload profiles (all or nothing: a broken set keeps the running one)"),
    ):
        p = sub.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".")
        common_options(p)
        p.set_defaults(func=run_simple, op=name)


def common_options(p: argparse.ArgumentParser) -> None:
    """--socket and --json, as every client of the daemon takes them."""
    p.add_argument(
        "--socket",
        type=Path,
        metavar="PATH",
        help="the daemon's socket (default $TIERCTL_SOCKET, else /run/tierctl/tierctl.sock)",
    )
    p.add_argument("--json", action="store_true", help="print the daemon's answer as JSON")


def _call(args: argparse.Namespace, op: str, **op_args: Any) -> Any:
    with ApiClient(args.socket or default_socket()) as client:
        return client.call(op, **op_args)


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True))


# ---- status ---------------------------------------------------------------------------------------


def run_status(args: argparse.Namespace) -> int:
    st = _call(args, "status")
    if args.json:
        _print_json(st)
        return 0
    if not isinstance(st, dict):
        print(st)
        return 0
    known = ("state", "version", "cycle", "last_cycle_s", "uptime_s", "tracked_pages", "cycle_seconds")
    lines = [f"{'state':<11}{st.get('state', '?')}"]
    if "version" in st:
        lines.append(f"{'version':<11}{st['version']}")
    if "cycle" in st:
        last = st.get("last_cycle_s")
        extra = f" (last took {last:.3f} s)" if isinstance(last, int | float) else ""
        lines.append(f"{'cycle':<11}{st['cycle']}{extra}")
    if isinstance(st.get("uptime_s"), int | float):
        lines.append(f"{'uptime':<11}{_duration(st['uptime_s'])}")
    if "tracked_pages" in st:
        lines.append(f"{'tracked':<11}{st['tracked_pages']} pages")
    if isinstance(st.get("cycle_seconds"), dict):
        lines.append(f"{'cycle time':<11}{_cycle_times(st['cycle_seconds'])}")
    for key, value in st.items():
        if key not in known:
            label = key.replace("_", " ")
            lines.append(f"{label:<{max(11, len(label) + 2)}}{_inline(value)}")
    print("\n".join(lines))
    return 0


def _cycle_times(h: dict[str, Any]) -> str:
    """'mean 0.012 s, 90 % within 0.025 s (N cycles)' from the status histogram (bounds, counts, sum)."""
    bounds, counts = h.get("bounds") or [], h.get("counts") or []
    n = sum(c for c in counts if isinstance(c, int))
    if not n or len(counts) != len(bounds) + 1:
        return "-"
    acc, p90 = 0, "more than the largest bucket"
    for bound, c in zip(bounds, counts, strict=False):
        acc += c
        if acc >= 0.9 * n:
            p90 = f"{bound:g} s"
            break
    return f"mean {float(h.get('sum', 0.0)) / n:.3f} s, 90 % within {p90} ({n} cycles)"


def _inline(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={_inline(v)}" for k, v in value.items()) or "-"
    if isinstance(value, list):
        return ", ".join(_inline(v) for v in value) or "-"
    if isinstance(value, float):
        return f"{value:g}"
    return "-" if value is None else str(value)


def _duration(seconds: float) -> str:
    s = int(seconds)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    if d:
        return f"{d}d {h}h {m}m"
    if h:
        return f"{h}h {m}m {s}s"
    return f"{m}m {s}s" if m else f"{s}s"


# ---- top ------------------------------------------------------------------------------------------


def _fast_bytes(cg: dict[str, Any]) -> float:
    v = cg.get("fast_bytes")
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else -1.0


def run_top(args: argparse.Namespace) -> int:
    cgroups = _call(args, "cgroups")
    rows_in = [c for c in cgroups if isinstance(c, dict)] if isinstance(cgroups, list) else []
    rows_in.sort(key=lambda c: (-_fast_bytes(c), str(c.get("path", ""))))
    if args.limit is not None:
        rows_in = rows_in[: max(args.limit, 0)]
    if args.json:
        _print_json(rows_in)
        return 0
    if not rows_in:
        print("no managed cgroups")
        return 0
    pods = any(isinstance(c.get("pod"), dict) for c in rows_in)  # a pod column only on a Kubernetes node
    rows = []
    for c in rows_in:
        ratio = c.get("est_fast_hit_ratio")
        override = c.get("override")
        rows.append(
            (
                c.get("path", "?"),
                *([pod_text(c.get("pod")) or "-"] if pods else []),
                c.get("profile") or "-",
                _inline(override) if override else "-",
                fmt_bytes(c.get("fast_bytes")),
                fmt_bytes(c.get("slow_bytes")),
                fmt_bytes(c.get("hot_bytes")),
                f"{ratio:.3f}" if isinstance(ratio, int | float) else "-",
            )
        )
    headers = ("cgroup", *(["pod"] if pods else []), "profile", "override", "fast", "slow", "hot", "est hit")
    print(render(headers, rows, right=[False] * (4 if pods else 3) + [True] * 4))
    return 0


# ---- mutations ------------------------------------------------------------------------------------


def run_pin(args: argparse.Namespace) -> int:
    result = _call(args, "pin", path=args.cgroup, tier=args.tier)
    return _done(args, result, f"pinned {args.cgroup} to {args.tier}", detail=False)


def run_unpin(args: argparse.Namespace) -> int:
    result = _call(args, "unpin", path=args.cgroup)
    return _done(args, result, f"unpinned {args.cgroup}", detail=False)


def run_simple(args: argparse.Namespace) -> int:
    result = _call(args, args.op)
    verb = {"pause": "paused", "resume": "resumed", "reload": "reloaded"}[args.op]
    return _done(args, result, verb)


def _done(args: argparse.Namespace, result: Any, text: str, *, detail: bool = True) -> int:
    if args.json:
        _print_json(result)
        return 0
    extra = _inline(result) if detail and isinstance(result, dict) and result else ""
    print(f"{text} ({extra})" if extra else text)
    return 0
