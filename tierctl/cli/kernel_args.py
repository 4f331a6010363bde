"""Arguments shared by the commands that read the running kernel."""

from __future__ import annotations

import argparse
from pathlib import Path

from tierctl.errors import InputError
from tierctl.kernel.roots import LIVE_PROC, LIVE_SYS


def add_roots(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sys-root", type=Path, default=LIVE_SYS, help=argparse.SUPPRESS)
    p.add_argument("--proc-root", type=Path, default=LIVE_PROC, help=argparse.SUPPRESS)


def pid_arg(text: str) -> int:
    try:
        pid = int(text)
    except ValueError:
        raise InputError(f"not a process id: {text!r}", "PID") from None
    if pid <= 0:
        raise InputError(f"not a process id: {text!r}", "PID")
    return pid
