"""Mounting and unmounting a pseudo filesystem (tracefs), behind a small handle tests replace.

``LibcMounts`` calls mount(2)/umount2(2) through libc and reads this process's mountinfo (through
``ProcFS`` below its ``proc_root``) to tell whether a directory is a mount point; test doubles
implement the same three methods. Errors name the target: PermissionDeniedError on EPERM/EACCES,
UnavailableError when the target or the filesystem type does not exist, KernelError otherwise.
"""

from __future__ import annotations

import ctypes
import errno
import os
from pathlib import Path
from typing import Protocol

from tierctl.errors import KernelError, PermissionDeniedError, TierctlError, UnavailableError
from tierctl.kernel.procfs import LIVE_PROC, ProcFS


class Mounts(Protocol):
    def mount(self, source: str, target: Path, fstype: str) -> None: ...

    def umount(self, target: Path) -> None:
        """Unmount ``target``; UnavailableError when nothing is mounted there (EINVAL/ENOENT)."""
        ...

    def is_mounted(self, target: Path) -> bool: ...


class LibcMounts:
    """The real mount table (needs CAP_SYS_ADMIN to change)."""

    def __init__(self, proc_root: Path = LIVE_PROC) -> None:
        self.proc_root = Path(proc_root)

    def mount(self, source: str, target: Path, fstype: str) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.mount(source.encode(), str(target).encode(), fstype.encode(), 0, None) != 0:
            raise _error(ctypes.get_errno(), target, f"mounting {fstype}")

    def umount(self, target: Path) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.umount2(str(target).encode(), 0) != 0:
            raise _error(ctypes.get_errno(), target, "unmounting")

    def is_mounted(self, target: Path) -> bool:
        """Whether a filesystem is mounted at ``target`` (from this process's mountinfo)."""
        return any(m.point == Path(target) for m in ProcFS(self.proc_root).mounts())


def _error(err: int, target: Path, what: str) -> TierctlError:
    if err in (errno.EPERM, errno.EACCES):
        return PermissionDeniedError(f"permission denied: {what} needs CAP_SYS_ADMIN", str(target))
    if err in (errno.EINVAL, errno.ENOENT, errno.ENODEV):
        return UnavailableError(f"{what} failed: {os.strerror(err)}", str(target))
    return KernelError(f"{what} failed: {os.strerror(err)}", str(target))
