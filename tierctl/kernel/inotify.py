"""inotify(7) through ctypes: be told when the entries of one directory change, without polling.

``DirWatch(path)`` watches one directory (not recursive) for entries created, deleted, renamed in or
out, and files closed after writing, plus the directory itself going away. ``read()`` never blocks:
it returns what happened since the last call (possibly nothing). The file descriptor is non-blocking
and close-on-exec; ``fileno()`` lets a caller ``select``/``poll`` on it.

Kernel notes: inotify since 2.6.13, ``inotify_init1`` (flags) since 2.6.27. The per-user limits
(``/proc/sys/fs/inotify/max_user_instances``, default 128, and ``max_user_watches``) are the usual way
it fails on a busy host (EMFILE / ENOSPC): an ``UnavailableError`` says which, and the caller falls
back to polling. Events on the entries of a watched directory name the entry; events on the directory
itself (``IN_DELETE_SELF``, ``IN_MOVE_SELF``, then ``IN_IGNORED``) have no name and end the watch.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from tierctl.errors import UnavailableError

IN_ACCESS = 0x00000001
IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_UNMOUNT = 0x00002000
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_ISDIR = 0x40000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC

#: what a directory of configuration files needs: a Kubernetes ConfigMap swap (a new ``..data``
#: symlink renamed over the old one, the old timestamped directory deleted), an editor's write in
#: place or its write-then-rename, a file added or removed, the directory itself removed or renamed
DIR_EVENTS = (
    IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF
)
#: events after which the watch is gone (the directory was removed, renamed or unmounted)
GONE = IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT | IN_IGNORED

_HEADER = struct.Struct("iIII")  # struct inotify_event: int wd; uint32 mask, cookie, len; char name[]
_BUF = 64 * 1024


@dataclass(frozen=True)
class Event:
    mask: int
    name: str  # the entry's name; "" for an event on the watched directory itself

    @property
    def gone(self) -> bool:
        """The watched directory itself went away: the watch has ended."""
        return bool(self.mask & GONE) and not self.name

    @property
    def overflow(self) -> bool:
        """The kernel's queue overflowed: events were lost."""
        return bool(self.mask & IN_Q_OVERFLOW)


def parse_events(buf: bytes) -> list[Event]:
    """The ``struct inotify_event`` records of one ``read()``."""
    out: list[Event] = []
    off = 0
    while off + _HEADER.size <= len(buf):
        _wd, mask, _cookie, length = _HEADER.unpack_from(buf, off)
        off += _HEADER.size
        raw = buf[off : off + length].split(b"\0", 1)[0]
        off += length
        out.append(Event(mask, os.fsdecode(raw)))
    return out


class _Libc:
    def __init__(self) -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            self.init1 = libc.inotify_init1
            self.add_watch = libc.inotify_add_watch
        except (OSError, AttributeError) as e:
            raise UnavailableError(f"no inotify in the C library ({e})", "inotify") from None
        self.init1.argtypes = [ctypes.c_int]
        self.init1.restype = ctypes.c_int
        self.add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        self.add_watch.restype = ctypes.c_int


def _why(err: int) -> str:
    return {
        errno.EMFILE: "too many inotify instances (fs.inotify.max_user_instances)",
        errno.ENOSPC: "too many inotify watches (fs.inotify.max_user_watches)",
        errno.ENOSYS: "inotify is not supported by this kernel",
        errno.ENOENT: "no such directory",
        errno.ENOTDIR: "not a directory",
        errno.EACCES: "permission denied",
    }.get(err, os.strerror(err))


class DirWatch:
    """One inotify instance watching one directory; ``UnavailableError`` when that cannot be had."""

    def __init__(self, path: Path, mask: int = DIR_EVENTS) -> None:
        self.path = Path(path)
        self.mask = mask
        self._libc = _Libc()
        fd = self._libc.init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            raise UnavailableError(_why(ctypes.get_errno()), "inotify")
        self._fd: int | None = fd
        self.watching = False
        try:
            self.rewatch()
        except UnavailableError:
            self.close()
            raise

    def fileno(self) -> int:
        if self._fd is None:
            raise UnavailableError("closed", str(self.path))
        return self._fd

    def rewatch(self) -> None:
        """(Re)add the watch on the path, e.g. after the directory was replaced by a new one."""
        wd = self._libc.add_watch(self.fileno(), os.fsencode(self.path), self.mask | IN_ONLYDIR)
        if wd < 0:
            self.watching = False
            raise UnavailableError(f"cannot watch: {_why(ctypes.get_errno())}", str(self.path))
        self.watching = True

    def read(self) -> list[Event]:
        """Every event queued so far, without blocking; [] when none."""
        out: list[Event] = []
        while True:
            try:
                buf = os.read(self.fileno(), _BUF)
            except BlockingIOError:
                break
            except OSError as e:
                raise UnavailableError(f"cannot read events: {e.strerror}", str(self.path)) from None
            if not buf:
                break
            out += parse_events(buf)
        if any(e.gone for e in out):
            self.watching = False
        return out

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            self.watching = False

    def __enter__(self) -> DirWatch:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
