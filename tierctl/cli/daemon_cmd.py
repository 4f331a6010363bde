"""``tierctl daemon``: the controller in the foreground (systemd Type=notify)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from tierctl.cli import args as args_
from tierctl.cli.kernel_args import pid_arg
from tierctl.cli.sim_cmd import policy_arguments
from tierctl.core.policies import with_threads
from tierctl.errors import InputError
from tierctl.kernel import kubelet
from tierctl.kernel.procfs import ProcFS
from tierctl.profiles.match import Pod
from tierctl.service.kernel_loop import KernelLoop, LoopConfig
from tierctl.service.service import DEFAULT_STATE_DIR, DaemonConfig, Service


def register(sub: Any) -> None:
    p = sub.add_parser(
        "daemon",
        help="run the controller (foreground; systemd Type=notify)",
        description="Run the control loop: discover the cgroups in scope, match their profiles, "
        "sample, decide and move every cycle. SIGHUP reloads the profiles (a broken set is "
        "refused and the running one kept); SIGTERM/SIGINT stop cleanly and restore every "
        "kernel knob. The profiles directory is followed (--watch-profiles): a Kubernetes "
        "ConfigMap update or a file edited in place reloads it the same way. With --pid, manage just "
        "those processes (no profiles). With --sim WORKLOAD, a demo and test mode: the same daemon "
        "(Service, socket API, metrics, loop) on a simulated two-tier machine running a built-in "
        "workload instead of the kernel; no root needed, nothing on the host is touched.",
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
        "--watch-profiles",
        choices=("auto", "on", "off"),
        default="auto",
        help="reload the profiles when their directory changes (a ConfigMap swap, an edit), as on "
        "SIGHUP: inotify, else a check every 2 s; auto (the default) = on, except with --once; off",
    )
    p.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="where overrides and recorded knobs are kept (default /var/lib/tierctl; with --sim a "
        "temporary directory)",
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
    policy_arguments(p)
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
        help="serve Prometheus/OpenMetrics, /healthz and /readyz on this address (off by default; host "
        "127.0.0.1; port 0 picks a free one). The daemon logs the address once it listens: "
        "'tierctl daemon: metrics on http://HOST:PORT/metrics'",
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
    sim = p.add_argument_group("simulated machine (demo and test mode)")
    sim.add_argument(
        "--sim",
        metavar="WORKLOAD",
        help="run on a simulated two-tier machine playing this built-in workload (one epoch per cycle; "
        "`tierctl sim --list` names them), not on the kernel; kernel-only options are refused",
    )
    sim.add_argument("--seed", type=args_.SEED, default=0, help="with --sim: the workload's seed (default 0)")
    sim.add_argument(
        "--sim-pod",
        action="append",
        default=[],
        metavar="CGROUP=NAMESPACE/POD[/QOS]",
        help="with --sim: the simulated cgroup belongs to this pod (repeatable; profiles match it and "
        "the metrics join it as if pod resolution had found it)",
    )
    pods = p.add_argument_group("Kubernetes pods (docs/pods.md)")
    args_.pod_options(
        pods,
        node_help="this node's name: its pods' namespaces, names and labels are read from the API server "
        "(default $TIERCTL_NODE_NAME; without it pods are known from cgroup paths only)",
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


QOS_CLASSES = ("guaranteed", "burstable", "besteffort")
# options that choose what the daemon does on the kernel: meaningless on the simulated machine
_KERNEL_ONLY = {
    "pid": "--pid",
    "scope": "--scope",
    "samplers": "--samplers",
    "max_samplers": "--max-samplers",
    "hint_faults": "--hint-faults",
    "rate": "--rate",
    "kubeconfig": "--kubeconfig",
}


def run(args: argparse.Namespace) -> int:
    if args.cycles is not None and args.cycles <= 0:
        raise InputError(f"must be > 0, got {args.cycles}", "--cycles")
    if args.cycle_seconds <= 0:
        raise InputError(f"must be > 0, got {args.cycle_seconds}", "--cycle-seconds")
    if args.sim is None:
        if args.sim_pod:
            raise InputError("only with --sim (pods of a real node come from pod resolution)", "--sim-pod")
        args.state_dir = args.state_dir or DEFAULT_STATE_DIR
    else:
        for attr, flag in _KERNEL_ONLY.items():
            if getattr(args, attr):
                raise InputError(f"not with --sim (it applies to the kernel only), got {flag}", "--sim")
        if args.pressure != "on" or args.memory_target != 95.0:
            raise InputError(
                "the simulated machine runs its own pressure model: no --pressure or --memory-target", "--sim"
            )
    if args.pid:
        return run_pids(args)
    if args.sim is not None:
        with tempfile.TemporaryDirectory(prefix="tierctl-sim-") as tmp:
            args.state_dir = args.state_dir or Path(tmp)
            return run_service(args)
    return run_service(args)


def sim_pod(text: str) -> tuple[str, Pod]:
    """``--sim-pod CGROUP=NAMESPACE/POD[/QOS]``: a cgroup path and the pod it stands for."""
    path, sep, ident = text.partition("=")
    parts = ident.split("/")
    if not sep or not path.strip("/") or len(parts) not in (2, 3) or not all(parts):
        raise InputError(f"expected CGROUP=NAMESPACE/POD[/QOS], got {text!r}", "--sim-pod")
    qos = parts[2].lower() if len(parts) == 3 else "burstable"
    if qos not in QOS_CLASSES:
        raise InputError(f"QoS class must be one of {', '.join(QOS_CLASSES)}, got {parts[2]!r}", "--sim-pod")
    ns, name = parts[0], parts[1]
    return "/" + path.strip("/"), Pod(f"sim-{ns}-{name}", qos, None, ns, name, ())


class SimPods:
    """Pod resolution's face (``PodResolver``: start, stop, pod, row, status) for the simulated machine:
    the pods given with ``--sim-pod``, known by cgroup path."""

    def __init__(self, pods: dict[str, Pod]) -> None:
        self.pods = dict(pods)

    def start(self) -> str | None:
        return f"simulated pods (--sim-pod): {len(self.pods)}" if self.pods else None

    def stop(self) -> None:
        return None

    def pod(self, path: str) -> Pod | None:
        return self.pods.get("/" + path.strip("/"))

    def row(self, path: str) -> dict[str, Any] | None:
        p = self.pod(path)
        return None if p is None else p.to_json()

    def status(self) -> dict[str, Any]:
        return {
            "api": False,
            "reason": "simulated machine: pods given with --sim-pod",
            "pods": len(self.pods),
        }


def _policy_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``--policy-option`` values, plus the threads of the policy's block passes for this machine
    unless given (up to 4, one per CPU: the core never counts CPUs itself)."""
    return with_threads(args.policy, dict(args.policy_option), os.cpu_count())


