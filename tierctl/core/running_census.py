"""A census of page estimates kept up to date by re-evaluating only some pages each cycle.

The default policy needs, every decision, the number of present pages per (cgroup, tier, estimate
bin): the thresholds under the quotas come from it. Counting every page every cycle is a full pass
over the tracked pages; at hundreds of millions of pages that pass is the cycle. Instead each page
keeps a 2-byte code — its tier and the log bin of its estimate when it was last evaluated — and the
histogram counts the codes. Re-evaluating a set of pages takes their old codes out of the histogram
and puts their new ones in, so a cycle costs what it re-evaluates, not what is tracked.

Bins are absolute: ``BINS_PER_OCTAVE`` per octave of the estimate in the heat model's *stored*
units (heat divided by the common decay scale), so a page's code stays comparable while the heat
decays. The histogram is a window of ``N_BINS`` bins whose top follows the highest code seen (it
only rises; codes below the window count in bin 1, as ``log_bins`` clips values far below the
maximum). A page's code says which tier it was on when evaluated: pages moved since are
re-evaluated by the caller, and the few the caller does not hear about (the kernel moved them, they
went away) are set right when their turn in the caller's sweep comes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tierctl.core.heat import BINS_PER_OCTAVE, N_BINS

SLOW_BIT = 0x8000
BIN_MASK = 0x3FFF  # absolute bin: 0 = not present (counted nowhere), 1 = present without heat
OFFSET = 1200  # absolute bin of a stored estimate of 1.0 (float32 spans about +-150 octaves)


@dataclass(frozen=True)
class Census:
    """Present pages counted per (cgroup, tier, heat bin)."""

    hist: np.ndarray  # int64 [n_cg, 2, N_BINS]; tier 0 = fast, 1 = slow
    hmax: float  # bin b (>= 1) holds estimates in [hmax * 2**((b-256)/8), hmax * 2**((b-255)/8))

    @property
    def fast_per_cgroup(self) -> np.ndarray:
        return self.hist[:, 0, :].sum(axis=1)

    @property
    def present(self) -> int:
        return int(self.hist.sum())


def absolute_bins(est: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Absolute bin (float32, integral) of estimates ``est`` divided by ``scale`` (stored units):
    1 for no heat, else >= 8 (the smallest positive float32, 2**-149, at any scale up to 2**32)."""
    v = est.astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        np.log2(v, out=v)  # -inf for no heat
    v *= np.float32(BINS_PER_OCTAVE)
    v += np.float32(OFFSET - BINS_PER_OCTAVE * np.log2(scale))
    np.floor(v, out=v)
    np.clip(v, 1, BIN_MASK, out=v)  # -inf (no heat) -> 1
    return v


