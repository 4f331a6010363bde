"""The PAGEMAP_SCAN ioctl on /proc/PID/pagemap (Linux 6.7+): present (or PMD-mapped huge) page ranges
of an address range in a few 24-byte records per span instead of 8 bytes per page.

:meth:`tierctl.kernel.procfs.ProcFS.pagemap_scan` opens the file and maps errors; ``scan_regions``
here drives the ioctl on an open descriptor. Categories and layout: linux/fs.h.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl

import numpy as np

from tierctl.errors import UnavailableError

# PAGEMAP_SCAN (ioctl on /proc/PID/pagemap, Linux 6.7+): categories from linux/fs.h
PAGE_IS_PRESENT, PAGE_IS_HUGE = 1 << 3, 1 << 6
SCAN_REGIONS = 256  # regions returned per call (the walk resumes at walk_end)
NO_SCAN_ERRNOS = (errno.ENOTTY, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOSYS)
"""errnos meaning the kernel (or the file: a captured tree) has no such ioctl."""


class _PmScanArg(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_uint64)
        for name in (
            "size", "flags", "start", "end", "walk_end", "vec", "vec_len", "max_pages",
            "category_inverted", "category_mask", "category_anyof_mask", "return_mask",
        )
    ]  # fmt: skip


PAGEMAP_SCAN = (3 << 30) | (ctypes.sizeof(_PmScanArg) << 16) | (ord("f") << 8) | 16  # _IOWR('f', 16, ...)


class PagemapScanUnsupportedError(UnavailableError):
    """This kernel (or this file: a captured tree) has no PAGEMAP_SCAN ioctl."""


def scan_regions(fd: int, ranges: list[tuple[int, int]], *, huge_only: bool) -> tuple[np.ndarray, np.ndarray]:
    """Start and end addresses of the present page ranges (with ``huge_only``, PMD-mapped huge ranges)
    within the ``[start, end)`` address ``ranges``, by PAGEMAP_SCAN on the open pagemap ``fd``.
    OSError from the ioctl propagates (``NO_SCAN_ERRNOS``: no such ioctl)."""
    vec = np.zeros((SCAN_REGIONS, 3), dtype=np.uint64)
    mask = PAGE_IS_PRESENT | (PAGE_IS_HUGE if huge_only else 0)
    arg = _PmScanArg(
        size=ctypes.sizeof(_PmScanArg),
        vec=vec.ctypes.data,
        vec_len=SCAN_REGIONS,
        category_mask=mask,
        return_mask=PAGE_IS_HUGE if huge_only else PAGE_IS_PRESENT,
    )
    found: list[np.ndarray] = []
    for start, end in ranges:
        arg.start, arg.end = start, end
        while True:
            got = fcntl.ioctl(fd, PAGEMAP_SCAN, arg)  # type: ignore[call-overload]
            if got > 0:
                found.append(vec[:got, :2].copy())
            if arg.walk_end >= end or got < SCAN_REGIONS:
                break
            arg.start = arg.walk_end
    if not found:
        empty = np.zeros(0, dtype=np.uint64)
        return empty, empty
    regions = np.concatenate(found)
    return regions[:, 0], regions[:, 1]
