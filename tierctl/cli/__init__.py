"""Command-line entry point: ``tierctl <command> ...``.

Every TierctlError becomes one line on stderr and its exit code (tierctl/errors.py: 1 failed, 2 usage
or bad input, 3 daemon unreachable, 4 permission denied, 70 internal error); anything else is a bug,
reported in one line with exit code 70 (``TIERCTL_DEBUG=1`` prints the traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

from tierctl import __version__
from tierctl.cli import (
    cgroups_cmd,
    client_cmds,
    daemon_cmd,
    docs_cmd,
    knobs_cmd,
    move_cmd,
    pages_cmd,
    pressure_cmd,
    profile_cmd,
    samplers_cmd,
    sim_cmd,
    topology_cmd,
    tui_cmd,
    unit_cmd,
)
from tierctl.errors import EXIT_INTERNAL, TierctlError


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
    pressure_cmd.register(sub)
    tui_cmd.register(sub)
    unit_cmd.register(sub)
    knobs_cmd.register(sub)
    docs_cmd.register(sub)
    return parser


def _raise_argument_errors(parser: argparse.ArgumentParser) -> None:
    """Let a bad flag value reach ``main`` as an ArgumentError (one line, exit 2), in every subparser."""
    parser.exit_on_error = False
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _raise_argument_errors(sub)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    _raise_argument_errors(parser)
    try:
        args = parser.parse_args(argv)
    except argparse.ArgumentError as err:
        where = f"{err.argument_name}: " if err.argument_name else ""
        print(f"tierctl: error: {where}{err.message}", file=sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except TierctlError as err:
        print(f"tierctl: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as err:  # a bug: say so in one line, keep the traceback for those who ask
        if os.environ.get("TIERCTL_DEBUG"):
            traceback.print_exc()
        print(
            f"tierctl: internal error: {type(err).__name__}: {err} (a bug in tierctl; "
            "TIERCTL_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
