"""Reading and writing single DAMON sysfs files, and how their failures become typed errors.

EBUSY is :class:`DamonBusyError` (another kdamond runs, or one is still finishing); EACCES (and
EPERM on a read) is :class:`PermissionDeniedError`; a missing file is :class:`UnavailableError`;
anything else :class:`KernelError`. Used by :class:`tierctl.kernel.damon.DamonSysfs`.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from tierctl.errors import KernelError, PermissionDeniedError, TierctlError, UnavailableError


class DamonBusyError(UnavailableError):
    """EBUSY: another kdamond runs (or one of ours is still finishing), so kdamonds cannot change now."""


def read_file(path: Path) -> str:
    """The file's first 4 KiB as text (sysfs files are short)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise sysfs_error(e, path, "read") from None
    try:
        return os.read(fd, 4096).decode("ascii", "replace")
    except OSError as e:
        raise sysfs_error(e, path, "read") from None
    finally:
        os.close(fd)


def write_file(path: Path, text: str) -> None:
    """Write ``text`` and a newline to the file (truncating it), as one write."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    except OSError as e:
        raise sysfs_error(e, path, "write") from None
    try:
        os.write(fd, (text + "\n").encode())
    except OSError as e:
        raise sysfs_error(e, path, f"write {text!r} to") from None
    finally:
        os.close(fd)


def parse_int(text: str, path: Path) -> int:
    """The integer a sysfs file holds; KernelError naming ``path`` otherwise."""
    t = text.strip()
    if not t.lstrip("-").isdigit():
        raise KernelError(f"not an integer: {t!r}", str(path))
    return int(t)


def sysfs_error(e: OSError, path: Path, verb: str) -> TierctlError:
    """The typed error for ``e`` raised while trying to ``verb`` ``path``."""
    if e.errno == errno.EBUSY:
        return DamonBusyError(
            "busy: another kdamond is running (DAMON's sysfs interface refuses this while one runs)",
            str(path),
        )
    # EPERM from a write is DAMON refusing a state change (``off`` to a stopped kdamond), not a privilege
    if e.errno == errno.EACCES or (e.errno == errno.EPERM and verb == "read"):
        return PermissionDeniedError(
            f"permission denied: cannot {verb} (DAMON's sysfs needs root)", str(path)
        )
    if e.errno in (errno.ENOENT, errno.ENOTDIR):
        return UnavailableError(
            f"cannot {verb}: no such file (DAMON sysfs layout of another kernel?)", str(path)
        )
    return KernelError(
        f"cannot {verb}: {e.strerror or e} ({errno.errorcode.get(e.errno or 0, e.errno)})", str(path)
    )
