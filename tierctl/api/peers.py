"""Who is at the other end of an API connection, and whether they may mutate.

Peer credentials (SO_PEERCRED) are read once at accept. Reads are open to whoever may connect;
mutations need uid 0, or the mutators group as the peer's primary group or among its supplementary
groups (``Groups:`` of /proc/PID/status).
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from pathlib import Path

from tierctl.errors import TierctlError
from tierctl.kernel.procfs import LIVE_PROC, ProcFS

Credentials = tuple[int, int, int]
"""(pid, uid, gid) of the peer process, as SO_PEERCRED reports them at connect time."""


def peer_credentials(sock: socket.socket) -> Credentials:
    """SO_PEERCRED of a connected Unix socket: (pid, uid, gid)."""
    fmt = "3i"
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize(fmt))
    pid, uid, gid = struct.unpack(fmt, raw)
    return pid, uid, gid


def proc_groups(pid: int, proc: Path = LIVE_PROC) -> frozenset[int]:
    """Supplementary groups of a process (``Groups:`` of /proc/PID/status); empty if it is gone."""
    try:
        return ProcFS(proc).groups(pid)
    except TierctlError:
        return frozenset()


def may_mutate(
    pid: int, uid: int, gid: int, mutators_gid: int | None, groups: Callable[[int], frozenset[int]]
) -> bool:
    """Uid 0, or ``mutators_gid`` as primary group or among ``groups(pid)`` (unknown uid -1: never)."""
    if uid == 0:
        return True
    if mutators_gid is None or uid < 0:
        return False
    return gid == mutators_gid or mutators_gid in groups(pid)
