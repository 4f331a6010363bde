"""The tracked page space: tracked page index <-> (pid, virtual page number).

Pure arrays: keys ``pid << 40 | vpn`` kept sorted, so lookups are one
``searchsorted`` for a whole sample batch. The index also serves the mover as its
page locator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tierctl.errors import InputError

PID_SHIFT = np.uint64(40)  # vpn < 2**40 covers 52-bit (4 PiB) virtual addresses at 4 KiB pages
VPN_MASK = np.uint64((1 << 40) - 1)


def make_keys(pid: np.ndarray, vpn: np.ndarray) -> np.ndarray:
    return (np.asarray(pid, dtype=np.uint64) << PID_SHIFT) | (np.asarray(vpn, dtype=np.uint64) & VPN_MASK)


@dataclass(frozen=True)
class PageIndex:
    keys: np.ndarray  # uint64, sorted, unique
    page_shift: int = 12

    @staticmethod
    def build(pid: np.ndarray, vpn: np.ndarray, *, page_shift: int = 12) -> PageIndex:
        pid = np.asarray(pid)
        if pid.size and (pid.min() < 0 or pid.max() >= 1 << 24):
            raise InputError("pids must be within 0..2**24-1", "page index")
        return PageIndex(np.unique(make_keys(pid, vpn)), page_shift)

    def __len__(self) -> int:
        return int(self.keys.shape[0])

    def lookup(self, pid: np.ndarray, vpn: np.ndarray) -> np.ndarray:
        """Tracked index of each (pid, vpn), -1 where the page is not tracked."""
        return self.lookup_keys(make_keys(pid, vpn))

    def lookup_keys(self, keys: np.ndarray) -> np.ndarray:
        """Tracked index of each key (``pid << 40 | vpn``), -1 where not tracked."""
        pos = np.searchsorted(self.keys, keys)
        ok = pos < self.keys.shape[0]
        ok[ok] = self.keys[pos[ok]] == keys[ok]
        return np.where(ok, pos, -1).astype(np.int64)

    def locate(self, pages: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(pid, address) of tracked pages — the mover's PageLocator."""
        k = self.keys[pages]
        return (k >> PID_SHIFT).astype(np.int64), (k & VPN_MASK) << np.uint64(self.page_shift)

    def pids(self) -> np.ndarray:
        return np.unique((self.keys >> PID_SHIFT).astype(np.int64))
