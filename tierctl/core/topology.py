"""Topology model: NUMA nodes grouped into memory tiers.

Tier rank 0 is the fastest tier.  The pure core treats rank 0 as "fast" and
every other rank as "slow"; finer tiers only change which slow node a demotion
targets (the nearest lower tier).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tierctl.errors import InputError


@dataclass(frozen=True)
class Node:
    id: int
    tier: int  # rank: 0 = fastest
    capacity_pages: int
    free_pages: int
    cpus: tuple[int, ...] = ()
    latency_ns: float | None = None
    bandwidth_mbps: float | None = None


@dataclass(frozen=True)
class Topology:
    nodes: tuple[Node, ...]
    page_size: int = 4096
    # node id -> preferred demotion target node id (the kernel's demotion order when known)
    demotion_targets: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.nodes:
            raise InputError("a topology needs at least one node", "topology")
        ids = [n.id for n in self.nodes]
        if len(set(ids)) != len(ids):
            raise InputError(f"duplicate node ids {ids}", "topology")
        if min(ids) < 0 or max(ids) > 1023:
            raise InputError(f"node ids must be within 0..1023, got {ids}", "topology")

    @property
    def fast_nodes(self) -> tuple[Node, ...]:
        top = min(n.tier for n in self.nodes)
        return tuple(n for n in self.nodes if n.tier == top)

    @property
    def slow_nodes(self) -> tuple[Node, ...]:
        top = min(n.tier for n in self.nodes)
        return tuple(n for n in self.nodes if n.tier != top)

    @property
    def fast_capacity(self) -> int:
        return sum(n.capacity_pages for n in self.fast_nodes)

    @property
    def fast_free(self) -> int:
        return sum(n.free_pages for n in self.fast_nodes)

    def node(self, node_id: int) -> Node:
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise InputError(f"no node {node_id} (nodes: {[n.id for n in self.nodes]})", "topology")

    def fast_lut(self) -> np.ndarray:
        """Bool lookup table indexed by ``node + 1`` (so node -1, "not present", maps to False)."""
        lut = np.zeros(max(n.id for n in self.nodes) + 2, dtype=bool)
        for n in self.fast_nodes:
            lut[n.id + 1] = True
        return lut

    def promotion_target(self) -> int:
        """The fast node with the most free pages."""
        return max(self.fast_nodes, key=lambda n: (n.free_pages, -n.id)).id

    def demotion_target(self) -> int:
        """The slow node to demote into: the kernel's target of a fast node if known, else the roomiest."""
        slow = self.slow_nodes
        if not slow:
            raise InputError("no slow tier: every node is in the top tier", "topology")
        for f in self.fast_nodes:
            t = self.demotion_targets.get(f.id)
            if t is not None and any(s.id == t for s in slow):
                return t
        best_tier = min(s.tier for s in slow)
        return max((s for s in slow if s.tier == best_tier), key=lambda n: (n.free_pages, -n.id)).id
