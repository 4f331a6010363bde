"""``tierctl unit``: the shipped systemd unit, pointed at this installation.

The unit in ``tierctl/data/tierctl.service`` names ``/usr/bin/tierctl`` and ``/etc/tierctl/profiles``
(a distribution package's paths); pip installs elsewhere. ``tierctl unit`` prints the unit with
``ExecStart=`` running the tierctl executable actually installed (the one running this command, else
``tierctl`` on ``$PATH``, or ``--exec PATH``) and ``--profiles DIR``, so that
``tierctl unit > /etc/systemd/system/tierctl.service`` is the install step. The sandbox stays as
shipped, with one exception: an installation below /home, /root or /run/user gets
``ProtectHome=read-only`` (``yes`` would hide the code from the daemon). One below /tmp or /var/tmp is
refused: ``PrivateTmp=yes`` hides it, and a service should not run code from a world-writable tree.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import tierctl
from tierctl.data import unit_file
from tierctl.errors import InputError, UnavailableError

SHIPPED_EXEC = "/usr/bin/tierctl"
SHIPPED_PROFILES = "/etc/tierctl/profiles"
SHIPPED_EXEC_START = f"ExecStart={SHIPPED_EXEC} daemon --profiles {SHIPPED_PROFILES}"
HOME_DIRS = ("/home", "/root", "/run/user")  # what ProtectHome=yes makes inaccessible
TMP_DIRS = ("/tmp", "/var/tmp")  # what PrivateTmp=yes replaces


def register(sub: Any) -> None:
    p = sub.add_parser(
        "unit",
        help="print the systemd unit for this installation",
        description="Print tierctl's systemd unit with ExecStart= running the tierctl executable that is "
        "installed here: tierctl unit > /etc/systemd/system/tierctl.service",
    )
    p.add_argument(
        "--exec",
        dest="exec_path",
        metavar="PATH",
        help="the tierctl executable ExecStart= runs (default: the one running this command, else "
        "tierctl on $PATH)",
    )
    p.add_argument(
        "--profiles",
        metavar="DIR",
        default=SHIPPED_PROFILES,
        help=f"profiles directory the daemon reads (default {SHIPPED_PROFILES})",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    exe = find_executable(args.exec_path, sys.argv[0])
    profiles = Path(os.path.abspath(args.profiles))
    code = Path(tierctl.__file__).parent
    sys.stdout.write(render_unit(unit_file().read_text(encoding="utf-8"), exe, profiles, code))
    return 0


def _is_executable(p: Path) -> bool:
    return p.is_file() and os.access(p, os.X_OK)


def find_executable(explicit: str | None, argv0: str) -> Path:
    """The absolute path of the tierctl executable the unit should run (symlinks kept, so that a stable
    /usr/local/bin/tierctl stays the path even when it points into a versioned tree)."""
    if explicit is not None:
        found = explicit if "/" in explicit else shutil.which(explicit)
        if found is None or not _is_executable(Path(found)):
            raise InputError(f"not an executable file: {explicit!r}", "--exec")
        return Path(os.path.abspath(found))
    candidates = []
    if Path(argv0).name == "tierctl":  # started as the console script (not python -m tierctl)
        candidates.append(argv0 if "/" in argv0 else shutil.which(argv0))
    candidates.append(shutil.which("tierctl"))
    for found in candidates:
        if found is not None and _is_executable(Path(found)):
            return Path(os.path.abspath(found))
    raise UnavailableError(
        f"cannot tell where tierctl is installed (started as {argv0!r}, no tierctl on $PATH): "
        "give --exec PATH",
        "tierctl unit",
    )


def _below(p: Path, tops: Sequence[str]) -> bool:
    return any(p == Path(t) or Path(t) in p.parents for t in tops)


def exec_word(p: Path, where: str) -> str:
    """One word of a systemd command line: ``%`` (specifiers) and ``$`` (variables) doubled, quoted
    when it holds whitespace, quotes or backslashes."""
    text = str(p)
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise InputError(f"a control character in {text!r} cannot be written to a unit file", where)
    text = text.replace("%", "%%").replace("$", "$$")
    if any(c.isspace() or c in "\"'\\;" for c in text):
        text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def render_unit(template: str, exe: Path, profiles: Path, code: Path) -> str:
    """The shipped unit ``template`` with ExecStart= running ``exe`` on ``profiles``; ``code`` is where
    tierctl's Python package lives (it must be visible inside the sandbox too)."""
    lines = template.splitlines()
    if [ln for ln in lines if ln.startswith("ExecStart=")] != [SHIPPED_EXEC_START]:
        raise UnavailableError(
            f"the shipped unit has no single {SHIPPED_EXEC_START!r} line: is this installation of "
            "tierctl intact?",
            str(unit_file()),
        )
    seen = [exe, Path(os.path.realpath(exe)), profiles, code, Path(os.path.realpath(code))]
    for p in seen:
        if _below(p, TMP_DIRS):
            raise InputError(
                f"{p} is below {', '.join(TMP_DIRS)}, which the unit's PrivateTmp=yes hides from the "
                "daemon: install tierctl (and its profiles) elsewhere",
                "tierctl unit",
            )
    in_home = [str(p) for p in seen if _below(p, HOME_DIRS)]
    out = [
        f"# Generated by `tierctl unit` (tierctl {tierctl.__version__}) from the shipped unit: ExecStart= "
        "runs this installation."
    ]
    for ln in lines:
        if ln == SHIPPED_EXEC_START:
            ln = f"ExecStart={exec_word(exe, '--exec')} daemon --profiles {exec_word(profiles, '--profiles')}"
        elif ln.startswith("#"):
            ln = ln.replace(SHIPPED_EXEC, str(exe)).replace(SHIPPED_PROFILES, str(profiles))
        elif ln == "ProtectHome=yes" and in_home:
            out.append(f"# read-only, not yes: tierctl is installed in a home directory ({in_home[0]})")
            ln = "ProtectHome=read-only"
        out.append(ln)
    return "\n".join(out) + "\n"
