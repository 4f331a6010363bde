"""What the operator asked for (pin, unpin, quota, migrate), as the outcome the operator is told.

:class:`Requests` starts each request's outcome in the ``OutcomeBook`` (``service.outcomes``) with a
message built from the cgroup's placement now, and hands the book every cycle's facts (the placement
after the cycle, the plan and what the mover made of it) to judge. The overrides themselves are
``service.mutations``' (persisted before acknowledged); this module only reports on them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from tierctl.core.controller import CycleReport
from tierctl.core.policy import Quota
from tierctl.core.topology import Topology
from tierctl.service.outcomes import ALL, PAUSED, Goal, OutcomeBook, Placement, cycle_facts
from tierctl.service.overrides import Overrides
from tierctl.service.platform import Loop
from tierctl.service.quotas import operator_quota_pages


class Requests:
    def __init__(
        self,
        loop: Loop,
        overrides: Callable[[], Overrides],
        topology: Callable[[], Topology],
        pins: Callable[[], Mapping[str, str]],
        *,
        dry_run: bool,
        wall: Callable[[], float],
        emit: Callable[..., None],
    ) -> None:
        self.loop = loop
        self.overrides = overrides
        self.topology = topology
        self.pins = pins  # cgroup -> the pin in force (the operator's, else its profile's)
        self.dry_run = dry_run
        self.book = OutcomeBook(wall, emit)

    def placement(self, path: str) -> Placement:
        """A cgroup's present pages by tier as of the last cycle (ALL: every managed cgroup's)."""
        st = self.loop.view.last
        if st is None:
            return Placement()
        mine = st.node >= 0
        if path != ALL:
            names = self.loop.view.cgroups
            if path not in names:
                return Placement()
            mine &= st.cgroup == names.index(path)
        n_fast = int(np.count_nonzero(mine & st.topology.fast_lut()[st.node + 1]))
        return Placement(n_fast, int(np.count_nonzero(mine)) - n_fast)

    def judge(self, rep: CycleReport, quotas: Mapping[int, Quota]) -> None:
        """Judge every live outcome by the cycle ``rep`` (its snapshot is the view's last); nothing to
        count when none waits (the usual cycle)."""
        st = self.loop.view.last
        if st is None or not self.book.waiting:
            return
        tapped = None if rep.plan is None or rep.moves is None else (rep.plan, rep.moves)
        facts = cycle_facts(
            st,
            self.loop.view.cgroups,
            tapped,
            quotas,
            self.pins(),
            decided=rep.decided,
            budget_pages=self.loop.controller.budget_pages,
            dry_run=self.dry_run,
        )
        self.book.observe(facts)

    def _waiting(self) -> str:
        return PAUSED if self.overrides().paused else "the next cycle"

    def pin(self, path: str, tier: str) -> dict[str, Any]:
        """The outcome of pinning ``path`` to ``tier`` (``auto``: unpinning it)."""
        now = self.placement(path).text()
        if tier == "auto":
            msg = f"unpin: the policy places it again from the next cycle; {now}"
            return self.book.start(path, "unpin", "auto", Goal("policy"), msg, waiting_for=self._waiting())
        msg = f"pin {tier}: accepted; {now}"
        if path in self.overrides().quotas:
            msg += "; its quota is inactive while pinned"
        if self.dry_run:
            msg += "; dry-run: nothing will move"
        goal = Goal("fast" if tier == "fast" else "slow")
        return self.book.start(path, "pin", tier, goal, msg, waiting_for=self._waiting())

    def quota(self, path: str, lo: str | int | None, hi: str | int | None) -> dict[str, Any]:
        """A quota's outcome; set while the cgroup is pinned it is stored, reported inactive (the pin
        wins) and applies once unpinned."""
        now = self.placement(path)
        if lo is None and hi is None:
            msg = f"quota dropped: the profile's quota applies from the next cycle; {now.text()}"
            return self.book.start(path, "quota", "none", Goal("policy"), msg, waiting_for=self._waiting())
        target = ", ".join(f"{k}={v}" for k, v in (("fast_min", lo), ("fast_max", hi)) if v is not None)
        lo_p, hi_p = operator_quota_pages({"fast_min": lo, "fast_max": hi}, path, self.topology())
        goal = Goal("range", lo_p, hi_p)
        pin = self.pins().get(path)
        if pin is not None:
            why = f"a pin that wins over the quota (pinned to {pin}; unpin to apply it)"
            msg = f"quota {target}: stored, inactive while pinned to {pin} (unpin to apply it)"
            return self.book.start(path, "quota", target, goal, msg, waiting_for=why)
        want = f"{lo_p:,}" + ("" if hi_p is None else f"..{hi_p:,}")
        msg = f"quota {target}: accepted; {now.fast:,} fast pages now, {want} wanted; {now.text()}"
        return self.book.start(path, "quota", target, goal, msg, waiting_for=self._waiting())

    def migrate(self, key: str) -> dict[str, Any]:
        """Queue a placement pass over ``key`` (a cgroup, or ALL): the next cycle's policy decides
        even without news; the outcome reports what that cycle moved for it (for a pinned cgroup or
        one with a quota: until the override is met)."""
        target = "all" if key == ALL else key
        pin, over = self.pins().get(key), self.overrides().quotas.get(key)
        goal = Goal("pass")  # done once the pass moved what it planned
        if pin is not None:  # ... or, for an override, once the override is met
            goal = Goal("fast" if pin == "fast" else "slow")
        elif over is not None:
            goal = Goal("range", *operator_quota_pages(over, key, self.topology()))
        self.loop.controller.force_decision()
        budget = self.loop.controller.budget_pages
        msg = (
            f"migrate {target}: a placement pass runs at the next cycle "
            f"(budget {budget:,} pages/cycle{f', pinned to {pin}' if pin else ''}); "
            f"{self.placement(key).text()} now"
        )
        return self.book.start(key, "migrate", target, goal, msg, waiting_for=self._waiting())
