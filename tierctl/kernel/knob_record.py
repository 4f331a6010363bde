"""What a knob record is, independent of any kernel: its entries (:class:`KnobRecord`: a file's value,
a mount, kdamonds), the knob paths tierctl writes, the record file's format (:func:`check_header`,
:func:`parse_entries`, :func:`record_json`) and the kdamonds' text (:func:`format_kdamonds`). Pure:
:mod:`tierctl.kernel.knobs` (``KnobGuard``) reads, writes and restores through it, and ``tierctl knobs``
reads record files with it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from tierctl.errors import InputError
from tierctl.kernel.roots import LIVE_CGROUP, LIVE_PROC, LIVE_SYS

STATE_VERSION = 1
MAX_STATE_BYTES = 1 << 20

# the NUMA-balancing knobs tierctl sets for hint-fault sampling (docs/hint-faults.md), as the kernel
# documents them; a KnobGuard resolves them below its root
NUMA_BALANCING = "/proc/sys/kernel/numa_balancing"
PROMOTE_RATE_LIMIT = "/proc/sys/kernel/numa_balancing_promote_rate_limit_MBps"
NUMA_BALANCING_SCAN = "/sys/kernel/debug/sched/numa_balancing"  # debugfs: scan_delay_ms, ...
BPF_STATS_ENABLED = "/proc/sys/kernel/bpf_stats_enabled"  # BPF run-time accounting (fallback switch)
BOOT_ID = "/proc/sys/kernel/random/boot_id"  # a new value each boot: knobs are reset with it
DAMON_KDAMONDS = f"{LIVE_SYS}/kernel/mm/damon/admin/kdamonds/nr_kdamonds"  # the knob of a damon record
# kinds of record: a file's value, a filesystem tierctl mounted, kdamonds tierctl set up and started
VALUE, MOUNT, DAMON = "value", "mount", "damon"
KINDS = (VALUE, MOUNT, DAMON)
_SELECTED = re.compile(r"\[([^\]\s]+)\]")
# record paths are the live ones (as the kernel documents them), most specific prefix first
_INTERFACES = (
    (f"{LIVE_PROC}/sys/", "sysctl"),
    (f"{LIVE_SYS}/kernel/debug/", "debugfs"),
    (f"{LIVE_CGROUP}/", "cgroup"),
    (f"{LIVE_SYS}/", "sysfs"),
)


@dataclass(frozen=True)
class KnobRecord:
    knob: str  # absolute path as the kernel documents it (kind mount: the mount point; kind damon:
    # DAMON_KDAMONDS)
    original: str  # value before tierctl first wrote it (kind mount: "" = nothing was mounted; kind
    # damon: "0", what restoring writes to nr_kdamonds)
    expected: str  # value tierctl last wrote, as the kernel read it back (kind mount: the fs type; kind
    # damon: the kdamonds as format_kdamonds writes them)
    kind: str = VALUE  # VALUE | MOUNT | DAMON

    @property
    def interface(self) -> str:
        """Which kernel interface the knob is: mount, damon, sysctl, debugfs, cgroup, sysfs, else file."""
        if self.kind in (MOUNT, DAMON):
            return self.kind
        for prefix, name in _INTERFACES:
            if self.knob.startswith(prefix):
                return name
        return "file"


@dataclass(frozen=True)
class Drift:
    knob: str
    expected: str
    actual: str | None  # None: the knob no longer exists


@dataclass(frozen=True)
class Restored:
    knob: str
    value: str  # the original written back (or that could not be)
    outcome: str  # "restored" | "gone" | "failed"
    error: str = ""


def record_json(r: KnobRecord) -> dict[str, str]:
    out = {"knob": r.knob, "original": r.original, "expected": r.expected}
    if r.kind != VALUE:  # value records stay as version 1 always wrote them
        out["kind"] = r.kind
    return out


class RecordError(ValueError):
    """Why data read from a knob record file is not one: ``key``, the top-level key at fault; ``entry``,
    the index of the bad entry of ``knobs`` (for a message naming its line)."""

    def __init__(self, why: str, *, key: str | None = None, entry: int | None = None) -> None:
        super().__init__(why)
        self.key = key
        self.entry = entry


def check_header(data: Any) -> dict[str, Any]:
    """``data`` (a record file's JSON) as a record's object of this version (RecordError otherwise)."""
    if not isinstance(data, dict):
        raise RecordError("not a JSON object")
    if data.get("version") != STATE_VERSION:
        raise RecordError(f"version {data.get('version')!r}, expected {STATE_VERSION}", key="version")
    return data


def parse_entries(data: dict[str, Any]) -> list[KnobRecord]:
    """The records of a record file's object, each checked as a guard could restore it (RecordError
    naming the first bad entry)."""
    items = data.get("knobs")
    if not isinstance(items, list):
        raise RecordError('"knobs" is not a list', key="knobs")
    out = []
    for i, k in enumerate(items):
        try:
            r = KnobRecord(str(k["knob"]), str(k["original"]), str(k["expected"]), str(k.get("kind", VALUE)))
            check_record(r)
        except KeyError as e:
            raise RecordError(f"entry {i + 1}: no {e}", entry=i) from None
        except (TypeError, AttributeError):
            raise RecordError(f"entry {i + 1}: not an object", entry=i) from None
        except InputError as e:
            raise RecordError(f"entry {i + 1}: {e.message}", entry=i) from None
        except ValueError as e:
            raise RecordError(f"entry {i + 1}: {e}", entry=i) from None
        out.append(r)
    return out


def check_record(rec: KnobRecord) -> None:
    """Raise InputError (a bad knob path) or ValueError (an unknown kind, a damon record that is not
    DAMON_KDAMONDS or whose kdamonds do not parse) unless a guard can restore ``rec``."""
    check_knob(rec.knob)
    if rec.kind not in KINDS:
        raise ValueError(f"unknown kind of knob record {rec.kind!r}")
    if rec.kind == DAMON:
        if rec.knob != DAMON_KDAMONDS:
            raise ValueError(f"a damon record is {DAMON_KDAMONDS}, got {rec.knob!r}")
        parse_kdamonds(rec.expected)


def format_kdamonds(kdamonds: Sequence[tuple[str, int | None]]) -> str:
    """A damon record's ``expected``: ``N`` kdamonds, then each one's operations and target pid (none
    for paddr): ``2: vaddr 4242, vaddr 4243``; ``0`` for none."""
    items = [ops if pid is None else f"{ops} {pid}" for ops, pid in kdamonds]
    return f"{len(items)}: {', '.join(items)}" if items else "0"


def parse_kdamonds(text: str) -> tuple[tuple[str, int | None], ...]:
    """The kdamonds of a damon record's ``expected`` (ValueError when it is not what
    :func:`format_kdamonds` writes)."""
    head, sep, rest = text.partition(":")
    if not head.isdigit() or int(head) != (len(rest.split(",")) if sep else 0):
        raise ValueError(f"not a count of kdamonds and their targets: {text!r}")
    out: list[tuple[str, int | None]] = []
    for item in rest.split(",") if sep else ():
        words = item.split()
        if not 1 <= len(words) <= 2 or not words[0].isalpha() or (len(words) == 2 and not words[1].isdigit()):
            raise ValueError(f"not a kdamond's operations and target pid: {item.strip()!r} in {text!r}")
        out.append((words[0], int(words[1]) if len(words) == 2 else None))
    return tuple(out)


def check_knob(knob: str) -> str:
    p = PurePosixPath(knob)
    if not p.is_absolute() or ".." in p.parts:
        raise InputError(f"a knob is an absolute path without '..', got {knob!r}", "knob")
    return str(p)


def normalise(text: str) -> str:
    text = text.strip()
    m = _SELECTED.search(text)
    return m.group(1) if m else text
