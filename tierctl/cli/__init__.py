"""Command-line entry point: ``tierctl <command> ...``.

Every TierctlError becomes one line on stderr and its exit code (2 for bad
input); no traceback reaches the user.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tierctl import __version__
from tierctl.cli import (
    cgroups_cmd,
    client_cmds,
    daemon_cmd,
    move_cmd,
    pages_cmd,
    profile_cmd,
    samplers_cmd,
    sim_cmd,
    topology_cmd,
    tui_cmd,
)
from tierctl.errors import TierctlError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tierctl", description="Per-cgroup tiered-memory placement controller (DRAM + CXL)."
    )
    parser.add_argument("--version", action="version", version=f"tierctl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    sim_cmd.register(sub)
    topology_cmd.register(sub)
    cgroups_cmd.register(sub)
    pages_cmd.register(sub)
    move_cmd.register(sub)
    samplers_cmd.register(sub)
    profile_cmd.register(sub)
    daemon_cmd.register(sub)
    client_cmds.register(sub)
    tui_cmd.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except TierctlError as err:
        print(f"tierctl: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
