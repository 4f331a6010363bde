"""``tierctl knobs``: the kernel knobs tierctl recorded and has not restored yet, and ``--restore``.

Two kinds of record hold them (``tierctl.kernel.knobs.KnobGuard`` writes both): the daemon's
``STATE_DIR/knobs.json`` (``--state-dir``, default the daemon's ``/var/lib/tierctl``) and one
``RUN_DIR/bpf-knobs.PID.json`` per one-shot command whose BPF sampler changed something
(``tierctl.kernel.bpfhost.RUN_DIR``, ``/run/tierctl``).

- Listing only reads: the records (parsed here, without ``KnobGuard``, which would set an unreadable
  record aside or drop one from an earlier boot as it loads), each knob's current value, and whether
  the process that wrote a record is alive. A record from an earlier boot is reported and not counted
  (the reboot reset its knobs; the daemon's next start removes it); an unreadable one is an error naming
  ``file:line``, and it is left exactly as it is.
- ``--restore`` refuses while a daemon answers on its socket or a record's process is alive (they would
  fight over the knobs), and while a record is unreadable (nothing is changed then); otherwise every
  record goes through ``KnobGuard(record, root).restore_all()`` — what the daemon does at start and
  ``bpfhost.restore_leftovers`` does for the sampler records — newest record first.

Exit status: 0 nothing pending (listing) / everything restored; 1 something pending / something could
not be restored; 2 bad input (an unreadable record, a refusal); 4 permission denied (root is needed to
read the records and to write the knobs back).

This module holds the command (arguments, exit status, the restore's output) and re-exports every
public name it had; reading the records is :mod:`~tierctl.cli.knobs_survey` (with
:mod:`~tierctl.cli.json_layout` for line numbers), restoring :mod:`~tierctl.cli.knobs_restore`,
the listing's text and JSON :mod:`~tierctl.cli.knobs_render`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from tierctl.api.client import default_socket
from tierctl.cli.knobs_render import COLUMNS, checked, describe, survey_json
from tierctl.cli.knobs_restore import SOCKET_TIMEOUT_S, Outcome, refusal, restore
from tierctl.cli.knobs_survey import (
    DAEMON_RECORD,
    PER_PROCESS,
    Knob,
    Places,
    Problem,
    Record,
    Survey,
    survey,
)
from tierctl.errors import InputError
from tierctl.kernel.bpfhost import RECORD_PREFIX, RUN_DIR
from tierctl.kernel.mounts import LibcMounts
from tierctl.kernel.roots import LIVE_ROOT
from tierctl.samplers.damon import RECORD_PREFIX as DAMON_PREFIX
from tierctl.service.service import DEFAULT_STATE_DIR

__all__ = [
    "COLUMNS", "DAEMON_RECORD", "DAEMON_STATE_DIR", "PER_PROCESS", "SOCKET_TIMEOUT_S", "Knob", "Outcome",
    "Places", "Problem", "Record", "Survey", "describe", "refusal", "register", "restore", "run",
    "run_with", "survey", "survey_json",
]  # fmt: skip

DAEMON_STATE_DIR = DEFAULT_STATE_DIR  # the daemon's default --state-dir


def register(sub: Any) -> None:
    p = sub.add_parser(
        "knobs",
        help="list the kernel knobs tierctl changed and has not restored yet; --restore puts them back",
        description=(
            "List every kernel knob recorded by the daemon (STATE_DIR/knobs.json) or by a one-shot "
            f"command's BPF or DAMON sampler ({RUN_DIR}/{RECORD_PREFIX}PID.json, "
            f"{DAMON_PREFIX}PID.json) and not restored yet: its kind, "
            "original value, the value tierctl set, the current value and whether it drifted. Exit "
            "status 0 when nothing is pending, 1 when something is. With --restore, write the originals "
            "back as the daemon does at start (root; refused while a daemon answers on its socket or a "
            "recording process is alive): 0 when everything was restored, 1 otherwise. 2: bad input "
            "(an unreadable record: nothing is changed), 4: permission denied."
        ),
    )
    p.add_argument(
        "--state-dir",
        type=Path,
        default=DAEMON_STATE_DIR,
        metavar="DIR",
        help=f"the daemon's state directory, as given to tierctl daemon (default {DAEMON_STATE_DIR})",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--restore",
        action="store_true",
        help="write every original back and clear the records (root; no daemon or sampler may be running)",
    )
    p.add_argument(
        "--socket",
        type=Path,
        default=None,
        metavar="PATH",
        help="the daemon's API socket, checked before --restore (default $TIERCTL_SOCKET or "
        "/run/tierctl/tierctl.sock)",
    )
    # fake trees in tests: knobs below --root (its proc/ also gives the mount table), records in --run-dir
    p.add_argument("--root", type=Path, default=LIVE_ROOT, help=argparse.SUPPRESS)
    p.add_argument("--run-dir", type=Path, default=RUN_DIR, help=argparse.SUPPRESS)
    p.set_defaults(func=run)


# -------------------------------------------------------------------------------------------- run
def run(args: argparse.Namespace) -> int:
    root = Path(args.root)
    places = Places(
        state_dir=Path(args.state_dir),
        run_dir=Path(args.run_dir),
        root=root,
        socket=args.socket or default_socket(),
        mounts=LibcMounts(root / "proc"),
    )
    return run_with(places, as_json=args.json, do_restore=args.restore)


def run_with(places: Places, *, as_json: bool = False, do_restore: bool = False) -> int:
    if places.state_dir.exists() and not places.state_dir.is_dir():
        raise InputError("not a directory", "--state-dir")
    found = survey(places)
    if do_restore:
        return _run_restore(places, found, as_json)
    if as_json:
        print(json.dumps(survey_json(found), indent=2))
    else:
        # a terminal's width (or $COLUMNS); piped, no wrapping: knob paths stay whole for grep
        tty = sys.stdout.isatty() or "COLUMNS" in os.environ
        print(describe(found, places, shutil.get_terminal_size().columns if tty else None))
    if found.problems:
        raise _unreadable(found.problems)
    return 1 if found.pending else 0


def _unreadable(problems: list[Problem]) -> InputError:
    first, *rest = problems
    more = f" (and {len(rest)} more: {'; '.join(str(p) for p in rest)})" if rest else ""
    where = f"{first.path}:{first.line}" if first.line is not None else str(first.path)
    return InputError(
        f"{first.message}; left as it is, nothing was changed: fix it or move it aside (the originals it "
        f"names can be restored by hand, docs/real-machine.md){more}",
        where,
    )


def _run_restore(places: Places, found: Survey, as_json: bool) -> int:
    why = refusal(places, found)
    if why is not None:
        raise InputError(f"not restoring: {why}", "tierctl knobs --restore")
    if found.problems:
        raise _unreadable(found.problems)
    outcomes = restore(places, found)
    if as_json:
        print(
            json.dumps(
                {
                    "ok": all(o.ok for o in outcomes),
                    "outcomes": [
                        {
                            "file": str(o.record),
                            "knob": o.knob,
                            "kind": o.kind,
                            "original": o.original,
                            "outcome": o.outcome,
                            "detail": o.detail,
                        }
                        for o in outcomes
                    ],
                },
                indent=2,
            )
        )
    elif not outcomes:
        print(f"nothing to restore (checked {checked(places)})")
    else:
        shown: Path | None = None
        for o in outcomes:
            if o.outcome == "removed":
                print(o.line())
                continue
            if o.record != shown:
                shown = o.record
                print(f"{o.record}:")
            print(f"  {o.line()}")
    return 0 if all(o.ok for o in outcomes) else 1
