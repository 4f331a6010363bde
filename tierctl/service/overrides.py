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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tierctl import strict_json, values
from tierctl.errors import InputError, KernelError
from tierctl.kernel.statefile import read_capped, set_aside, stale_temporaries, write_atomic

TIERS = ("fast", "slow", "auto")
VERSION = 1
MAX_STATE_BYTES = 16 << 20  # ~100 bytes per override: room for >100 000 cgroups


@dataclass
class Overrides:
    pins: dict[str, str] = field(default_factory=dict)  # cgroup path -> "fast" | "slow"
    quotas: dict[str, dict[str, Any]] = field(default_factory=dict)  # cgroup -> {"fast_min", "fast_max"}
    paused: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "pins": dict(self.pins),
            "quotas": dict(self.quotas),
            "paused": self.paused,
        }


class OverrideStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.problem: str | None = None  # set when a corrupt file was put aside at load

    def load(self) -> Overrides:
        """The saved overrides; a file that cannot be used (too big, not UTF-8, not JSON, nested too
        deeply, duplicate keys, a newer version, a value out of range) is set aside, never fatal."""
        self._remove_stale_tmp()
        try:
            raw = read_capped(self.path, MAX_STATE_BYTES)
            if raw is None:
                return Overrides()
            return parse_overrides(raw)
        except (NotADirectoryError, IsADirectoryError) as e:  # --state-dir names a file, or the reverse
            raise InputError(f"cannot read overrides: {e.strerror}", str(self.path)) from None
        except OSError as e:
            raise KernelError(f"cannot read overrides: {e.strerror}", str(self.path)) from None
        except (ValueError, AttributeError, TypeError, InputError) as e:
            why = e.message if isinstance(e, InputError) else str(e) or type(e).__name__
            aside = set_aside(self.path, "unreadable overrides", why)
            self.problem = f"{self.path}: unreadable overrides ({why}); kept as {aside}, starting without"
            return Overrides()

    def _remove_stale_tmp(self) -> None:
        """Temporary files of saves killed before their rename, whose writer is gone."""
        for tmp in stale_temporaries(self.path):
            with contextlib.suppress(OSError):
                tmp.unlink()

    def save(self, o: Overrides) -> None:
        data = json.dumps(o.to_json(), indent=1, sort_keys=True).encode()
        try:
            write_atomic(self.path, data, mode=0o640)
        except OSError as e:
            raise KernelError(f"cannot save overrides: {e.strerror}", str(self.path)) from None


def parse_overrides(raw: bytes) -> Overrides:
    """Check a saved overrides file with the same code that checks API arguments (``values``);
    raises ValueError (or InputError naming the field) for anything it cannot use."""
    if len(raw) > MAX_STATE_BYTES:
        raise ValueError(f"larger than {MAX_STATE_BYTES} bytes")
    text = raw.decode("utf-8")  # UnicodeDecodeError is a ValueError
    data = strict_json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    version = data.get("version", 1)
    if version != VERSION:
        raise ValueError(f"version {version!r}; this tierctl reads version {VERSION}")
    unknown = set(data) - {"version", "pins", "quotas", "paused"}
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)}")
    pins_raw, quotas_raw = data.get("pins", {}), data.get("quotas", {})
    if not isinstance(pins_raw, dict) or not isinstance(quotas_raw, dict):
        raise ValueError("pins and quotas must be JSON objects")
    pins = {_path(k): v for k, v in pins_raw.items()}
    if any(v not in ("fast", "slow") for v in pins.values()):
        raise ValueError("a pin must be fast or slow")
    quotas = {_path(k): _quota(k, v) for k, v in quotas_raw.items()}
    paused = data.get("paused", False)
    if not isinstance(paused, bool):
        raise ValueError(f"paused must be true or false, got {paused!r}")
    return Overrides(pins, quotas, paused)


def _path(k: str) -> str:
    if not k.startswith("/") or "\0" in k or len(k.encode("utf-8", "surrogatepass")) >= 4096:
        raise ValueError(f"not a cgroup path: {k[:80]!r}")
    return k


def _quota(path: str, v: Any) -> dict[str, Any]:
    if not isinstance(v, dict) or not set(v) <= {"fast_min", "fast_max"}:
        raise ValueError(f"quota of {path[:80]}: must be {{fast_min, fast_max}}, got {str(v)[:80]}")
    for name in ("fast_min", "fast_max"):
        if v.get(name) is not None:
            values.amount(v[name], f"quotas[{path[:80]!r}].{name}")  # InputError naming the field
    return {"fast_min": v.get("fast_min"), "fast_max": v.get("fast_max")}


def check_tier(tier: str) -> str:
    if tier not in TIERS:
        raise InputError(f"must be one of {', '.join(TIERS)}, got {tier!r}", "tier")
    return tier
