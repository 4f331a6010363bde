"""``--cycle-log FILE``: one JSON line per cycle, what it saw, decided and moved (docs/daemon.md).

A write that fails (disk full, the file gone read-only) ends the log with one event saying why; the
daemon goes on placing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

from tierctl.core.controller import CycleReport
from tierctl.errors import InputError


class CycleLog:
    def __init__(self, path: Path, wall: Callable[[], float], emit: Callable[..., None]) -> None:
        self.path = path
        self.wall = wall
        self.emit = emit
        try:
            self._file: TextIO | None = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 (closed in close())
        except OSError as e:
            raise InputError(f"cannot open for appending: {e.strerror}", str(path)) from None

    def write(self, rep: CycleReport, tracked_pages: int, policy: Mapping[str, Any]) -> None:
        """The line of cycle ``rep``; ``policy``: the policy's scalar figures, logged when it decided."""
        if self._file is None:
            return
        line: dict[str, Any] = {
            "time": round(self.wall(), 3),
            "cycle": rep.now,
            "seconds": round(rep.seconds, 4),
            "cpu_s": round(rep.cpu_s, 4),
            "mover_cpu_s": round(rep.mover_cpu_s, 4),
            "samples": rep.samples,
            "decided": rep.decided,
            "planned": [rep.planned_promotions, rep.planned_demotions],
            "promoted": rep.promoted,
            "demoted": rep.demoted,
            "rate_limited": rep.rate_limited,
            "tracked_pages": tracked_pages,
        }
        if rep.decided and policy:  # scalar figures (counts, the target, a full evaluation or not)
            line["policy"] = dict(policy)
        try:
            self._file.write(json.dumps(line) + "\n")
        except OSError as e:
            self.emit("cycle_log", message=f"{self.path}: {e.strerror}; not logging cycles any more")
            self.close()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
