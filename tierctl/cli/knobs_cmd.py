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
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tierctl import strict_json
from tierctl.api.client import ApiClient, DaemonNotRunningError, default_socket
from tierctl.cli.table import render
from tierctl.errors import InputError, PermissionDeniedError, TierctlError
from tierctl.kernel.bpfhost import RECORD_PREFIX, RUN_DIR
from tierctl.kernel.knobs import (
    MAX_STATE_BYTES,
    MOUNT,
    STATE_VERSION,
    VALUE,
    KnobGuard,
    KnobRecord,
    Restored,
    boot_id,
    check_record,
    current_value,
)
from tierctl.kernel.mounts import LibcMounts, Mounts
from tierctl.kernel.roots import LIVE_ROOT
from tierctl.kernel.statefile import pid_alive, read_capped
from tierctl.samplers.damon import RECORD_PREFIX as DAMON_PREFIX
from tierctl.service.service import DEFAULT_STATE_DIR

DAEMON_STATE_DIR = DEFAULT_STATE_DIR  # the daemon's default --state-dir
DAEMON_RECORD = "knobs.json"
# the records of one-shot commands, one per process: (file name prefix, label in the table)
PER_PROCESS = ((RECORD_PREFIX, "bpf"), (DAMON_PREFIX, "damon"))
SOCKET_TIMEOUT_S = 2.0  # how long a daemon may take to answer before it counts as busy (still refused)
COLUMNS = ("record", "kind", "knob", "original", "set to", "now", "state")


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


# ------------------------------------------------------------------------------------------- model
@dataclass(frozen=True)
class Places:
    """Where the records, the knobs and the daemon's socket are (fake trees in tests)."""

    state_dir: Path
    run_dir: Path
    root: Path
    socket: Path
    mounts: Mounts

    @property
    def daemon_record(self) -> Path:
        return self.state_dir / DAEMON_RECORD


@dataclass(frozen=True)
class Knob:
    record: KnobRecord
    current: str | None  # None: the knob no longer exists (or nothing is mounted, for a mount)

    @property
    def kind(self) -> str:
        return self.record.interface

    @property
    def drifted(self) -> bool:
        """Someone changed it since tierctl set it (or it disappeared)."""
        return self.current != self.record.expected

    @property
    def at_original(self) -> bool:
        return self.current == self.record.original

    @property
    def state(self) -> str:
        if self.current is None and self.record.kind != MOUNT:
            return "gone"
        if not self.drifted:
            return "set by tierctl"
        return "drifted (original)" if self.at_original else "drifted"


@dataclass(frozen=True)
class Record:
    path: Path
    label: str  # "daemon", "bpf.PID" (one word: the table stays easy to cut)
    pid: int | None  # the process that wrote it
    alive: bool
    earlier_boot: str | None  # the boot id of an earlier boot: nothing to restore
    time: float
    knobs: tuple[Knob, ...]

    @property
    def owner(self) -> str:
        if self.pid is None:
            return "left by an unknown process"
        return f"in use by PID {self.pid} (alive)" if self.alive else f"left by PID {self.pid} (gone)"


@dataclass(frozen=True)
class Problem:
    path: Path
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else str(self.path)
        return f"{where}: {self.message}"


@dataclass
class Survey:
    records: list[Record] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    set_aside: list[Path] = field(default_factory=list)  # <record>.corrupt files KnobGuard moved away

    @property
    def pending(self) -> list[tuple[Record, Knob]]:
        return [(r, k) for r in self.records if r.earlier_boot is None for k in r.knobs]


# ------------------------------------------------------------------------------------------ survey
def survey(places: Places) -> Survey:
    """Every record still on disk, read without changing anything."""
    out = Survey()
    files = [(places.daemon_record, "daemon", None)]
    files += [(f, f"{label}.{pid}", pid) for f, label, pid in _sampler_records(places.run_dir)]
    boot = boot_id(places.root)
    for path, label, pid in files:
        try:
            rec = _read_record(path, label, pid, boot, places)
        except _Corrupt as e:
            out.problems.append(Problem(path, e.line, e.message))
            continue
        if rec is not None:
            out.records.append(rec)
    corrupt = [places.daemon_record.with_name(DAEMON_RECORD + ".corrupt")]
    for prefix, _ in PER_PROCESS:
        corrupt += _glob(places.run_dir, f"{prefix}*.json.corrupt")
    out.set_aside = [p for p in corrupt if p.is_file()]
    return out


