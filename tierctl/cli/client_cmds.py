"""Clients of the running daemon: ``tierctl status|top|pin|unpin|quota|migrate|pause|resume|reload``.

Each talks to the socket API (``--socket PATH``, default ``$TIERCTL_SOCKET`` or
/run/tierctl/tierctl.sock) and prints text, or the raw result with ``--json``. A daemon that is not
running is one line on stderr and exit code 3, a refused permission exit code 4.

The mutations' subcommands are made from the API's declaration (``tierctl.api.protocol.OPS``: each
op's ``cli`` names its help, description and what a plain success prints); this module adds only each
one's arguments and how it runs (``MUTATION_CMDS``).

``pin``, ``unpin``, ``quota`` and ``migrate`` print the request's real outcome (``service.outcomes``:
accepted, in progress and what it waits for, done with the pages moved, stuck, impossible);
``--wait [SECONDS]`` follows it, one line per change of state, until done, impossible or stuck (exit
0 when done, 1 otherwise or when the time runs out).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from tierctl.api.client import ApiClient, default_socket
from tierctl.api.protocol import OPS, TIERS
from tierctl.cli import args as args_
from tierctl.cli.table import render
from tierctl.errors import InputError
from tierctl.fmt import fmt_amount, fmt_bytes
from tierctl.k8s import pod_text

ALL = "*"  # the outcome of a migration pass over every cgroup (service.outcomes.ALL)


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

    for spec in OPS.values():
        if spec.cli is None:
            continue
        p = sub.add_parser(spec.name, help=spec.cli.help, description=spec.cli.description)
        add_args, run = MUTATION_CMDS.get(spec.name, (_no_arguments, run_simple))
        add_args(p)
        common_options(p)
        p.set_defaults(func=run, op=spec.name)


def common_options(p: argparse.ArgumentParser) -> None:
    """--socket and --json, as every client of the daemon takes them."""
    p.add_argument(
        "--socket",
        type=Path,
        metavar="PATH",
        help="the daemon's socket (default $TIERCTL_SOCKET, else /run/tierctl/tierctl.sock)",
    )
    p.add_argument("--json", action="store_true", help="print the daemon's answer as JSON")


def wait_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--wait",
        nargs="?",
        const=60.0,
        type=args_.SECONDS,
        metavar="SECONDS",
        help="follow the outcome until done, impossible or stuck (at most SECONDS, default 60)",
    )


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
    print("\n".join(status_lines(st)))
    return 0


SHOWN = (
    "state", "version", "api", "cycle", "last_cycle_s", "last_cycle_age_s", "uptime_s", "tracked_pages",
    "cycle_seconds", "moved", "samplers", "profiles", "overrides", "outcomes", "pods", "reload_failures",
)  # fmt: skip


def status_lines(st: dict[str, Any]) -> list[str]:
    """The status as a summary: one line per fact, one per sampler and per override (with its
    outcome); the cycle-time histogram as percentiles. Keys this client does not know follow as
    ``key  value``."""
    out: list[tuple[str, str]] = [("state", str(st.get("state", "?")))]
    if "version" in st:
        api = f" (API {st['api']})" if "api" in st else ""
        out.append(("version", f"{st['version']}{api}"))
    if "cycle" in st:
        last, age = st.get("last_cycle_s"), st.get("last_cycle_age_s")
        extra = f" (last took {last:.3f} s)" if _num(last) else ""
        if _num(age):
            extra += f", {_duration(age)} ago"
        out.append(("cycle", f"{st['cycle']}{extra}"))
    if _num(st.get("uptime_s")):
        out.append(("uptime", _duration(st["uptime_s"])))
    if isinstance(st.get("cycle_seconds"), dict):
        out.append(("cycle time", _cycle_times(st["cycle_seconds"])))
    if _num(st.get("tracked_pages")):
        out.append(("tracked", f"{st['tracked_pages']:,} pages"))
    if isinstance(st.get("moved"), dict):
        out.append(("moved", _moved(st["moved"])))
    if st.get("reload_failures"):
        out.append(("reloads", f"{st['reload_failures']} failed"))
    for i, s in enumerate(st.get("samplers") or []):
        out.append(("samplers" if i == 0 else "", _sampler(s)))
    if "profiles" in st:
        out.append(("profiles", _inline(st["profiles"])))
    outcomes = st.get("outcomes") if isinstance(st.get("outcomes"), dict) else {}
    lines = _overrides(st.get("overrides"), outcomes)
    for i, line in enumerate(lines or ["none"]):
        out.append(("overrides" if i == 0 else "", line))
    if isinstance(st.get("pods"), dict):
        out.append(("pods", _pods(st["pods"])))
    for key, value in st.items():
        if key not in SHOWN:
            out.append((key.replace("_", " "), _inline(value)))
    width = max(11, *(len(k) + 2 for k, _ in out))
    return [f"{k:<{width}}{v}".rstrip() for k, v in out]


def _num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _moved(m: dict[str, Any]) -> str:
    text = f"{m.get('promoted', 0):,} promoted, {m.get('demoted', 0):,} demoted"
    outcomes = m.get("outcomes")
    if isinstance(outcomes, dict):
        other = [
            f"{n:,} {k.replace('_', ' ')}" for k, n in outcomes.items() if k != "moved" and _num(n) and n
        ]
        if other:
            text += f" (mover also: {', '.join(other)})"
    return text


def _sampler(s: Any) -> str:
    if not isinstance(s, dict):
        return _inline(s)
    reason = str(s.get("reason") or "")
    if len(reason) > 100:
        reason = reason[:99] + "…"
    health = s.get("health") if isinstance(s.get("health"), dict) else {}
    samples = f", {health['samples']:,} samples" if _num(health.get("samples")) else ""
    dropped = f", {health['dropped']:,} dropped" if health.get("dropped") else ""
    return f"{s.get('name', '?')}: {s.get('state', '?')}{samples}{dropped}" + (
        f" — {reason}" if reason else ""
    )


def _overrides(ov: Any, outcomes: dict[str, Any]) -> list[str]:
    """One line per pin and quota (and the pause), each with its outcome; outcomes of requests that
    left no override (unpin, a dropped quota, migrate) follow."""
    lines: list[str] = []
    seen: set[str] = set()
    if isinstance(ov, dict) and isinstance(ov.get("pins"), dict):
        if ov.get("paused"):
            lines.append("placement paused")
        for path, tier in sorted(ov["pins"].items()):
            lines.append(f"{path} pinned to {tier}{_state_of(outcomes.get(path))}")
            seen.add(path)
        for path, q in sorted((ov.get("quotas") or {}).items()):
            q = q if isinstance(q, dict) else {}
            bounds = ", ".join(f"{k}={fmt_amount(v)}" for k, v in q.items() if v is not None) or "none"
            lines.append(f"{path} quota {bounds}{_state_of(outcomes.get(path))}")
            seen.add(path)
    elif ov:
        lines.append(_inline(ov))
    for path, o in sorted(outcomes.items()):
        if path not in seen and isinstance(o, dict):
            lines.append(f"{'every cgroup' if path == ALL else path}{_state_of(o)}")
    return lines


def _state_of(o: Any) -> str:
    if not isinstance(o, dict):
        return ""
    return f": {o.get('state', '?')} — {o.get('message', '')}"


def _pods(p: dict[str, Any]) -> str:
    if not p.get("api"):
        return f"not looked up ({p.get('reason') or 'no API server'})"
    text = f"{p.get('pods', 0)} on node {p.get('node', '?')}, {p.get('state', '?')}"
    if p.get("errors"):
        text += f", {p['errors']} errors"
    return text + (f" ({p['reason']})" if p.get("reason") else "")


def _cycle_times(h: dict[str, Any]) -> str:
    """'p50 0.005 s, p90 0.01 s, p99 0.025 s, mean 0.006 s (N cycles)' from the status histogram
    (bounds, counts — one more than bounds, the last one above the largest bound — and sum); a
    percentile is the upper bound of its bucket."""
    bounds, counts = h.get("bounds") or [], h.get("counts") or []
    n = sum(c for c in counts if isinstance(c, int))
    if not n or len(counts) != len(bounds) + 1:
        return "-"

    def pct(q: float) -> str:
        acc = 0
        for bound, c in zip(bounds, counts, strict=False):
            acc += c
            if acc >= q * n:
                return f"{bound:g} s"
        return f"> {bounds[-1]:g} s" if bounds else "-"

    mean = float(h.get("sum", 0.0)) / n
    return f"p50 {pct(0.5)}, p90 {pct(0.9)}, p99 {pct(0.99)}, mean {mean:.3f} s ({n:,} cycles)"


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

FOLLOW_UNTIL = ("done", "impossible", "stuck")
POLL_S = 0.5


# ---- the arguments of each mutation (its name and texts: tierctl.api.protocol.OPS, Cli)


def _no_arguments(p: argparse.ArgumentParser) -> None:
    pass


def _pin_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("cgroup", metavar="CGROUP", help="cgroup path below the cgroup root, e.g. /app.slice/db")
    p.add_argument("--tier", required=True, choices=TIERS, help="fast, slow or auto")
    wait_option(p)


def _unpin_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("cgroup", metavar="CGROUP", help="cgroup path below the cgroup root")
    wait_option(p)


def _quota_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("cgroup", metavar="CGROUP", help="cgroup path below the cgroup root")
    p.add_argument("--fast-min", metavar="AMOUNT", help="fast-tier pages kept at least (4G, 25%%)")
    p.add_argument("--fast-max", metavar="AMOUNT", help="fast-tier pages allowed at most (4G, 25%%)")
    p.add_argument("--clear", action="store_true", help="drop the operator quota")
    wait_option(p)


def _migrate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("cgroup", metavar="CGROUP", nargs="?", help="cgroup path (default: every cgroup)")
    wait_option(p)


def run_pin(args: argparse.Namespace) -> int:
    result = _call(args, "pin", path=args.cgroup, tier=args.tier)
    return _reported(args, result, f"pinned {args.cgroup} to {args.tier}", args.cgroup)


def run_unpin(args: argparse.Namespace) -> int:
    result = _call(args, "unpin", path=args.cgroup)
    return _reported(args, result, f"unpinned {args.cgroup}", args.cgroup)


def run_quota(args: argparse.Namespace) -> int:
    if args.clear and (args.fast_min is not None or args.fast_max is not None):
        raise InputError("--clear drops the quota: give it alone", "--clear")
    if not args.clear and args.fast_min is None and args.fast_max is None:
        raise InputError("give --fast-min and/or --fast-max, or --clear to drop the quota", "quota")
    amounts = {"fast_min": _amount(args.fast_min), "fast_max": _amount(args.fast_max)}
    result = _call(args, "quota", path=args.cgroup, **amounts)
    what = ", ".join(f"{k}={v}" for k, v in amounts.items() if v is not None) or "none"
    return _reported(args, result, f"quota of {args.cgroup}: {what}", args.cgroup)


def run_migrate(args: argparse.Namespace) -> int:
    result = _call(args, "migrate", path=args.cgroup)
    key = ALL if args.cgroup is None else args.cgroup
    return _reported(args, result, f"migration pass queued for {args.cgroup or 'every cgroup'}", key)


AddArgs = Callable[[argparse.ArgumentParser], None]
Run = Callable[[argparse.Namespace], int]
# a mutation's own arguments and how it runs; one not listed takes none and prints its Cli.done
MUTATION_CMDS: Mapping[str, tuple[AddArgs, Run]] = MappingProxyType(
    {
        "pin": (_pin_args, run_pin),
        "unpin": (_unpin_args, run_unpin),
        "quota": (_quota_args, run_quota),
        "migrate": (_migrate_args, run_migrate),
    }
)


def _amount(text: str | None) -> str | int | None:
    """A flag's amount as the API takes it: plain digits are bytes (an integer), the rest a string."""
    if text is None:
        return None
    return int(text) if text.strip().isdigit() else text.strip()


