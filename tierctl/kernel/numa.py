"""NUMA syscalls through ctypes: move_pages and migrate_pages on numpy arrays.

libnuma's ``numa_move_pages`` is used when libnuma.so.1 is present (it is the
same syscall, with the library's error handling); otherwise the raw syscall.
Addresses, target nodes and statuses travel as numpy arrays: one call per
batch, no per-page Python loop.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import platform
from collections.abc import Iterable

import numpy as np

from tierctl.errors import (
    InputError,
    KernelError,
    NoSuchProcessError,
    PermissionDeniedError,
    UnavailableError,
)

MPOL_MF_MOVE = 1 << 1
MPOL_MF_MOVE_ALL = 1 << 2

# (move_pages, migrate_pages) by machine; from the kernel's syscall tables
_SYSCALLS = {"x86_64": (279, 256), "aarch64": (239, 238), "riscv64": (239, 238), "ppc64le": (301, 258)}


class NodeFullError(KernelError):
    """move_pages failed as a whole with ENOMEM: the target node had no room. Some pages of the
    call may have moved before it ran out; query them to know which."""


def _nodemask(nodes: Iterable[int]) -> tuple[ctypes.Array[ctypes.c_ulong], int]:
    nodes = list(nodes)
    if not nodes or min(nodes) < 0:
        raise InputError(f"node list {nodes} must be non-empty and non-negative", "nodes")
    maxnode = max(nodes) + 1
    words = (maxnode + 63) // 64
    mask = (ctypes.c_ulong * words)()
    for n in nodes:
        mask[n // 64] |= 1 << (n % 64)
    return mask, words * 64


class NumaSyscalls:
    """The migration syscalls. ``backend`` is "libnuma" or "syscall"."""

    def __init__(self, *, prefer_libnuma: bool = True) -> None:
        machine = platform.machine()
        if machine not in _SYSCALLS:
            raise UnavailableError(f"no syscall numbers known for {machine}", "numa")
        self._nr_move, self._nr_migrate = _SYSCALLS[machine]
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._libc.syscall.restype = ctypes.c_long
        self._numa_move_pages = None
        self.backend = "syscall"
        if prefer_libnuma:
            name = ctypes.util.find_library("numa")
            if name:
                try:
                    lib = ctypes.CDLL(name, use_errno=True)
                    fn = lib.numa_move_pages
                    fn.restype = ctypes.c_int
                    fn.argtypes = [
                        ctypes.c_int,
                        ctypes.c_ulong,
                        ctypes.c_void_p,
                        ctypes.c_void_p,
                        ctypes.c_void_p,
                        ctypes.c_int,
                    ]
                    self._numa_move_pages = fn
                    self.backend = "libnuma"
                except (OSError, AttributeError):
                    self._numa_move_pages = None

    # ------------------------------------------------------------------------------------------
    def move_pages(
        self, pid: int, addrs: np.ndarray, nodes: np.ndarray | int | None, *, flags: int = MPOL_MF_MOVE
    ) -> np.ndarray:
        """Move (or, with ``nodes=None``, query) the pages at ``addrs`` of process ``pid``.

        Returns the per-page status (int32): the node the page is on, or a negative errno
        (-ENOENT not present, -EBUSY busy or not moved, -ENOMEM target full, -EACCES shared, -EFAULT
        unmapped). Statuses the kernel leaves unwritten (a migration that failed part-way: the call
        returns how many pages it did not move) stay -EBUSY; query them to know where they are.
        Whole-call failures raise: NoSuchProcessError (ESRCH), PermissionDeniedError (EPERM),
        InputError (ENODEV: node not online; EINVAL), KernelError otherwise.
        """
        pages = np.ascontiguousarray(addrs, dtype=np.uint64)
        n = pages.shape[0]
        # a move whose migration fails returns the number of pages not moved and leaves their statuses
        # unwritten: those read -EBUSY (not moved), not -ENOENT
        status = np.full(n, -errno.ENOENT if nodes is None else -errno.EBUSY, dtype=np.int32)
        if n == 0:
            return status
        node_arr = None
        if isinstance(nodes, int | np.integer):
            node_arr = np.full(n, nodes, dtype=np.int32)
        elif nodes is not None:
            node_arr = np.ascontiguousarray(np.broadcast_to(np.asarray(nodes, dtype=np.int32), (n,)))
        nodes_ptr = node_arr.ctypes.data if node_arr is not None else None
        if self._numa_move_pages is not None:
            rc = self._numa_move_pages(pid, n, pages.ctypes.data, nodes_ptr, status.ctypes.data, flags)
        else:
            rc = self._libc.syscall(
                ctypes.c_long(self._nr_move),
                ctypes.c_long(pid),
                ctypes.c_ulong(n),
                ctypes.c_void_p(pages.ctypes.data),
                ctypes.c_void_p(nodes_ptr),
                ctypes.c_void_p(status.ctypes.data),
                ctypes.c_long(flags),
            )
        if rc < 0:
            self._raise(ctypes.get_errno(), pid, "move_pages", node_arr)
        return status

    def query(self, pid: int, addrs: np.ndarray) -> np.ndarray:
        """Node of each page (or a negative errno), moving nothing."""
        return self.move_pages(pid, addrs, None, flags=0)

    def migrate_pages(self, pid: int, old_nodes: Iterable[int], new_nodes: Iterable[int]) -> int:
        """Move all of ``pid``'s pages on ``old_nodes`` to ``new_nodes``; returns pages not moved."""
        old, maxnode_old = _nodemask(old_nodes)
        new, maxnode_new = _nodemask(new_nodes)
        maxnode = max(maxnode_old, maxnode_new)
        words = maxnode // 64
        old_full = (ctypes.c_ulong * words)(*old)
        new_full = (ctypes.c_ulong * words)(*new)
        rc = self._libc.syscall(
            ctypes.c_long(self._nr_migrate),
            ctypes.c_long(pid),
            ctypes.c_ulong(maxnode + 1),
            ctypes.byref(old_full),
            ctypes.byref(new_full),
        )
        if rc < 0:
            self._raise(ctypes.get_errno(), pid, "migrate_pages", None)
        return int(rc)

    @staticmethod
    def _raise(err: int, pid: int, call: str, nodes: np.ndarray | None) -> None:
        where = f"pid {pid}"
        if err == errno.ESRCH:
            raise NoSuchProcessError("no such process", where)
        if err in (errno.EPERM, errno.EACCES):
            raise PermissionDeniedError(
                f"{call} refused: moving another process's pages needs ptrace access to it (the same "
                "user, or CAP_SYS_PTRACE) and, for another user's with MPOL_MF_MOVE_ALL or "
                "migrate_pages, CAP_SYS_NICE",
                where,
            )
        if err == errno.ENODEV:
            bad = sorted(set(np.unique(nodes).tolist())) if nodes is not None else []
            raise InputError(f"{call}: target node {bad} is not online or has no memory", where)
        if err == errno.ENOMEM and call == "move_pages":
            raise NodeFullError(f"{call}: the target node is out of memory", where)
        if err == errno.EINVAL:
            raise InputError(f"{call}: invalid argument (node out of range or bad flags)", where)
        raise KernelError(f"{call} failed: {os.strerror(err)}", where)