def _glob(folder: Path, pattern: str) -> list[Path]:
    try:
        return sorted(folder.glob(pattern))
    except PermissionError:
        raise PermissionDeniedError(
            "permission denied: cannot list the folder (root needed)", str(folder)
        ) from None
    except OSError as e:
        raise InputError(f"cannot list the folder: {e.strerror or e}", str(folder)) from None


def _sampler_records(run_dir: Path) -> list[tuple[Path, str, int]]:
    """The ``bpf-knobs.PID.json`` and ``damon-knobs.PID.json`` records (the names the samplers'
    restore of dead processes' records considers), with their label."""
    out = []
    for prefix, label in PER_PROCESS:
        for f in _glob(run_dir, f"{prefix}*.json"):
            pid = f.name[len(prefix) : -len(".json")]
            if pid.isdigit():
                out.append((f, label, int(pid)))
    return out


class _Corrupt(Exception):
    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


def _read_record(path: Path, label: str, pid: int | None, boot: str | None, places: Places) -> Record | None:
    """The record at ``path`` (None when there is none); _Corrupt for what KnobGuard would set aside."""
    try:
        raw = read_capped(path, MAX_STATE_BYTES)
    except PermissionError:
        raise PermissionDeniedError(
            "permission denied: cannot read the knob record (root needed)", str(path)
        ) from None
    except ValueError as e:
        raise _Corrupt(f"not a tierctl knob record ({e})") from None
    except OSError as e:
        raise InputError(f"cannot read the knob record: {e.strerror or e}", str(path)) from None
    if raw is None:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _Corrupt("not a tierctl knob record (not UTF-8)", raw.count(b"\n", 0, e.start) + 1) from None
    try:
        data = strict_json.loads(text)
    except json.JSONDecodeError as e:
        raise _Corrupt(f"not a tierctl knob record (not JSON: {e.msg})", e.lineno) from None
    except ValueError as e:
        raise _Corrupt(f"not a tierctl knob record ({e})", _duplicate_line(text, str(e))) from None
    keys, entries = _layout(text)
    if not isinstance(data, dict):
        raise _Corrupt("not a tierctl knob record (not a JSON object)", 1)
    if data.get("version") != STATE_VERSION:
        raise _Corrupt(
            f"not a tierctl knob record (version {data.get('version')!r}, expected {STATE_VERSION})",
            keys.get("version", 1),
        )
    items = data.get("knobs")
    if not isinstance(items, list):
        raise _Corrupt('not a tierctl knob record ("knobs" is not a list)', keys.get("knobs", 1))
    recs = []
    for i, k in enumerate(items):
        line = entries[i] if i < len(entries) else keys.get("knobs")
        try:
            r = KnobRecord(str(k["knob"]), str(k["original"]), str(k["expected"]), str(k.get("kind", VALUE)))
            check_record(r)
        except (KeyError, TypeError, AttributeError) as e:
            why = f"no {e}" if isinstance(e, KeyError) else "not an object"
            raise _Corrupt(f"not a tierctl knob record (entry {i + 1}: {why})", line) from None
        except InputError as e:
            raise _Corrupt(f"not a tierctl knob record (entry {i + 1}: {e.message})", line) from None
        except ValueError as e:
            raise _Corrupt(f"not a tierctl knob record (entry {i + 1}: {e})", line) from None
        recs.append(r)
    if pid is None and isinstance(data.get("pid"), int) and not isinstance(data.get("pid"), bool):
        pid = data["pid"]
    recorded_boot = data.get("boot_id")
    earlier = recorded_boot if isinstance(recorded_boot, str) and boot and recorded_boot != boot else None
    when = data.get("time")
    return Record(
        path=path,
        label=label,
        pid=pid,
        # a pid of an earlier boot names some other process now
        alive=earlier is None and pid is not None and pid > 0 and pid_alive(pid),
        earlier_boot=earlier,
        time=float(when) if isinstance(when, int | float) and not isinstance(when, bool) else 0.0,
        knobs=tuple(Knob(r, _current(r, places)) for r in recs),
    )