def _service(args: argparse.Namespace, profiles_dir: Path) -> Service:
    if args.sim is not None:
        from tierctl.sim.live import sim_service

        service = sim_service(
            args.sim,
            seed=args.seed,
            state_dir=args.state_dir,
            profiles_dir=profiles_dir,
            dry_run=args.dry_run,
            cycle_log=args.cycle_log,
            policy=args.policy,
            policy_options=_policy_options(args),
        )
        pods = dict(sim_pod(t) for t in args.sim_pod)
        known = service.cgroupfs.list()
        for path in pods:
            if path.strip("/") not in known:
                raise InputError(
                    f"{path} is not a simulated cgroup; they are: /{', /'.join(known)}", "--sim-pod"
                )
        service.pods = SimPods(pods)  # type: ignore[assignment]
        return service
    extra: dict[str, Any] = {}
    if args.samplers is not None:
        extra["samplers"] = sampler_names(args.samplers)
    if args.max_samplers is not None:
        if args.max_samplers < 1:
            raise InputError(f"must be >= 1, got {args.max_samplers}", "--max-samplers")
        extra["max_samplers"] = args.max_samplers
    cfg = DaemonConfig(
        profiles_dir=profiles_dir,
        state_dir=args.state_dir,
        scope=tuple("/" + s.strip("/") for s in (args.scope or ())),
        dry_run=args.dry_run,
        hint_faults=args.hint_faults or "auto",
        rate_mbps=args.rate,
        cycle_s=args.cycle_seconds,
        cycle_log=args.cycle_log,
        policy=args.policy,
        policy_options=_policy_options(args),
        pressure=args.pressure,
        memory_target=args.memory_target / 100.0,
        kubelet_cgroup_driver=kubelet.driver(args.kubelet_cgroup_driver, "--kubelet-cgroup-driver"),
        node_name=args.node_name,
        kubeconfig=args.kubeconfig,
        **extra,
    )
    return Service(cfg)


class _Metrics:
    """The metrics server as a front end that says where it listens once it does (port 0: a free one)."""

    def __init__(self, server: Any, log: TextIO) -> None:
        self.server, self.log = server, log

    def start(self) -> None:
        host, port = self.server.start()
        shown = f"[{host}]" if ":" in host else host
        print(f"tierctl daemon: metrics on http://{shown}:{port}/metrics", file=self.log, flush=True)

    def stop(self) -> None:
        self.server.stop()


def run_service(args: argparse.Namespace) -> int:
    from tierctl import data
    from tierctl.profiles import default_profiles_dir
    from tierctl.service.daemon import run_daemon
    from tierctl.service.profile_watch import ProfileWatch

    mutators_gid = group_id(args.mutators_group) if args.mutators_group else None
    # the simulated machine's cgroups are named so that the shipped profiles match them
    profiles_dir = args.profiles or (default_profiles_dir() if args.sim is None else data.profiles_dir())
    watch = None
    if args.watch_profiles == "on" or (args.watch_profiles == "auto" and not args.once):
        watch = ProfileWatch(profiles_dir)
        print(f"tierctl daemon: profiles: {watch.start()}", file=sys.stderr, flush=True)  # before reading
    try:
        service = _service(args, profiles_dir)
    except BaseException:
        if watch is not None:
            watch.close()
        raise
    reloads = service.reload_counts  # every reload, whatever asked for it (signal, watch, the API)
    front_ends: list[Any] = []
    if args.metrics_listen:
        from tierctl.service.metrics import MetricsServer, parse_listen, snapshot_from_service

        host, port = parse_listen(args.metrics_listen)
        server = MetricsServer(
            lambda: snapshot_from_service(service, cycle_times=service.cycle_times, reloads=reloads),
            host,
            port,
        )
        front_ends.append(_Metrics(server, sys.stderr))
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
        watch=watch,
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
            policy=args.policy,
            policy_options=_policy_options(args),
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
