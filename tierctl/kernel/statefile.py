"""Reading tierctl's own state files (the overrides, the knob record) defensively.

``read_capped`` reads at most ``limit`` bytes, checked before anything parses them; ``set_aside``
moves a file that cannot be used to ``<name>.corrupt``, kept byte for byte for the operator, so the
daemon starts without it instead of failing on it at every start.
"""

from __future__ import annotations

import os
from pathlib import Path

from tierctl.errors import InputError


def read_capped(path: Path, limit: int) -> bytes | None:
    """The file's bytes, or None when it does not exist; ValueError when it is larger than ``limit``
    (other OSErrors are the caller's to classify)."""
    try:
        with open(path, "rb") as f:
            raw = f.read(limit + 1)
    except FileNotFoundError:
        return None
    if len(raw) > limit:
        raise ValueError(f"larger than {limit} bytes")
    return raw


def set_aside(path: Path, what: str, why: str) -> Path:
    """Move ``path`` to ``<name>.corrupt`` and return that path; an InputError naming both when the
    move fails (a read-only directory, a directory in the way)."""
    aside = path.with_name(path.name + ".corrupt")
    try:
        os.replace(path, aside)
    except OSError as err:
        raise InputError(
            f"{what} ({why}) and cannot be set aside as {aside}: {err.strerror}; move it away by hand",
            str(path),
        ) from None
    return aside