def _current(rec: KnobRecord, places: Places) -> str | None:
    try:
        return current_value(places.root, places.mounts, rec)
    except PermissionError:
        raise PermissionDeniedError(
            "permission denied: cannot read the knob (root needed)", rec.knob
        ) from None
    except OSError as e:
        raise InputError(f"cannot read the knob: {e.strerror or e}", rec.knob) from None


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _layout(text: str) -> tuple[dict[str, int], list[int]]:
    """The line of each top-level key of a JSON object, and of each entry of its "knobs" list (for
    errors as file:line; the text parsed as JSON already)."""
    dec = json.JSONDecoder()
    space = re.compile(r"\s*")
    keys: dict[str, int] = {}
    entries: list[int] = []

    def skip(i: int) -> int:
        m = space.match(text, i)
        return m.end() if m else i

    try:
        i = skip(0)
        if not text.startswith("{", i):
            return keys, entries
        i = skip(i + 1)
        while i < len(text) and text[i] != "}":
            key, j = dec.raw_decode(text, i)
            keys[str(key)] = _line_of(text, i)
            j = skip(skip(j) + 1)  # past ":"
            if key == "knobs" and text.startswith("[", j):
                j = skip(j + 1)
                while text[j] != "]":
                    entries.append(_line_of(text, j))
                    _, j = dec.raw_decode(text, j)
                    j = skip(j)
                    if text[j] == ",":
                        j = skip(j + 1)
                j += 1
            else:
                _, j = dec.raw_decode(text, j)
            i = skip(j)
            if i < len(text) and text[i] == ",":
                i = skip(i + 1)
    except (ValueError, IndexError):
        pass
    return keys, entries


def _duplicate_line(text: str, message: str) -> int | None:
    """The line of the second ``"key":`` for strict_json's "duplicate key 'x'" (None otherwise)."""
    m = re.fullmatch(r"duplicate key '(.*)'", message)
    if m is None:
        return None
    seen = [x.start() for x in re.finditer(re.escape(json.dumps(m.group(1))) + r"\s*:", text)]
    return _line_of(text, seen[1]) if len(seen) > 1 else None


# ------------------------------------------------------------------------------------------ restore
@dataclass(frozen=True)
class Outcome:
    record: Path
    knob: str
    kind: str
    original: str
    outcome: str  # "restored" | "already" (at its original value) | "gone" | "failed" | "removed"
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome != "failed"

    def line(self) -> str:
        shown = _shown(self.original, self.kind)
        if self.kind == "mount" and self.outcome in ("restored", "already"):
            return f"{self.knob}: " + ("unmounted" if self.outcome == "restored" else "already unmounted")
        if self.outcome == "restored":
            return f"{self.knob}: restored to {shown}" + (f" ({self.detail})" if self.detail else "")
        if self.outcome == "already":
            return f"{self.knob}: already at its original value {shown}"
        if self.outcome == "gone":
            return f"{self.knob}: gone, nothing to restore ({self.detail})"
        if self.outcome == "removed":
            return self.detail
        return f"{self.knob}: failed: {self.detail}"


def refusal(places: Places, found: Survey) -> str | None:
    """Why --restore must not run now (None: it may)."""
    try:
        with ApiClient(places.socket, timeout=SOCKET_TIMEOUT_S) as client:
            client.call("status")
        return (
            f"a tierctl daemon answers on {places.socket}: stop it first (systemctl stop tierctl); "
            "it restores its own knobs when it stops"
        )
    except DaemonNotRunningError:
        pass
    except TierctlError as e:
        return (
            f"something listens on the daemon's socket {places.socket} ({e.message}): a running daemon "
            "would fight over the knobs; stop it first"
        )
    for r in found.records:
        if r.alive:
            who = "the daemon" if r.label == "daemon" else "a tierctl command (its BPF sampler)"
            return (
                f"{r.path} is in use by PID {r.pid} (alive): {who} holds these knobs and would fight "
                "over them; stop it first (it restores them when it stops)"
            )
    return None


def restore(places: Places, found: Survey) -> list[Outcome]:
    """Restore every record ``found`` (newest first) through KnobGuard.restore_all, as the daemon does."""
    out: list[Outcome] = []
    for r in sorted(found.records, key=lambda r: r.time, reverse=True):
        if not _writable(r.path):
            raise PermissionDeniedError(
                "permission denied: restoring rewrites or removes this knob record (root needed)", str(r.path)
            )
        before = {k.record.knob: k for k in r.knobs}
        try:
            guard = KnobGuard(r.path, places.root, mounts=places.mounts)
            if guard.problem:  # an earlier boot's record, removed; or one that changed since the survey
                what = "removed" if r.earlier_boot else "failed"
                out.append(Outcome(r.path, "(the record)", "", "", what, guard.problem))
                continue
            done = guard.restore_all()
        except PermissionError as e:
            raise PermissionDeniedError(
                f"permission denied: {e.strerror or e} (root needed)", e.filename or str(r.path)
            ) from None
        except TierctlError as e:
            out.append(Outcome(r.path, str(r.path), "", "", "failed", str(e)))
            continue
        out += [_outcome(r.path, d, before.get(d.knob)) for d in done]
    return out


