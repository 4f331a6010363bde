"""Mover throughput against the plain inter-node copy bandwidth, inside the two-tier guest.

copy: memcpy of a buffer on node 0 into a pre-faulted buffer on node 1 (best of 3).
mover: KernelMover.apply moving a pre-faulted 256 MiB buffer of this process from
node 0 to node 1 and back (each direction timed; THP resolver on), with 4 KiB
pages (MADV_NOHUGEPAGE) and with THP (MADV_HUGEPAGE).

Kernel baselines, to tell the mover's cost from the kernel's: one move_pages call
over the whole buffer (no batching, no query, no resolver), mbind(MPOL_MF_MOVE)
over the range (the kernel's own range migration, no per-page arrays), and the
kernel's copy routine between the two nodes (process_vm_readv into a node-1 buffer).
"""

from __future__ import annotations

import ctypes
import os
import time
from typing import Any

import numpy as np

from tierctl.core.plan import Plan
from tierctl.kernel.mover import KernelMover, ProcessPages
from tierctl.kernel.numa import NumaSyscalls
from tierctl.kernel.procfs import ProcFS
from tierctl.kernel.thp import KpageflagsHugeResolver

PAGE, HUGE = 4096, 2 << 20
MADV_HUGEPAGE, MADV_NOHUGEPAGE = 14, 15
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_long,
]
libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]


def _buffer(size: int, advice: int) -> tuple[int, int]:
    raw = libc.mmap(None, size + HUGE, 3, 0x22, -1, 0)  # RW, MAP_PRIVATE|MAP_ANONYMOUS
    addr = (raw + HUGE - 1) // HUGE * HUGE
    libc.madvise(addr, size, advice)
    ctypes.memset(addr, 0x5A, size)
    return raw, addr


def _addrs(addr: int, size: int) -> np.ndarray:
    return addr + np.arange(0, size, PAGE, dtype=np.uint64)


class _IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


libc.syscall.restype = ctypes.c_long
libc.process_vm_readv.restype = ctypes.c_ssize_t


def _mbind_move(addr: int, size: int, node: int) -> None:
    mask = ctypes.c_ulong(1 << node)
    mpol_bind, mf_strict, mf_move = 2, 1 << 0, 1 << 1
    rc = libc.syscall(
        237,
        ctypes.c_void_p(addr),
        ctypes.c_ulong(size),
        mpol_bind,
        ctypes.byref(mask),
        ctypes.c_ulong(64),
        mf_strict | mf_move,
    )  # x86-64 mbind
    if rc != 0:
        raise OSError(ctypes.get_errno(), "mbind failed")


def _timed(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def kernel_baselines(size: int, thp: bool) -> dict[str, float]:
    numa = NumaSyscalls()
    pid = os.getpid()
    raw, addr = _buffer(size, MADV_HUGEPAGE if thp else MADV_NOHUGEPAGE)
    addrs = _addrs(addr, size)
    units = np.unique(KpageflagsHugeResolver(ProcFS()).units(pid, addrs)[0])
    one_call = _timed(lambda: numa.move_pages(pid, units, 1))
    assert (numa.query(pid, addrs) == 1).all()
    _mbind_move(addr, size, 0)
    mbind = _timed(lambda: _mbind_move(addr, size, 1))
    assert (numa.query(pid, addrs) == 1).all()
    out = {"one_move_pages_call_mb_s": size / one_call / 1e6, "mbind_move_mb_s": size / mbind / 1e6}
    libc.munmap(raw, size + HUGE)
    return out


def kernel_copy_bandwidth(size: int) -> float:
    """process_vm_readv from a node-0 buffer into a node-1 buffer: the kernel's own copy routine."""
    numa = NumaSyscalls()
    raw_s, src = _buffer(size, MADV_NOHUGEPAGE)
    raw_d, dst = _buffer(size, MADV_NOHUGEPAGE)
    numa.move_pages(os.getpid(), _addrs(dst, size), 1)
    local, remote = _IoVec(dst, size), _IoVec(src, size)
    best = min(
        _timed(lambda: libc.process_vm_readv(os.getpid(), ctypes.byref(local), 1, ctypes.byref(remote), 1, 0))
        for _ in range(3)
    )
    libc.munmap(raw_s, size + HUGE)
    libc.munmap(raw_d, size + HUGE)
    return size / best / 1e6


def _plan(n: int, dest: int) -> Plan:
    return Plan(np.arange(n, dtype=np.int64), np.full(n, dest, np.int16), np.ones(n, np.uint8))


def copy_bandwidth(size: int) -> float:
    numa = NumaSyscalls()
    raw_s, src = _buffer(size, MADV_NOHUGEPAGE)
    raw_d, dst = _buffer(size, MADV_NOHUGEPAGE)
    dst_addrs = _addrs(dst, size)
    st = numa.move_pages(os.getpid(), dst_addrs, 1)
    assert (st == 1).all(), "could not place the copy target on node 1"
    assert (numa.query(os.getpid(), _addrs(src, size)) == 0).all()
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        ctypes.memmove(dst, src, size)
        best = min(best, time.perf_counter() - t0)
    libc.munmap(raw_s, size + HUGE)
    libc.munmap(raw_d, size + HUGE)
    return size / best / 1e6


def mover_throughput(size: int, thp: bool, batch: int) -> dict[str, Any]:
    numa, procfs = NumaSyscalls(), ProcFS()
    raw, addr = _buffer(size, MADV_HUGEPAGE if thp else MADV_NOHUGEPAGE)
    addrs = _addrs(addr, size)
    resolver = KpageflagsHugeResolver(procfs)
    units = np.unique(resolver.units(os.getpid(), addrs)[0]).shape[0]
    mover = KernelMover(numa, ProcessPages(os.getpid(), addrs), batch_pages=batch, huge=resolver)
    out: dict[str, Any] = {"thp": thp, "batch_pages": batch, "move_units": units, "bytes": size}
    for name, dest in (("to_slow", 1), ("to_fast", 0)):
        t0 = time.perf_counter()
        report = mover.apply(_plan(addrs.shape[0], dest), budget_pages=1 << 40)
        dt = time.perf_counter() - t0
        assert report.counts["moved"] == addrs.shape[0], report.counts
        out[f"{name}_mb_s"] = size / dt / 1e6
    libc.munmap(raw, size + HUGE)
    return out


def run(size_mib: int = 256) -> dict[str, Any]:
    size = size_mib << 20
    copy = copy_bandwidth(size)
    kcopy = kernel_copy_bandwidth(size)
    rows = [mover_throughput(size, thp, batch) for thp in (False, True) for batch in (4096, 16384)]
    for r in rows:
        r["ratio_to_copy"] = r["to_slow_mb_s"] / copy
        r.update(kernel_baselines(size, r["thp"]))
        r["ratio_to_one_move_pages_call"] = r["to_slow_mb_s"] / r["one_move_pages_call_mb_s"]
        r["ratio_to_mbind_move"] = r["to_slow_mb_s"] / r["mbind_move_mb_s"]
    return {
        "copy_node0_to_node1_mb_s": copy,
        "kernel_copy_node0_to_node1_mb_s": kcopy,
        "rows": rows,
        "size_mib": size_mib,
        "checks": {
            "mover_ge_0.7_copy": {
                f"{'thp' if r['thp'] else '4k'}/{r['batch_pages']}": r["ratio_to_copy"] >= 0.7 for r in rows
            }
        },
    }
