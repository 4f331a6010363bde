"""``tierctl tui``: the interactive terminal UI, on the daemon's socket or on a simulated machine."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from tierctl.api.client import default_socket
from tierctl.cli import args as args_
from tierctl.errors import InputError


def register(sub: Any) -> None:
    p = sub.add_parser(
        "tui",
        help="interactive terminal UI: inspect and override placement",
        description="Interactive terminal UI over the running daemon's socket, or (--sim) over an "
        "embedded simulated two-tier machine running a built-in workload. Press ? for the keys.",
    )
    p.add_argument(
        "--socket",
        type=Path,
        metavar="PATH",
        help="the daemon's socket (default $TIERCTL_SOCKET, else /run/tierctl/tierctl.sock)",
    )
    p.add_argument(
        "--sim",
        nargs="?",
        const="multi-cgroup",
        metavar="WORKLOAD",
        help="run an embedded simulated machine instead (default workload: multi-cgroup)",
    )
    p.add_argument("--seed", type=args_.SEED, default=0, help="seed of the simulated workload (default 0)")
    p.add_argument(
        "--period",
        type=args_.SECONDS,
        default=0.5,
        metavar="SECONDS",
        help="with --sim: seconds per simulated epoch (default 0.5)",
    )
    p.add_argument(
        "--refresh", type=args_.SECONDS, default=1.0, metavar="SECONDS", help="seconds between screen updates"
    )
    p.add_argument(
        "--frames",
        type=args_.count(1, 1 << 31),
        metavar="N",
        help="quit after drawing N frames; exit 1 if a view failed to update (scripted smoke runs)",
    )
    p.add_argument(
        "--headless", action="store_true", help="draw nothing: run without a terminal (with --frames)"
    )
    p.set_defaults(func=run_tui)


def run_tui(args: argparse.Namespace) -> int:
    from tierctl.tui.app import TierctlApp
    from tierctl.tui.source import LocalSource, SocketSource, Source

    if args.refresh <= 0 or args.period <= 0:
        raise InputError("must be > 0", "--refresh/--period")
    if args.sim is not None and args.socket is not None:
        raise InputError("choose --sim or --socket, not both", "--sim")
    with tempfile.TemporaryDirectory(prefix="tierctl-tui-") as tmp:
        source: Source
        if args.sim is not None:
            from tierctl.sim.live import sim_service

            service = sim_service(args.sim, seed=args.seed, state_dir=Path(tmp))
            source = LocalSource(service, period_s=args.period, label=f"sim:{args.sim}")
        else:
            source = SocketSource(args.socket or default_socket())
        if args.headless and args.frames is None:
            raise InputError("--headless needs --frames N (nothing could ever quit it)", "--headless")
        app = TierctlApp(source, refresh_s=args.refresh, quit_after=args.frames)
        app.run(headless=args.headless)
    for problem in app.problems:
        print(f"tierctl tui: {problem}", file=sys.stderr)
    return app.return_code or 0