def _writable(path: Path) -> bool:
    """Whether this process may replace or remove ``path`` (KnobGuard rewrites it in its folder)."""
    eff = os.access in os.supports_effective_ids
    return os.access(path.parent, os.W_OK | os.X_OK, effective_ids=eff)


def _outcome(path: Path, done: Restored, was: Knob | None) -> Outcome:
    kind = was.record.interface if was is not None else ""
    if done.outcome == "failed":
        return Outcome(path, done.knob, kind, done.value, "failed", done.error)
    if was is not None and was.at_original:
        return Outcome(path, done.knob, kind, done.value, "already")
    if done.outcome == "gone":
        return Outcome(path, done.knob, kind, done.value, "gone", done.error)
    detail = ""
    if was is not None and was.drifted and was.current is not None and was.record.kind != MOUNT:
        detail = f"it had drifted to {was.current}"
    return Outcome(path, done.knob, kind, done.value, "restored", detail)


# ------------------------------------------------------------------------------------------ output
def _shown(value: str | None, kind: str) -> str:
    if kind == "mount":
        return value or "unmounted"  # the filesystem type while mounted
    if value is None:
        return "(gone)"
    return value if value != "" else '""'


def describe(found: Survey, places: Places, width: int | None = None) -> str:
    lines = [f"{r.path}: {r.owner}, {_count(len(r.knobs))}" for r in found.records if r.earlier_boot is None]
    lines += [
        f"{r.path}: from an earlier boot (boot id {r.earlier_boot}): the reboot reset its knobs; nothing to "
        "restore (the daemon's next start or --restore removes it)"
        for r in found.records
        if r.earlier_boot is not None
    ]
    lines += [
        f"{p}: an unreadable record tierctl set aside; the knobs it names were not restored (see its "
        "originals; docs/real-machine.md says how to restore by hand)"
        for p in found.set_aside
    ]
    pending = found.pending
    if not pending and found.problems:
        lines.append(f"no knobs pending restore in the readable records ({_count_records(found)} unreadable)")
        return "\n".join(lines)
    if not pending:
        lines.append(f"no kernel knobs pending restore (checked {_checked(places)})")
        return "\n".join(lines)
    rows = [
        (
            r.label,
            k.kind,
            k.record.knob,
            _shown(k.record.original, k.kind),
            _shown(k.record.expected, k.kind),
            _shown(k.current, k.kind),
            k.state,
        )
        for r, k in pending
    ]
    drifted = sum(k.drifted for _, k in pending)
    lines += ["", render(COLUMNS, rows, right=[False] * len(COLUMNS), max_width=width), ""]
    lines.append(
        f"{_count(len(pending))} pending restore"
        + (f", {drifted} drifted" if drifted else "")
        + "; tierctl knobs --restore writes the originals back (as root, with no daemon or sampler running)"
    )
    return "\n".join(lines)


def _checked(places: Places) -> str:
    return ", ".join(
        [str(places.daemon_record), *(str(places.run_dir / f"{p}*.json") for p, _ in PER_PROCESS)]
    )


def _count_records(found: Survey) -> str:
    n = len(found.problems)
    return f"{n} record" + ("" if n == 1 else "s")


def _count(n: int) -> str:
    return f"{n} knob" + ("" if n == 1 else "s")


def survey_json(found: Survey) -> dict[str, Any]:
    return {
        "pending": len(found.pending),
        "records": [
            {
                "file": str(r.path),
                "label": r.label,
                "pid": r.pid,
                "alive": r.alive,
                "owner": r.owner,
                "earlier_boot": r.earlier_boot,
                "knobs": [
                    {
                        "kind": k.kind,
                        "knob": k.record.knob,
                        "original": k.record.original,
                        "expected": k.record.expected,
                        "current": k.current,
                        "drifted": k.drifted,
                        "state": k.state,
                    }
                    for k in r.knobs
                ],
            }
            for r in found.records
        ],
        "problems": [{"file": str(p.path), "line": p.line, "message": p.message} for p in found.problems],
        "set_aside": [str(p) for p in found.set_aside],
    }


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
        print(f"nothing to restore (checked {_checked(places)})")
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
