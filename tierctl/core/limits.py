"""Per-cgroup migration rate limits applied to a plan, whatever policy made it.

A cgroup's quota may cap its promotions and demotions per cycle (a profile's
``promote_rate_mbps`` / ``demote_rate_mbps`` turned into pages for the cycle
period). The plan keeps its order; within each (cgroup, kind) the first rows —
the policy's most wanted moves — are kept and the rest are dropped this cycle.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from tierctl.core.plan import DEMOTE, PROMOTE, Plan
from tierctl.core.policy import Quota, rank_within_groups


def limit_plan(plan: Plan, cgroup: np.ndarray, quotas: Mapping[int, Quota]) -> tuple[Plan, int]:
    """The plan with every cgroup's per-cycle promotion/demotion limits applied, and the rows dropped."""
    limited = {i: q for i, q in quotas.items() if q.promote_pages is not None or q.demote_pages is not None}
    if not limited or len(plan) == 0:
        return plan, 0
    n_cg = max(int(cgroup.max()) + 1 if cgroup.shape[0] else 1, max(limited) + 1)
    unlimited = np.iinfo(np.int64).max
    cap = np.full((2, n_cg), unlimited, dtype=np.int64)  # [kind, cgroup]
    for i, q in limited.items():
        if q.demote_pages is not None:
            cap[DEMOTE, i] = q.demote_pages
        if q.promote_pages is not None:
            cap[PROMOTE, i] = q.promote_pages
    owner = cgroup[plan.pages].astype(np.int64)
    group = plan.kind.astype(np.int64) * n_cg + owner  # one group per (kind, cgroup), order kept
    keep = rank_within_groups(group) < cap[plan.kind.astype(np.int64), owner]
    dropped = int(keep.shape[0] - np.count_nonzero(keep))
    if not dropped:
        return plan, 0
    return Plan(plan.pages[keep], plan.dest[keep], plan.kind[keep]), dropped
