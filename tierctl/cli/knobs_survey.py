"""What ``tierctl knobs`` lists: the knob records on disk, read without changing anything, with each
knob's current value and whether the process that wrote a record is alive.

Records are parsed here, not by ``KnobGuard`` (which would set an unreadable record aside, or drop one
from an earlier boot, as it loads): an unreadable one becomes a :class:`Problem` naming ``file:line``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from tierctl import strict_json
from tierctl.cli.json_layout import duplicate_line, layout
from tierctl.errors import InputError, PermissionDeniedError
from tierctl.kernel.bpfhost import RECORD_PREFIX
from tierctl.kernel.knobs import (
    MAX_STATE_BYTES,
    MOUNT,
    KnobRecord,
    RecordError,
    boot_id,
    check_header,
    current_value,
    parse_entries,
)
from tierctl.kernel.mounts import Mounts
from tierctl.kernel.statefile import pid_alive, read_capped
from tierctl.samplers.damon import RECORD_PREFIX as DAMON_PREFIX

DAEMON_RECORD = "knobs.json"
# the records of one-shot commands, one per process: (file name prefix, label in the table)
PER_PROCESS = ((RECORD_PREFIX, "bpf"), (DAMON_PREFIX, "damon"))


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
    files += [(f, f"{label}.{pid}", pid) for f, label, pid in sampler_records(places.run_dir)]
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


def sampler_records(run_dir: Path) -> list[tuple[Path, str, int]]:
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
        raise _Corrupt(f"not a tierctl knob record ({e})", duplicate_line(text, str(e))) from None
    keys, entries = layout(text)
    try:
        data = check_header(data)
        recs = parse_entries(data)
    except RecordError as e:
        line = keys.get(e.key, 1) if e.key else 1
        if e.entry is not None:
            line = entries[e.entry] if e.entry < len(entries) else keys.get("knobs")
        raise _Corrupt(f"not a tierctl knob record ({e})", line) from None
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
    """What the knob holds now (None: gone); a knob that cannot be read is the adapter's error."""
    return current_value(places.root, places.mounts, rec)
