"""Operator overrides (pins, quotas, pause), persisted atomically so they survive restarts and SIGKILL.

Written as JSON to a temporary file in the same directory, fsync'd, renamed over the
old file, and the directory fsync'd: a crash at any moment leaves either the old or
the new set, never a torn file. A file that cannot be parsed (or holds a value of the wrong type: a pin
other than fast/slow, a quota the policy could not read, a non-boolean ``paused``) is kept aside as
``<name>.corrupt`` and reported, never silently dropped. The temporary file of a save that was killed
before its rename (``.<name>.<pid>.tmp``, its writer gone) is removed at load.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tierctl.core.policy import amount_to_pages
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
        self._remove_stale_tmp()
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
            quotas = {str(k): _quota(v) for k, v in raw.get("quotas", {}).items()}
            paused = raw.get("paused", False)
            if not isinstance(paused, bool):
                raise ValueError(f"paused must be true or false, got {paused!r}")
            return Overrides(pins, quotas, paused)
        except (ValueError, AttributeError, TypeError, InputError) as e:
            aside = self.path.with_name(self.path.name + ".corrupt")
            os.replace(self.path, aside)
            self.problem = f"{self.path}: unreadable overrides ({e}); kept as {aside}, starting without"
            return Overrides()

    def _remove_stale_tmp(self) -> None:
        """Temporary files of saves killed before their rename, whose writer is gone."""
        for tmp in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            pid = tmp.name[len(self.path.name) + 2 : -4]
            if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
                with contextlib.suppress(OSError):
                    tmp.unlink()

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


def _quota(v: Any) -> dict[str, Any]:
    if not isinstance(v, dict) or not set(v) <= {"fast_min", "fast_max"}:
        raise ValueError(f"a quota must be {{fast_min, fast_max}}, got {v!r}")
    for name in ("fast_min", "fast_max"):
        if v.get(name) is not None:
            amount_to_pages(v[name], page_size=4096, fast_capacity=1, where=name)  # InputError if unreadable
    return {"fast_min": v.get("fast_min"), "fast_max": v.get("fast_max")}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def check_tier(tier: str) -> str:
    if tier not in TIERS:
        raise InputError(f"must be one of {', '.join(TIERS)}, got {tier!r}", "tier")
    return tier
