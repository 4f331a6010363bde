"""The API server's socket file: bound, given its mode and group and listening before it appears at its
path; a stale one (left by a daemon that died) replaced, a live one refused; removed at stop only while
it is still ours.

The socket is mode 0660, group ``tierctl`` when that group exists (else root only).
"""

from __future__ import annotations

import contextlib
import grp
import logging
import os
import socket
import stat
from collections.abc import Callable
from pathlib import Path

from tierctl.errors import InputError, UnavailableError

log = logging.getLogger("tierctl.api")

SOCKET_GROUP = "tierctl"
SOCKET_MODE = 0o660
SUN_PATH_MAX = 107  # sizeof(sockaddr_un.sun_path) - 1


def listen_at(path: Path, chgrp: Callable[[Path], None]) -> tuple[socket.socket, tuple[int, int]]:
    """A non-blocking listening Unix stream socket at ``path`` and the (device, inode) of its file;
    ``chgrp(bound_path)`` gives the file its group before it is renamed into place."""
    if len(os.fsencode(path)) > SUN_PATH_MAX:
        raise InputError(f"socket path longer than {SUN_PATH_MAX} bytes", str(path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    except OSError as e:
        raise UnavailableError(
            f"cannot create the socket directory: {e.strerror or e}", str(path.parent)
        ) from None
    remove_stale(path)
    # bound under a temporary name, given its mode and group, listening, and only then renamed into
    # place: a client that sees the path can connect (no window where it exists but refuses)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    if len(os.fsencode(tmp)) > SUN_PATH_MAX:
        tmp = path.with_name(f".t{os.getpid()}")
    if len(os.fsencode(tmp)) > SUN_PATH_MAX:
        tmp = path  # no room for a temporary name: bind in place (not listening yet = refused)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    bound: Path | None = None
    try:
        if tmp != path:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()  # left by a daemon of the same pid that died between bind and rename
        sock.bind(str(tmp))
        bound = tmp
        os.chmod(tmp, SOCKET_MODE)
        chgrp(tmp)
        sock.listen(socket.SOMAXCONN)  # bursts wait in the backlog, not in EAGAIN at the client
        sock.setblocking(False)
        st = tmp.stat()
        if tmp != path:
            os.rename(tmp, path)
            bound = path
    except OSError as e:
        sock.close()
        if bound is not None:
            with contextlib.suppress(OSError):
                bound.unlink()
        raise UnavailableError(f"cannot listen: {e.strerror or e}", str(path)) from None
    return sock, (st.st_dev, st.st_ino)


def remove_stale(path: Path) -> None:
    """Remove a socket at ``path`` nobody serves; InputError for a non-socket, UnavailableError when
    another daemon answers there."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise InputError("exists and is not a socket; refusing to replace it", str(path))
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
    except OSError:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # stale: left by a daemon that died
        return
    finally:
        probe.close()
    raise UnavailableError("another daemon is serving this socket", str(path))


def remove_own(path: Path, inode: tuple[int, int] | None) -> None:
    """Remove the socket file at ``path`` if it is still the one with (device, inode) ``inode``."""
    try:
        st = path.lstat()
    except OSError:
        return
    if (st.st_dev, st.st_ino) == inode:
        with contextlib.suppress(OSError):
            path.unlink()


def chgrp(path: Path, group: str | None) -> None:
    """Give ``path`` to ``group`` (None or "": leave it); a missing group leaves it root's."""
    if not group:
        return
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        return  # no such group: root-only socket
    try:
        os.chown(path, -1, gid)
    except OSError as e:
        log.warning("cannot give %s to group %s: %s", path, group, e)
