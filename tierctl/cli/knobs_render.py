"""How ``tierctl knobs`` shows what it found: the table of pending knobs with a line per record
(owner, earlier boot, set-aside files), the same as one JSON object, and a knob value as shown.
"""

from __future__ import annotations

from typing import Any

from tierctl.cli.knobs_survey import PER_PROCESS, Places, Survey
from tierctl.cli.table import render

COLUMNS = ("record", "kind", "knob", "original", "set to", "now", "state")


def shown_value(value: str | None, kind: str) -> str:
    """A recorded or current value as the table and the restore lines show it."""
    if kind == "mount":
        return value or "unmounted"  # the filesystem type while mounted
    if value is None:
        return "(gone)"
    return value if value != "" else '""'


def describe(found: Survey, places: Places, width: int | None = None) -> str:
    """The listing: a line per record, then the table of pending knobs (wrapped to ``width``)."""
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
        lines.append(f"no kernel knobs pending restore (checked {checked(places)})")
        return "\n".join(lines)
    rows = [
        (
            r.label,
            k.kind,
            k.record.knob,
            shown_value(k.record.original, k.kind),
            shown_value(k.record.expected, k.kind),
            shown_value(k.current, k.kind),
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


def checked(places: Places) -> str:
    """The record files (and globs) a listing or a restore looked at."""
    return ", ".join(
        [str(places.daemon_record), *(str(places.run_dir / f"{p}*.json") for p, _ in PER_PROCESS)]
    )


def _count_records(found: Survey) -> str:
    n = len(found.problems)
    return f"{n} record" + ("" if n == 1 else "s")


def _count(n: int) -> str:
    return f"{n} knob" + ("" if n == 1 else "s")


def survey_json(found: Survey) -> dict[str, Any]:
    """The listing as one JSON object (``--json``)."""
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
