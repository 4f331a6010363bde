"""The idle page bitmap (``/sys/kernel/mm/page_idle/bitmap``, CONFIG_IDLE_PAGE_TRACKING).

``IdleBitmap(sys_root)`` reads and marks the idle bits of page frames: bit ``pfn % 64`` of the 64-bit
word ``pfn // 64`` (Documentation/admin-guide/mm/idle_page_tracking.rst). Writing a set bit marks the
frame idle (the kernel clears its accessed bits in every mapping); reading gives 1 for a frame still
idle. Both are vectorised: one pread/pwrite per run of consecutive words. Needs root (the file is 0600).
Errors name the file: PermissionDeniedError, UnavailableError (no idle page tracking), KernelError.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np

from tierctl.errors import KernelError, PermissionDeniedError, TierctlError, UnavailableError
from tierctl.kernel.roots import LIVE_SYS

IDLE_BITMAP = "kernel/mm/page_idle/bitmap"  # below the sysfs root


class IdleBitmap:
    def __init__(self, sys_root: Path = LIVE_SYS) -> None:
        self.path = Path(sys_root) / IDLE_BITMAP
        self._fd: int | None = None

    def exists(self) -> bool:
        return self.path.exists()

    def accessible(self) -> bool:
        """Whether this process may read and write it (root)."""
        return os.access(self.path, os.R_OK | os.W_OK)

    def open(self) -> None:
        if self._fd is None:
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
            except OSError as e:
                raise _error(e, self.path) from None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def mark(self, frames: np.ndarray) -> None:
        """Mark ``frames`` idle."""
        words, inverse, bits = _word_index(frames)
        values = np.zeros(words.shape[0], dtype=np.uint64)
        np.bitwise_or.at(values, inverse, np.left_shift(np.uint64(1), bits))
        fd = self._need_fd()
        for a, b in _runs(words):
            data = values[a:b].astype("=u8").tobytes()
            try:
                if os.pwrite(fd, data, 8 * int(words[a])) != len(data):
                    raise KernelError("short write", str(self.path))
            except OSError as e:
                raise _error(e, self.path) from None

    def idle(self, frames: np.ndarray) -> np.ndarray:
        """Bool per frame: still idle (not accessed since marked)."""
        words, inverse, bits = _word_index(frames)
        values = np.zeros(words.shape[0], dtype=np.uint64)
        fd = self._need_fd()
        for a, b in _runs(words):
            try:
                data = os.pread(fd, 8 * (b - a), 8 * int(words[a]))
            except OSError as e:
                raise _error(e, self.path) from None
            if len(data) != 8 * (b - a):
                raise KernelError(f"short read at frame {int(words[a]) * 64}", str(self.path))
            values[a:b] = np.frombuffer(data, dtype="=u8")
        return ((values[inverse] >> bits) & np.uint64(1)) == 1

    def _need_fd(self) -> int:
        if self._fd is None:
            raise KernelError("the idle page bitmap is not open", str(self.path))
        return self._fd


def _word_index(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    f = np.asarray(frames, dtype=np.uint64)
    words, inverse = np.unique(f >> np.uint64(6), return_inverse=True)
    return words, inverse.reshape(-1), f & np.uint64(63)


def _runs(words: np.ndarray) -> list[tuple[int, int]]:
    """[a, b) index ranges of consecutive word numbers in a sorted unique array."""
    if words.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(words) != 1) + 1
    starts = np.concatenate(([0], breaks)).tolist()
    stops = np.concatenate((breaks, [words.size])).tolist()
    return list(zip(starts, stops, strict=True))


def _error(e: OSError, path: Path) -> TierctlError:
    if e.errno in (errno.EACCES, errno.EPERM):
        return PermissionDeniedError("permission denied: the idle page bitmap needs root", str(path))
    if e.errno == errno.ENOENT:
        return UnavailableError("no idle page tracking (CONFIG_IDLE_PAGE_TRACKING)", str(path))
    return KernelError(f"idle bitmap I/O failed: {e.strerror or e}", str(path))
