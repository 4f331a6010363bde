"""tierctl's own state files (the overrides, the knob records): read defensively, written atomically.

``read_capped`` reads at most ``limit`` bytes, checked before anything parses them; ``set_aside``
moves a file that cannot be used to ``<name>.corrupt``, kept byte for byte for the operator, so the
daemon starts without it instead of failing on it at every start; ``write_atomic`` replaces a file
so that a crash leaves either the old or the new content.
"""

from __future__ import annotations

import contextlib
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


def write_atomic(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` so that a crash at any moment leaves the old or the new content,
    never a torn file: write ``.<name>.<pid>.tmp`` in the same directory (created if missing), fsync
    it, rename it over ``path``, fsync the directory. The temporary file is removed when a step fails;
    one left by a killed writer is named after its pid (see ``stale_temporaries``). OSErrors are the
    caller's to classify."""
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def stale_temporaries(path: Path) -> list[Path]:
    """Temporary files ``write_atomic`` left beside ``path`` whose writer process is gone."""
    out = []
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        pid = tmp.name[len(path.name) + 2 : -4]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            out.append(tmp)
    return out


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (owned by anyone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True
