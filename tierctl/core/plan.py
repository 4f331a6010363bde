"""A plan: the page moves one control cycle asks the mover to make.

Moves are ordered: every demotion comes before every promotion, so that room is
made before it is used.  Within each kind the policy's priority order is kept.
``interleaved()`` gives the order the mover should follow: promotions that fit the
free room first, then demotions and promotions in alternating chunks, so pages start
arriving at once and room is still made before it is used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEMOTE = np.uint8(0)
PROMOTE = np.uint8(1)


@dataclass(frozen=True)
class Plan:
    pages: np.ndarray  # int64 tracked page indices
    dest: np.ndarray  # int16 destination node per page
    kind: np.ndarray  # uint8: DEMOTE or PROMOTE

    @staticmethod
    def empty() -> Plan:
        return Plan(np.zeros(0, np.int64), np.zeros(0, np.int16), np.zeros(0, np.uint8))

    @staticmethod
    def build(promote: np.ndarray, promote_to: int, demote: np.ndarray, demote_to: int) -> Plan:
        promote = np.asarray(promote, dtype=np.int64)
        demote = np.asarray(demote, dtype=np.int64)
        pages = np.concatenate([demote, promote])
        dest = np.concatenate(
            [np.full(demote.shape[0], demote_to, np.int16), np.full(promote.shape[0], promote_to, np.int16)]
        )
        kind = np.concatenate(
            [np.full(demote.shape[0], DEMOTE, np.uint8), np.full(promote.shape[0], PROMOTE, np.uint8)]
        )
        return Plan(pages, dest, kind)

    def __len__(self) -> int:
        return int(self.pages.shape[0])

    @property
    def promote(self) -> np.ndarray:
        return self.pages[self.kind == PROMOTE]

    @property
    def demote(self) -> np.ndarray:
        return self.pages[self.kind == DEMOTE]

    def interleaved(self, room: int, chunk: int) -> Plan:
        """The same moves, reordered for the mover: the first ``room`` promotions (they fit the free
        room of the fast tier), then chunks of ``chunk`` demotions and ``chunk`` promotions in turn;
        what one kind has left over goes last. At every point, promotions done <= room + demotions
        done, so room is made before it is used, but the first pages arrive without waiting for every
        demotion. Within each kind the order is kept."""
        if chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {chunk}")
        is_p = self.kind == PROMOTE
        n_p = int(np.count_nonzero(is_p))
        if n_p == 0 or n_p == len(self):
            return self
        room = max(0, room)
        rank = np.empty(len(self), dtype=np.int64)  # position within its kind
        rank[is_p] = np.arange(n_p)
        rank[~is_p] = np.arange(len(self) - n_p)
        # a sort key per move: promotions within the room first (-1), then demotion chunk j at 2j,
        # the promotions of chunk j at 2j + 1
        key = np.where(is_p, 2 * ((rank - room) // chunk) + 1, 2 * (rank // chunk))
        key[is_p & (rank < room)] = -1
        order = np.argsort(key, kind="stable")
        return Plan(self.pages[order], self.dest[order], self.kind[order])

    def split(self, owner: np.ndarray) -> dict[int, Plan]:
        """Split by an owner per tracked page (pid, cgroup ...), keeping order within each owner."""
        keys = owner[self.pages]
        out: dict[int, Plan] = {}
        for k in np.unique(keys):
            m = keys == k
            out[int(k)] = Plan(self.pages[m], self.dest[m], self.kind[m])
        return out
