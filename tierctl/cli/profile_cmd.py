"""``tierctl profile check|show|match``: validate profiles, show one, tell which one a workload gets."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tierctl.errors import InputError
from tierctl.fmt import fmt_amount
from tierctl.kernel import kubelet
from tierctl.kernel.kubelet import QOS_CLASSES
from tierctl.profiles import (
    INSTALLED_PROFILES,
    Pod,
    ProfileError,
    ProfileSet,
    Workload,
    check_profiles,
    default_profiles_dir,
    load_profiles,
)
from tierctl.profiles.schema import Profile
from tierctl.registry import pick

DEFAULT_HELP = f"{INSTALLED_PROFILES} if it exists, else the profiles tierctl ships"


def register(sub: Any) -> None:
    p = sub.add_parser(
        "profile",
        help="check, show and match per-workload placement profiles",
        description=f"Per-workload TOML profiles (docs/profiles.md). Default directory: {DEFAULT_HELP}.",
    )
    cmds = p.add_subparsers(dest="profile_command", metavar="SUBCOMMAND", required=True)

    c = cmds.add_parser(
        "check",
        help="list every problem of the profiles as file:line: key: message (exit 2 if any)",
        description="Check profile files and directories (their *.toml files): every key of every file, "
        "then the set (unique names, one catch-all, no profile hidden behind it).",
    )
    c.add_argument(
        "paths", nargs="*", metavar="PATH", help="profile files or directories (default: --profiles)"
    )
    _profiles_option(c, append=True)
    c.add_argument("--json", action="store_true", help="print JSON instead of text")
    c.set_defaults(func=run_check)

    s = cmds.add_parser("show", help="print one parsed profile, defaults filled in")
    s.add_argument("name", metavar="NAME", help="profile name")
    _profiles_option(s)
    s.add_argument("--json", action="store_true", help="print JSON instead of text")
    s.set_defaults(func=run_show)

    m = cmds.add_parser(
        "match",
        help="which profile a workload would get, and which [[match]] table selects it",
        description="Profiles are tried in order (priority, higher first, then file name); the first "
        "with a matching [[match]] table (or none: a catch-all) applies.",
    )
    m.add_argument(
        "--cgroup", required=True, metavar="PATH", help="cgroup path, e.g. /system.slice/x.service"
    )
    m.add_argument("--comm", metavar="NAME", help="process name")
    m.add_argument("--user", metavar="U", help="user name or uid")
    m.add_argument(
        "--namespace", metavar="NS", help="the pod's namespace (a pod's UID and QoS class come from --cgroup)"
    )
    m.add_argument(
        "--pod-label",
        type=label_arg,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="one of the pod's labels (repeatable)",
    )
    m.add_argument("--qos", choices=QOS_CLASSES, help="the pod's QoS class (default: from --cgroup)")
    _profiles_option(m)
    m.add_argument("--json", action="store_true", help="print JSON instead of text")
    m.set_defaults(func=run_match)


def label_arg(text: str) -> tuple[str, str]:
    """``--pod-label KEY=VALUE``."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value.strip()


def _pod(args: argparse.Namespace) -> Pod | None:
    """The pod the flags describe: UID, QoS class and container from a kubelet cgroup path, namespace,
    labels (and a QoS class) from the flags; None for a cgroup that is not a pod's and no pod flag."""
    found = kubelet.parse(args.cgroup)
    if found is None and args.namespace is None and not args.pod_label and args.qos is None:
        return None
    return Pod(
        uid=found.uid if found else "-",
        qos=args.qos or (found.qos if found else None),
        container=found.container if found else None,
        namespace=args.namespace,
        labels=tuple(sorted(dict(args.pod_label).items())) if args.pod_label else None,
    )


def _profiles_option(p: argparse.ArgumentParser, *, append: bool = False) -> None:
    p.add_argument(
        "--profiles",
        metavar="DIR",
        action="append" if append else "store",
        help=f"profiles directory (default: {DEFAULT_HELP})",
    )


def run_check(args: argparse.Namespace) -> int:
    paths = [*args.paths, *(args.profiles or [])] or [default_profiles_dir()]
    profiles, problems = check_profiles(paths)
    if args.json:
        print(
            json.dumps(
                {
                    "ok": not problems,
                    "profiles": profiles.names(),
                    "problems": [p.to_json() for p in problems],
                },
                indent=2,
            )
        )
    else:
        for p in problems:
            print(p)
    if problems:
        files = len({p.file for p in problems})
        raise InputError(
            f"{_plural(len(problems), 'problem')} in {_plural(files, 'file')}", "tierctl profile check"
        )
    if not args.json:
        where = ", ".join(str(p) for p in paths)
        print(f"{_plural(len(profiles), 'profile')} OK in {where}: {', '.join(profiles.names())}")
    return 0


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _load(args: argparse.Namespace) -> ProfileSet:
    where = Path(args.profiles) if args.profiles else default_profiles_dir()
    try:
        return load_profiles([where])
    except ProfileError as e:
        for p in e.problems:
            print(p, file=sys.stderr)
        raise InputError(
            f"{_plural(len(e.problems), 'problem')} in the profiles (see `tierctl profile check`)", str(where)
        ) from None


def run_show(args: argparse.Namespace) -> int:
    profiles = _load(args)
    profile = pick(profiles.by_name, args.name, kind="profile", where="tierctl profile show")
    if args.json:
        print(json.dumps(profile.to_json(), indent=2))
    else:
        print(describe(profile))
    return 0


AMOUNTS = ("fast_min", "fast_max", "headroom")  # bytes or a share of the fast tier


def describe(p: Profile) -> str:
    lines = [f"profile {p.name}  ({p.file})"]
    if p.description:
        lines.append(f"  {p.description}")
    lines.append(f"  priority           {p.priority}")
    if p.is_catch_all:
        lines.append("  match              anything (catch-all: no [[match]] tables)")
    for rule in p.match:
        lines.append(f"  match[{rule.index}]           {rule.describe()}   (line {rule.line})")
    lines.append("  placement")
    for key, value in p.placement.to_json().items():
        if key in AMOUNTS and value not in (None, "auto"):
            value = fmt_amount(value)  # "4G" and 4294967296 -> 4.0G, "60%": as every command prints them
        shown = "-" if value is None else (", ".join(value) if isinstance(value, list) else value)
        lines.append(f"    {key:<18} {shown}")
    return "\n".join(lines)


def run_match(args: argparse.Namespace) -> int:
    profiles = _load(args)
    user: str | int | None = args.user
    if isinstance(user, str) and user.isdigit():
        user = int(user)
    pod = _pod(args)
    workload = Workload(cgroup=args.cgroup, comm=args.comm, user=user, pod=pod)
    result = profiles.match(workload)
    if result is None:  # only possible without a catch-all, which load_profiles rejects
        raise InputError("no profile matches", args.cgroup)
    if args.json:
        out: dict[str, Any] = {
            "workload": {"cgroup": workload.path, "unit": workload.unit, "comm": args.comm, "user": user}
        }
        if pod is not None:
            labels = None if pod.labels is None else dict(pod.labels)
            out["workload"]["pod"] = {**pod.to_json(), "labels": labels}
        out.update(result.to_json())
        print(json.dumps(out, indent=2))
    else:
        print(result.explain())
    return 0
