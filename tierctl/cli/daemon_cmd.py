"""``tierctl daemon``: the controller in the foreground (systemd Type=notify)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tierctl.cli import args as args_
from tierctl.cli.kernel_args import pid_arg
from tierctl.errors import InputError
from tierctl.kernel import kubelet
from tierctl.kernel.procfs import ProcFS
from tierctl.service.kernel_loop import KernelLoop, LoopConfig
from tierctl.service.service import DaemonConfig


def register(sub: Any) -> None:
    p = sub.add_parser(
        "daemon",
        help="run the controller (foreground; systemd Type=notify)",
        description="Run the control loop: discover the cgroups in scope, match their profiles, "
        "sample, decide and move every cycle. SIGHUP reloads the profiles (a broken set is "
        "refused and the running one kept); SIGTERM/SIGINT stop cleanly and restore every "
        "kernel knob. With --pid, manage just those processes (no profiles).",
    )
    p.add_argument(
        "--profiles", type=Path, metavar="DIR", help="profiles directory (default: the shipped set)"
    )
    p.add_argument(
        "--scope",
        action="append",
        default=None,
        metavar="CGROUP",
        help="manage only cgroups below this path (repeatable; default: all with processes)",
    )
    p.add_argument(
        "--state-dir",
        type=Path,
        default=Path("/var/lib/tierctl"),
        help="where overrides and recorded knobs are kept (default /var/lib/tierctl)",
    )
    p.add_argument("--pid", action="append", default=None, help="ad hoc: manage these processes only")
    runs = p.add_mutually_exclusive_group()
    runs.add_argument("--once", action="store_true", help="run one cycle and exit")
    runs.add_argument("--cycles", type=args_.count(1, 2**31 - 1), metavar="N", help="run N cycles and exit")
    p.add_argument("--cycle-seconds", type=args_.SECONDS, default=1.0, help="cycle period (default 1 s)")
    p.add_argument("--dry-run", action="store_true", help="plan, but never move a page")
    p.add_argument("--rate", type=args_.RATE_MBPS, metavar="MBPS", help="migration bandwidth cap")
    p.add_argument(
        "--hint-faults",
        nargs="?",
        const="on",
        choices=("auto", "on", "off"),
        help="NUMA hint faults on slow-tier pages for sampling (knobs recorded, restored at exit): auto "
        "(the default: on where there is a slow tier, no PMU samples data addresses and NUMA balancing "
        "is off), on, off; with --pid: off unless given",
    )
    p.add_argument(
        "--samplers",
        metavar="NAME[,NAME...]",
        help="the sampler chain, best first (default: "
        + ",".join(DaemonConfig.__dataclass_fields__["samplers"].default)
        + "; `tierctl samplers` lists them)",
    )
    p.add_argument(
        "--max-samplers",
        type=args_.count(1, 64),
        metavar="N",
        help="run up to N samplers of the chain at once (default "
        + str(DaemonConfig.__dataclass_fields__["max_samplers"].default)
        + ")",
    )
    p.add_argument(
        "--policy",
        default="tierctl",
        metavar="NAME",
        help="placement policy: tierctl (default), nb2, ewma or static (docs/policy.md)",
    )
    p.add_argument(
        "--policy-option",
        type=args_.key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an option of the policy, e.g. hysteresis=0.5 (repeatable; docs/policy.md lists them)",
    )
    p.add_argument(
        "--pressure",
        choices=("on", "dry-run", "off"),
        default="on",
        help="the memory-pressure ladder (docs/pressure.md): on (default), dry-run (log what it would do), "
        "off",
    )
    p.add_argument(
        "--memory-target",
        type=args_.real(50.0, 100.0),
        default=95.0,
        metavar="PERCENT",
        help="keep MemTotal - MemAvailable under this share of RAM (default 95)",
    )
    p.add_argument(
        "--metrics-listen",
        metavar="[HOST:]PORT",
        help="serve Prometheus/OpenMetrics on this address (off by default; host 127.0.0.1)",
    )
    p.add_argument(
        "--socket", type=Path, help="API socket (default $TIERCTL_SOCKET or /run/tierctl/tierctl.sock)"
    )
    p.add_argument("--no-socket", action="store_true", help="serve no API socket")
    p.add_argument(
        "--mutators-group",
        metavar="GROUP",
        help="members of this group (name or gid) may pin, set quotas, pause and reload through the "
        "socket, like root (default: root only)",
    )
    p.add_argument(
        "--cycle-log", type=Path, metavar="FILE", help="append one JSON line per cycle to FILE (diagnostics)"
    )
    p.add_argument("--json", action="store_true", help="--pid mode: one JSON object per cycle")
    pods = p.add_argument_group("Kubernetes pods (docs/pods.md)")
    pods.add_argument(
        "--kubelet-cgroup-driver",
        default=os.environ.get("TIERCTL_KUBELET_CGROUP_DRIVER", "auto"),
        metavar="DRIVER",
        help="how the kubelet names pod cgroups: systemd, cgroupfs or auto (default "
        "$TIERCTL_KUBELET_CGROUP_DRIVER, else auto)",
    )
    pods.add_argument(
        "--node-name",
        default=os.environ.get("TIERCTL_NODE_NAME") or None,
        metavar="NODE",
        help="this node's name: its pods' namespaces, names and labels are read from the API server "
        "(default $TIERCTL_NODE_NAME; without it pods are known from cgroup paths only)",
    )
    pods.add_argument(
        "--kubeconfig",
        type=Path,
        metavar="FILE",
        help="API server credentials (default $KUBECONFIG, else the in-cluster service account)",
    )
    p.set_defaults(func=run)


def sampler_names(text: str) -> tuple[str, ...]:
    """``--samplers``: comma-separated names of known samplers, each once."""
    from tierctl.samplers.registry import SAMPLERS

    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise InputError("give at least one sampler name", "--samplers")
    for n in names:
        if n not in SAMPLERS:
            raise InputError(f"unknown sampler {n!r}; known: {', '.join(SAMPLERS)}", "--samplers")
    if len(set(names)) != len(names):
        raise InputError(f"a sampler named twice in {text!r}", "--samplers")
    return names


def group_id(text: str) -> int:
    """``--mutators-group``: a group name or a numeric gid of an existing group."""
    import grp

    try:
        numeric = text.isascii() and text.isdigit()
        return grp.getgrgid(int(text)).gr_gid if numeric else grp.getgrnam(text).gr_gid
    except (KeyError, OverflowError, ValueError):
        raise InputError(f"no such group {text!r}", "--mutators-group") from None


def run(args: argparse.Namespace) -> int:
    if args.cycles is not None and args.cycles <= 0:
        raise InputError(f"must be > 0, got {args.cycles}", "--cycles")
    if args.cycle_seconds <= 0:
        raise InputError(f"must be > 0, got {args.cycle_seconds}", "--cycle-seconds")
    if args.pid:
        return run_pids(args)
    return run_service(args)


def run_service(args: argparse.Namespace) -> int:
    from tierctl.profiles import default_profiles_dir
    from tierctl.service.daemon import run_daemon
    from tierctl.service.service import Service

    mutators_gid = group_id(args.mutators_group) if args.mutators_group else None
    extra: dict[str, Any] = {}
    if args.samplers is not None:
        extra["samplers"] = sampler_names(args.samplers)
    if args.max_samplers is not None:
        if args.max_samplers < 1:
            raise InputError(f"must be >= 1, got {args.max_samplers}", "--max-samplers")
        extra["max_samplers"] = args.max_samplers
    cfg = DaemonConfig(
        profiles_dir=args.profiles or default_profiles_dir(),
        state_dir=args.state_dir,
        scope=tuple("/" + s.strip("/") for s in (args.scope or ())),
        dry_run=args.dry_run,
        hint_faults=args.hint_faults or "auto",
        rate_mbps=args.rate,
        cycle_s=args.cycle_seconds,
        cycle_log=args.cycle_log,
        policy=args.policy,
        policy_options=dict(args.policy_option),
        pressure=args.pressure,
        memory_target=args.memory_target / 100.0,
        kubelet_cgroup_driver=kubelet.driver(args.kubelet_cgroup_driver, "--kubelet-cgroup-driver"),
        node_name=args.node_name,
        kubeconfig=args.kubeconfig,
        **extra,
    )
    service = Service(cfg)
    front_ends: list[Any] = []
    if args.metrics_listen:
        from tierctl.service.metrics import MetricsServer, parse_listen, snapshot_from_service

        host, port = parse_listen(args.metrics_listen)
        front_ends.append(
            MetricsServer(lambda: snapshot_from_service(service, cycle_times=service.cycle_times), host, port)
        )
    from tierctl.api.client import default_socket
    from tierctl.api.server import ApiServer
    from tierctl.service.sdnotify import SdNotify

    lock = threading.Lock()
    if not args.no_socket:
        front_ends.insert(
            0,
            ApiServer(
                service,
                args.socket or default_socket(),
                service_lock=lock,
                mutators_gid=mutators_gid,
            ),
        )
    return run_daemon(
        service,
        cycle_s=args.cycle_seconds,
        cycles=1 if args.once else args.cycles,
        front_ends=tuple(front_ends),
        notify=sd.notify if (sd := SdNotify()).enabled else None,
        lock=lock,
    )


def run_pids(args: argparse.Namespace) -> int:
    if not args.once and not args.cycles:
        raise InputError("with --pid, give --once or --cycles N", "tierctl daemon")
    procfs = ProcFS()
    fixed = [pid_arg(p) for p in args.pid]
    for pid in fixed:
        if not procfs.exists(pid):
            raise InputError(f"no process {pid}", "--pid")

    def targets() -> list[tuple[int, str]]:
        return [(pid, procfs.cgroup_path(pid) if procfs.exists(pid) else "") for pid in fixed]

    args.state_dir.mkdir(parents=True, exist_ok=True)
    state = args.state_dir / "knobs.json"  # every knob the loop changes is recorded here
    opts: dict[str, Any] = {}
    if args.samplers is not None:
        opts["samplers"] = list(sampler_names(args.samplers))
    if args.max_samplers is not None:
        if args.max_samplers < 1:
            raise InputError(f"must be >= 1, got {args.max_samplers}", "--max-samplers")
        opts["max_running"] = args.max_samplers
    loop = KernelLoop(
        targets,
        LoopConfig(
            dry_run=args.dry_run,
            rate_mbps=args.rate,
            knob_state=state,
            hint_faults=args.hint_faults or "off",
            **opts,
        ),
    )
    status = loop.start()
    if not loop.chain.running:
        loop.stop()
        reasons = "; ".join(f"{s.name}: {s.reason}" for s in status)
        raise InputError(f"no sampler could start ({reasons})", "tierctl daemon")
    try:
        for _ in range(1 if args.once else args.cycles):
            time.sleep(args.cycle_seconds)
            rep = loop.cycle()
            out = {
                "cycle": rep.now,
                "tracked_pages": int(loop.view.index.keys.shape[0]),
                "samples": rep.samples,
                "planned_promotions": rep.planned_promotions,
                "planned_demotions": rep.planned_demotions,
                "promoted": rep.promoted,
                "demoted": rep.demoted,
                "outcomes": rep.outcomes,
                "seconds": rep.seconds,
                "sampler": loop.chain.running,
                "dry_run": args.dry_run,
            }
            if args.json:
                print(json.dumps(out), flush=True)
            else:
                print(
                    f"cycle {rep.now}: {out['tracked_pages']} pages tracked, {rep.samples} samples, planned "
                    f"+{rep.planned_promotions}/-{rep.planned_demotions}, "
                    f"moved +{rep.promoted}/-{rep.demoted}"
                    f" ({rep.seconds * 1000:.0f} ms){' [dry run]' if args.dry_run else ''}",
                    flush=True,
                )
    finally:
        loop.stop()
    for e in loop.watchdog_events:
        print(f"watchdog: {e}", file=sys.stderr)
    return 0