def _reported(args: argparse.Namespace, result: Any, text: str, cgroup: str) -> int:
    """Print the request's outcome (an older daemon's answer has none: ``text``), then follow it
    with --wait."""
    outcome = result.get("outcome") if isinstance(result, dict) else None
    if args.json and args.wait is None:
        _print_json(result)
        return 0
    if not isinstance(outcome, dict):
        if args.json:
            _print_json(result)
        else:
            print(text)
        return 0
    key = cgroup if cgroup == ALL else "/" + cgroup.strip("/")
    if not args.json:
        print(outcome_line(outcome))
    if args.wait is None:
        return 0
    final = follow(lambda: _outcome_of(args, key), outcome, args.wait, None if args.json else print)
    if args.json:
        _print_json(final)
    return 0 if final.get("state") == "done" else 1


def _outcome_of(args: argparse.Namespace, key: str) -> dict[str, Any] | None:
    st = _call(args, "status")
    found = st.get("outcomes", {}).get(key) if isinstance(st, dict) else None
    return found if isinstance(found, dict) else None


def follow(
    read: Callable[[], dict[str, Any] | None],
    first: dict[str, Any],
    timeout_s: float,
    show: Callable[[str], None] | None,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Poll ``read()`` until the outcome is done, impossible or stuck, or ``timeout_s`` passed; each
    change of state is shown. Returns the last outcome seen (on time-out, its message says so)."""
    last, deadline = first, clock() + timeout_s
    while last.get("state") not in FOLLOW_UNTIL:
        if clock() >= deadline:
            note = f"still {last.get('state')} after {timeout_s:g} s"
            if show is not None:
                show(note)
            return {**last, "message": f"{last.get('message', '')} ({note})"}
        sleep(POLL_S)
        now = read()
        if now is None:  # replaced by another request's, or the daemon restarted
            return {**last, "state": "gone", "message": "the outcome is no longer tracked"}
        if now.get("state") != last.get("state") and show is not None:
            show(outcome_line(now))
        if now.get("since") != first.get("since") or now.get("action") != first.get("action"):
            if show is not None:
                show("superseded by a newer request on the same cgroup")
            return now
        last = now
    return last


def outcome_line(o: dict[str, Any]) -> str:
    """'in_progress  pin fast: waiting for room in the fast tier (...); 25% of 32,768 pages in fast'."""
    return f"{o.get('state', '?')!s:<11}  {o.get('message') or o.get('action', '')}"


def run_simple(args: argparse.Namespace) -> int:
    """An op without arguments: what its declaration says a success prints."""
    cli = OPS[args.op].cli
    result = _call(args, args.op)
    return _done(args, result, cli.done if cli is not None and cli.done else args.op)


def _done(args: argparse.Namespace, result: Any, text: str, *, detail: bool = True) -> int:
    if args.json:
        _print_json(result)
        return 0
    extra = _inline(result) if detail and isinstance(result, dict) and result else ""
    print(f"{text} ({extra})" if extra else text)
    return 0
