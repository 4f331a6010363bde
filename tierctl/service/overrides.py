"""Operator overrides (pins, quotas, pause), persisted atomically so they survive restarts and SIGKILL.

Written as JSON to a temporary file in the same directory, fsync'd, renamed over the
old file, and the directory fsync'd: a crash at any moment leaves either the old or
the new set, never a torn file. A file that cannot be parsed is kept aside as
``<name>.corrupt`` and reported, never silently dropped.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tierctl.errors import InputError, KernelError

TIERS = ("fast", "slow", "auto")


@dataclass
class Overrides:
    pins: dict[str, str] = field(default_factory=dict)  # cgroup path -> "fast" | "slow"
    quotas: dict[str, dict[str, Any]] = field(default_factory=dict)  # cgroup -> {"fast_min", "fast_max"}
    paused: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"version": 1, "pins": dict(self.pins), "quotas": dict(self.quotas), "paused": self.paused}


class OverrideStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.problem: str | None = None  # set when a corrupt file was put aside at load

    def load(self) -> Overrides:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return Overrides()
        except OSError as e:
            raise KernelError(f"cannot read overrides: {e.strerror}", str(self.path)) from None
        try:
            raw = json.loads(text)
            pins = {str(k): str(v) for k, v in raw.get("pins", {}).items()}
            if any(v not in ("fast", "slow") for v in pins.values()):
                raise ValueError("a pin must be fast or slow")
            quotas = {str(k): dict(v) for k, v in raw.get("quotas", {}).items()}
            return Overrides(pins, quotas, bool(raw.get("paused", False)))
        except (ValueError, AttributeError, TypeError) as e:
            aside = self.path.with_name(self.path.name + ".corrupt")
            os.replace(self.path, aside)
            self.problem = f"{self.path}: unreadable overrides ({e}); kept as {aside}, starting without"
            return Overrides()

    def save(self, o: Overrides) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        data = json.dumps(o.to_json(), indent=1, sort_keys=True).encode()
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            dfd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError as e:
            raise KernelError(f"cannot save overrides: {e.strerror}", str(self.path)) from None


def check_tier(tier: str) -> str:
    if tier not in TIERS:
        raise InputError(f"must be one of {', '.join(TIERS)}, got {tier!r}", "tier")
    return tier
