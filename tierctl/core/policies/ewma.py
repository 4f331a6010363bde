"""``ewma``: a reference baseline, the simplest reasonable heat policy.

Heat is the controller's exponentially decayed sample weight (an EWMA of the access rate). Each
cycle the policy wants the fast tier to hold the hottest present pages: it fills free room with the
hottest slow pages, then swaps the hottest slow page for the coldest fast page while the slow one is
strictly hotter, within the cycle's budget. No quotas, no headroom, no noise model: a yardstick for
what the default policy must beat, not a policy to run.
"""

from __future__ import annotations

import numpy as np

from tierctl.core.plan import Plan
from tierctl.core.policy import NoThresholds, PolicyView, top_k


class EwmaPolicy(NoThresholds):
    """EWMA top-k: the hottest pages by decayed heat belong in the fast tier."""

    name = "ewma"

    def decide(self, view: PolicyView) -> Plan:
        topo = view.memory.topology
        node = view.memory.node
        fast = topo.fast_lut()[node + 1]
        heat = view.heat.heat
        slow_idx = np.flatnonzero(~fast & (node >= 0) & (heat > 0))
        fast_idx = np.flatnonzero(fast)
        budget = view.budget
        hot = slow_idx[top_k(heat[slow_idx], budget, largest=True)]
        n_fill = max(0, min(topo.fast_free, hot.shape[0], budget))
        fill, hot = hot[:n_fill], hot[n_fill:]
        m = min(hot.shape[0], (budget - n_fill) // 2)
        cold = fast_idx[top_k(heat[fast_idx], m, largest=False)]
        m = min(m, cold.shape[0])
        better = heat[hot[:m]] > heat[cold[:m]]
        n_swap = m if better.all() else int(np.argmin(better))
        if n_fill + n_swap == 0:
            return Plan.empty()
        promote = np.concatenate([fill, hot[:n_swap]])
        return Plan.build(promote, topo.promotion_target(), cold[:n_swap], topo.demotion_target())
