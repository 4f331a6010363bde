"""Connection limits and admission for the API server: ``Limits``, what the server tracks about each
connection, which new connection is refused and why, and which idle ones are closed to make room.

Unprivileged peers share ``max_connections - reserved_privileged`` slots, at most ``per_uid`` each, so
no reader can lock root or the mutators out; near the limit, connections idle for ``busy_idle_timeout``
are closed (never one answering a request, a subscription, or one whose next request is waiting).
"""

from __future__ import annotations

import contextlib
import fcntl
import socket
import struct
import termios
import threading
from collections.abc import Collection
from dataclasses import dataclass

from tierctl.api.protocol import MAX_LINE


@dataclass(frozen=True)
class Limits:
    max_connections: int = 64
    """connections in all"""
    reserved_privileged: int = 16
    """of ``max_connections``, kept for root and the mutators group: unprivileged peers share the rest"""
    per_uid: int = 8
    """connections one unprivileged uid may hold"""
    busy_idle_timeout: float = 5.0
    """when a quarter or less of the connections is left, idle ones older than this are closed"""
    max_line: int = MAX_LINE
    line_timeout: float = 10.0
    """seconds from a request line's first byte to its newline"""
    idle_timeout: float = 3600.0
    """seconds a connection may sit without sending a request (not applied to subscribers)"""
    write_timeout: float = 10.0
    """seconds the client has to take one response or event"""
    service_timeout: float = 30.0
    """seconds a request waits for the Service (busy with another call) before ``unavailable``"""
    poll_interval: float = 0.25
    """seconds between event polls of a subscription"""


@dataclass
class ConnState:
    """What admission and idle reaping need to know about one connection."""

    thread: threading.Thread
    uid: int
    privileged: bool
    last_active: float
    busy: bool = False  # answering a request (never reaped)
    stream: bool = False  # a subscription (long-lived by design; not reaped)
    reaped: bool = False  # closed as idle: a request that still arrives is not carried out


def refusal(conns: Collection[ConnState], uid: int, privileged: bool, lim: Limits) -> str | None:
    """Why a new connection from ``uid`` is refused while ``conns`` are open (None: admitted)."""
    if len(conns) >= lim.max_connections:
        return f"too many connections (limit {lim.max_connections}); try again"
    if privileged:
        return None
    mine = sum(1 for c in conns if c.uid == uid)
    others = sum(1 for c in conns if not c.privileged)
    if mine >= lim.per_uid:
        return f"too many connections from uid {uid} (limit {lim.per_uid} per user); try again"
    if others >= lim.max_connections - lim.reserved_privileged:
        return (
            f"too many connections from unprivileged users (limit "
            f"{lim.max_connections - lim.reserved_privileged}); try again"
        )
    return None


def near_limit(n_conns: int, lim: Limits) -> bool:
    """A quarter or less of the connections left (at least one): time to reap idle ones."""
    return n_conns >= lim.max_connections - max(1, lim.max_connections // 4)


def reap_idle(conns: dict[socket.socket, ConnState], now: float, lim: Limits) -> int:
    """Close (shut down; their threads exit) connections idle for ``busy_idle_timeout``; how many.
    The caller holds the lock that guards ``conns``."""
    n = 0
    for conn, info in conns.items():
        idle = now - info.last_active >= lim.busy_idle_timeout
        if not info.busy and not info.stream and not info.reaped and idle and not _pending(conn):
            info.reaped = True
            n += 1
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
    return n


def _pending(conn: socket.socket) -> bool:
    """Bytes the peer sent that the connection's thread has not read yet (FIONREAD)."""
    try:
        raw = fcntl.ioctl(conn.fileno(), termios.FIONREAD, b"\0\0\0\0")
    except OSError:
        return False
    return struct.unpack("i", raw)[0] > 0