class RunningCensus:
    """Per page a code (tier, absolute bin); per (cgroup, tier, window bin) a count of codes."""

    def __init__(self) -> None:
        self.codes = np.zeros(0, dtype=np.uint16)
        self.hist = np.zeros((1, 2, N_BINS), dtype=np.int64)
        self.top = 0  # absolute bin shown as window bin N_BINS - 1 (0: nothing counted yet)
        self._lut = np.zeros(1 << 16, dtype=np.int32)
        self._lut_top = -1
        self.units = 0  # the heat model's ``rebased_log2`` the absolute bins are in

    @property
    def nbytes(self) -> int:
        return self.codes.nbytes

    def reset(self, n_pages: int, n_cgroups: int) -> None:
        """Forget every code: nothing counted."""
        self.codes = np.zeros(n_pages, dtype=np.uint16)
        self.hist = np.zeros((max(1, n_cgroups), 2, N_BINS), dtype=np.int64)
        self.top = 0

    def consistent(self, n_pages: int, n_cgroups: int) -> bool:
        return self.codes.shape[0] == n_pages and self.hist.shape[0] == max(1, n_cgroups)

    # ------------------------------------------------------------------------------------------
    def _window(self, absb: np.ndarray) -> np.ndarray:
        """Window bin of absolute bins (>= 1): 0 for no heat, 1..255 by the top."""
        w = absb.astype(np.int32) - (self.top - (N_BINS - 1))
        np.clip(w, 1, N_BINS - 1, out=w)
        w[absb <= 1] = 0
        return w

    def _raise_top(self, top: int) -> None:
        """Slide the window up to ``top``: bins that fall below it fold into bin 1."""
        k = top - self.top
        if k <= 0:
            return
        if self.top:
            h = self.hist
            folded = h[:, :, 1 : min(N_BINS, k + 2)].sum(axis=2)
            moved = h[:, :, k + 2 :].copy() if k + 2 < N_BINS else None
            h[:, :, 1:] = 0
            h[:, :, 1] = folded
            if moved is not None:
                h[:, :, 2 : 2 + moved.shape[2]] = moved
        self.top = top

    def _keys(self, codes: np.ndarray, cgroup: np.ndarray) -> np.ndarray:
        """Histogram key of each counted code (present pages): a table lookup by code."""
        key = cgroup.astype(np.int32)
        key *= 2 * N_BINS
        key += self._key_lut()[codes]
        return key[(codes & BIN_MASK) > 0]

    def _key_lut(self) -> np.ndarray:
        """Per possible code: tier * N_BINS + window bin (for the current window)."""
        if self._lut_top != self.top:
            absb = np.arange(BIN_MASK + 1, dtype=np.int32)
            w = self._window(absb)
            lut = np.zeros(1 << 16, dtype=np.int32)
            lut[: BIN_MASK + 1] = w
            lut[SLOW_BIT : SLOW_BIT + BIN_MASK + 1] = w + N_BINS
            self._lut, self._lut_top = lut, self.top
        return self._lut

    @staticmethod
    def codes_for(est: np.ndarray, node: np.ndarray, fast_lut: np.ndarray, scale: float = 1.0) -> np.ndarray:
        """Codes (uint16) of pages with estimates ``est`` (current units: stored times ``scale``)
        on ``node`` (pure: any thread)."""
        codes = absolute_bins(est, scale).astype(np.uint16)
        # per node + 1: 0 for absent (node -1), the bin bits for a fast node, and the slow bit too
        # for any other
        tier = np.where(fast_lut, BIN_MASK, SLOW_BIT | BIN_MASK).astype(np.uint16)
        tier[0] = 0
        tier_of = tier[node + 1]
        codes &= tier_of  # an absent page's code is 0
        codes |= tier_of & SLOW_BIT
        return codes

    def apply(self, where: np.ndarray | slice, codes: np.ndarray, cgroup: np.ndarray) -> None:
        """Replace the codes of pages ``where`` (distinct indices, or a slice) by ``codes``;
        ``cgroup``: their cgroups (the same as when their old codes were set)."""
        if codes.shape[0] == 0:
            return
        self._raise_top(int((codes & BIN_MASK).max()))
        old = self.codes[where]
        changed = np.flatnonzero(old != codes)  # most codes stay: count only the ones that change
        if changed.shape[0] == 0:
            return
        size = self.hist.size
        flat = self.hist.reshape(-1)
        cg = cgroup[changed]
        flat -= np.bincount(self._keys(old[changed], cg), minlength=size)
        new = codes[changed]
        flat += np.bincount(self._keys(new, cg), minlength=size)
        if isinstance(where, slice):
            self.codes[where] = codes
        else:  # a scatter of only the changed codes: most stay
            self.codes[where[changed]] = new

    def rescale(self, bins: int, cgroup: np.ndarray) -> None:
        """Stored units were multiplied by ``2 ** (bins / BINS_PER_OCTAVE)`` (a heat rebase): move
        every heated code and the window by ``bins``, so window bins, and so the histogram, stay as
        they were. A code pushed below the smallest positive float32 becomes "present without
        heat" (the rebase flushed that heat to zero): those pages move to window bin 0."""
        if bins == 0 or self.top == 0:
            self.top = self.top + bins if self.top else 0
            return
        old_lut = self._key_lut().copy()
        self.top += bins
        new_lut = self._key_lut()
        flat = self.hist.reshape(-1)
        step = 1 << 20
        for lo in range(0, self.codes.shape[0], step):  # a block at a time: no page-sized temporaries
            c = self.codes[lo : lo + step]
            b = (c & BIN_MASK).astype(np.int32)
            heated = b >= 2
            b[heated] += bins
            off = heated & ((b < 8) | (b > BIN_MASK))  # flushed to zero, or (growing units) clipped
            if off.any():
                b[off & (b < 8)] = 1
                b[off & (b > BIN_MASK)] = BIN_MASK
                at = np.flatnonzero(off)
                base = cgroup[lo + at].astype(np.int32) * (2 * N_BINS)
                old, new = c[at], (c[at] & ~np.uint16(BIN_MASK)) | b[at].astype(np.uint16)
                flat -= np.bincount(base + old_lut[old], minlength=flat.size)
                flat += np.bincount(base + new_lut[new], minlength=flat.size)
            c &= np.uint16(~BIN_MASK & 0xFFFF)
            c |= b.astype(np.uint16)

    def count(self, parts: list[tuple[np.ndarray, np.ndarray]]) -> Census:
        """A census of only some pages: (codes, cgroups) of each part."""
        flat = np.zeros(self.hist.size, dtype=np.int64)
        for codes, cgroup in parts:
            flat += np.bincount(self._keys(codes, cgroup), minlength=self.hist.size)
        return Census(flat.reshape(self.hist.shape), 0.0)

    def window_of(self, codes: np.ndarray) -> np.ndarray:
        """Window bins of codes (int32)."""
        return self._key_lut()[codes & BIN_MASK]

    def window_bins(self, idx: np.ndarray | slice) -> np.ndarray:
        return self._window((self.codes[idx] & BIN_MASK).astype(np.int32))

    def healthy(self) -> bool:
        """No count below zero (a page's cgroup changed under its code): else rebuild."""
        return bool(self.hist.min() >= 0) if self.hist.size else True

    def census(self, scale: float) -> Census:
        """The histogram, with ``hmax`` in current heat units (stored times ``scale``)."""
        hmax = 2.0 ** ((self.top + 1 - OFFSET) / BINS_PER_OCTAVE) * scale
        return Census(self.hist, hmax if self.top else 0.0)
