"""``nb2``: a model of the kernel's NUMA-balancing tiering (numa_balancing=2 + demotion).

Promotion: a slow-tier page that was sampled in the latest cycle (its hint fault
came within the hot threshold) is promoted, most recent first, while the fast
tier has free pages above its low watermark.
Demotion: kswapd-style, when fast-tier free memory falls under the high
watermark (raised by the promotions waiting for room), the least recently
sampled fast-tier pages are demoted.
"""

from __future__ import annotations

import numpy as np

from tierctl.core.heat import NEVER
from tierctl.core.plan import Plan
from tierctl.core.policy import NoThresholds, PolicyView, top_k
from tierctl.errors import InputError


class Nb2Policy(NoThresholds):
    """Model of the kernel's NUMA balancing mode 2 + demotion."""

    name = "nb2"

    def __init__(self, *, hot_threshold_cycles: int = 1, low_wmark: float = 0.01, high_wmark: float = 0.02):
        if hot_threshold_cycles < 1:
            raise InputError("hot_threshold_cycles must be >= 1", "nb2.hot_threshold_cycles")
        if not 0 <= low_wmark <= high_wmark < 1:
            raise InputError("need 0 <= low_wmark <= high_wmark < 1", "nb2.wmark")
        self.hot_threshold_cycles = hot_threshold_cycles
        self.low_wmark = low_wmark
        self.high_wmark = high_wmark

    def decide(self, view: PolicyView) -> Plan:
        topo = view.memory.topology
        node = view.memory.node
        fast = topo.fast_lut()[node + 1]
        cap = topo.fast_capacity
        free = topo.fast_free
        low = int(self.low_wmark * cap)
        high = int(self.high_wmark * cap)
        last_seen = view.heat.last_seen

        recent = (last_seen != NEVER) & (last_seen > view.now - self.hot_threshold_cycles)
        cand = np.flatnonzero(recent & ~fast & (node >= 0))
        # most recently sampled first, then the hotter
        cand = cand[np.lexsort((-view.heat.heat[cand], -last_seen[cand]))]

        budget = view.budget
        need = max(0, high + cand.shape[0] - free)
        n_demote = min(need, budget // 2 if cand.shape[0] else budget)
        demote = np.zeros(0, dtype=np.int64)
        if n_demote > 0:
            fast_idx = np.flatnonzero(fast)
            demote = fast_idx[top_k(last_seen[fast_idx], n_demote, largest=False)]
        n_promote = max(0, min(cand.shape[0], free + demote.shape[0] - low, budget - demote.shape[0]))
        promote = cand[:n_promote]
        if promote.shape[0] == 0 and demote.shape[0] == 0:
            return Plan.empty()
        return Plan.build(promote, topo.promotion_target(), demote, topo.demotion_target())
