"""Emptying a BPF hash map into preallocated numpy buffers: batched where the kernel can, else key by key.

``drain`` picks the way: ``batch`` (BPF_MAP_LOOKUP_AND_DELETE_BATCH, Linux 5.6), ``iterate`` (walk the
keys, look up and delete each one) or ``auto`` (batch, falling back to iterate for good the first time
the kernel refuses batching). No per-row Python work on the batched path.
"""

from __future__ import annotations

import ctypes
import errno
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

DRAIN_MODES = ("auto", "batch", "iterate")
BATCH_UNSUPPORTED = (errno.EINVAL, errno.EOPNOTSUPP, 524)  # 524: the kernel's ENOTSUPP


def drain_batch(lib: Any, fd: int, keys: np.ndarray, vals: np.ndarray) -> tuple[int, int]:
    """BPF_MAP_LOOKUP_AND_DELETE_BATCH (Linux 5.6) into preallocated numpy buffers.

    Returns (rows, errno): errno 0 or ENOENT = done; EINVAL/ENOTSUPP on the first call = the
    kernel cannot batch this map. No per-row Python work.
    """
    cap = len(keys)
    in_batch, out_batch = ctypes.c_uint32(0), ctypes.c_uint32(0)
    count = ctypes.c_uint32(0)
    kp, vp = keys.ctypes.data, vals.ctypes.data
    ks, vs = keys.dtype.itemsize, vals.dtype.itemsize
    total, first = 0, True
    while total < cap:
        count.value = cap - total
        res = lib.bpf_lookup_and_delete_batch(
            fd,
            None if first else ctypes.byref(in_batch),
            ctypes.byref(out_batch),
            ctypes.c_void_p(kp + total * ks),
            ctypes.c_void_p(vp + total * vs),
            ctypes.byref(count),
        )
        err = ctypes.get_errno() if res != 0 else 0
        if err in BATCH_UNSUPPORTED:
            return total, err  # refused before doing anything: count was not written
        total += count.value  # also on ENOENT (the last chunk) and ENOSPC
        if res != 0:
            if err == errno.ENOENT:
                return total, 0
            return total, err or errno.EIO
        if count.value == 0:
            break  # no progress (concurrent inserts into one bucket): the rest waits for the next drain
        in_batch.value = out_batch.value
        first = False
    return total, 0


def drain_iterate(lib: Any, fd: int, keys: np.ndarray, vals: np.ndarray) -> int:
    """Fallback for kernels without batch ops: walk the keys, then look up + delete each one.

    Per row: one get_next_key, one lookup, one delete syscall (what bcc's table API does too).
    Increments that land between a row's lookup and its delete are lost.
    """
    cap = len(keys)
    kp, vp = keys.ctypes.data, vals.ctypes.data
    ks, vs = keys.dtype.itemsize, vals.dtype.itemsize
    if lib.bpf_get_first_key(fd, ctypes.c_void_p(kp), ks) != 0:
        return 0
    n = 1
    while (
        n < cap
        and lib.bpf_get_next_key(fd, ctypes.c_void_p(kp + (n - 1) * ks), ctypes.c_void_p(kp + n * ks)) == 0
    ):
        n += 1
    for i in range(n):
        k = ctypes.c_void_p(kp + i * ks)
        if lib.bpf_lookup_elem(fd, k, ctypes.c_void_p(vp + i * vs)) != 0:
            vals[i] = 0
        lib.bpf_delete_elem(fd, k)
    return n


@dataclass(frozen=True)
class Drained:
    rows: int  # rows now in the buffers' first slots
    mode: str  # the mode to use from now on ("auto" settles on "batch" or "iterate")
    note: str = ""  # what the sampler's health should say ("" = nothing)


def drain(lib: Any, fd: int, keys: np.ndarray, vals: np.ndarray, mode: str) -> Drained:
    """Move up to ``len(keys)`` rows of map ``fd`` into ``keys``/``vals``, deleting them from the map."""
    note = ""
    if mode in ("auto", "batch"):
        n, err = drain_batch(lib, fd, keys, vals)
        if err and n == 0 and mode == "auto" and err in BATCH_UNSUPPORTED:
            mode = "iterate"  # for good: the kernel cannot batch (before 5.6)
            note = f"batch lookup-and-delete unsupported ({os.strerror(err)}): iterate + delete"
        elif err:  # keep what was drained; the rest stays in the map for the next drain
            return Drained(n, mode, f"batch lookup-and-delete stopped early: {os.strerror(err)}")
        else:
            return Drained(n, "batch" if mode == "auto" else mode)
    return Drained(drain_iterate(lib, fd, keys, vals), mode, note)
