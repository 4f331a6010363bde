"""The mover contract: a policy-free executor of plans with honest per-page outcomes."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from tierctl.core.plan import Plan


class Outcome(enum.IntEnum):
    MOVED = 0
    ALREADY_THERE = 1
    BUSY = 2
    NOT_PRESENT = 3
    GONE = 4  # the owning process exited
    TARGET_FULL = 5
    NOT_PERMITTED = 6
    OVER_BUDGET = 7  # not attempted this cycle: the budget ran out first
    DRY_RUN = 8  # planned, deliberately not attempted


@dataclass
class MoveReport:
    pages: np.ndarray  # int64, the plan's pages in plan order
    outcome: np.ndarray  # int8 Outcome per page
    counts: dict[str, int] = field(default_factory=dict)

    @staticmethod
    def from_outcomes(pages: np.ndarray, outcome: np.ndarray) -> MoveReport:
        tally = np.bincount(outcome.astype(np.int64), minlength=len(Outcome))
        counts = {o.name.lower(): int(tally[o]) for o in Outcome}
        return MoveReport(pages, outcome, counts)

    @property
    def moved(self) -> np.ndarray:
        return self.pages[self.outcome == Outcome.MOVED]


class Mover(Protocol):
    def apply(self, plan: Plan, budget_pages: int) -> MoveReport:
        """Carry out ``plan`` in order, moving at most ``budget_pages`` pages."""
        ...


class DryRunMover:
    """Plans are reported, nothing moves (``tierctl daemon --dry-run``)."""

    def apply(self, plan: Plan, budget_pages: int) -> MoveReport:
        return MoveReport.from_outcomes(plan.pages, np.full(len(plan), Outcome.DRY_RUN, dtype=np.int8))
