"""The Service's event log: numbered, time-stamped dicts, the newest ``MAX_EVENTS`` kept."""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator
from typing import Any

MAX_EVENTS = 1000


class EventLog:
    def __init__(self, wall: Callable[[], float], maxlen: int = MAX_EVENTS) -> None:
        self.wall = wall
        self.seq = 0  # the newest event's number (0: none yet)
        self._events: collections.deque[dict[str, Any]] = collections.deque(maxlen=maxlen)

    def emit(self, kind: str, **info: Any) -> None:
        self.seq += 1
        self._events.append({"seq": self.seq, "time": self.wall(), "kind": kind, **info})

    def since(self, seq: int) -> tuple[int, list[dict[str, Any]]]:
        """Events after number ``seq`` (0: all kept), and the newest number."""
        return self.seq, [e for e in self._events if e["seq"] > seq]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self._events)

    def __len__(self) -> int:
        return len(self._events)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self._events[i]
