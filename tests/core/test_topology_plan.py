"""Topology (tiers, lookup table, move targets) and Plan (ordering, split by owner)."""

from __future__ import annotations

import numpy as np
import pytest

from tierctl.core.plan import DEMOTE, PROMOTE, Plan
from tierctl.core.topology import Node, Topology
from tierctl.errors import InputError


def _three_tier() -> Topology:
    # two DRAM nodes (tier 0), one CXL node (tier 1), one far node (tier 2)
    return Topology(
        nodes=(
            Node(0, 0, 100, 10),
            Node(1, 0, 100, 30),
            Node(2, 1, 1000, 500),
            Node(5, 2, 1000, 900),
        )
    )


# ---- Topology ---------------------------------------------------------------------------------
def test_fast_and_slow_nodes_split_by_top_tier() -> None:
    topo = _three_tier()
    assert [n.id for n in topo.fast_nodes] == [0, 1]
    assert [n.id for n in topo.slow_nodes] == [2, 5]
    assert topo.fast_capacity == 200
    assert topo.fast_free == 40


def test_fast_nodes_use_lowest_rank_present_even_if_not_zero() -> None:
    topo = Topology(nodes=(Node(3, 2, 10, 1), Node(4, 1, 10, 2)))
    assert [n.id for n in topo.fast_nodes] == [4]
    assert [n.id for n in topo.slow_nodes] == [3]


def test_fast_lut_maps_not_present_to_false() -> None:
    topo = _three_tier()
    lut = topo.fast_lut()
    assert lut.dtype == bool
    assert lut.shape == (7,)  # max node id 5 + 2
    node = np.array([-1, 0, 1, 2, 5, -1], dtype=np.int16)
    assert lut[node + 1].tolist() == [False, True, True, False, False, False]


def test_promotion_target_is_roomiest_fast_node() -> None:
    assert _three_tier().promotion_target() == 1


def test_promotion_target_tie_goes_to_lowest_id() -> None:
    topo = Topology(nodes=(Node(4, 0, 10, 5), Node(2, 0, 10, 5), Node(7, 1, 10, 5)))
    assert topo.promotion_target() == 2


def test_demotion_target_defaults_to_roomiest_node_of_nearest_slow_tier() -> None:
    # node 5 has more free pages, but node 2 is in the nearer tier
    assert _three_tier().demotion_target() == 2
    topo = Topology(nodes=(Node(0, 0, 10, 0), Node(1, 1, 100, 10), Node(2, 1, 100, 60), Node(3, 2, 999, 999)))
    assert topo.demotion_target() == 2


def test_demotion_targets_are_honoured() -> None:
    base = _three_tier()
    topo = Topology(nodes=base.nodes, demotion_targets={0: 5})
    assert topo.demotion_target() == 5


def test_demotion_target_ignores_a_target_that_is_not_a_slow_node() -> None:
    base = _three_tier()
    # 1 is a fast node, 9 does not exist: both are ignored and the default rule applies
    assert Topology(nodes=base.nodes, demotion_targets={0: 1}).demotion_target() == 2
    assert Topology(nodes=base.nodes, demotion_targets={0: 9}).demotion_target() == 2


def test_demotion_target_without_slow_tier_raises() -> None:
    topo = Topology(nodes=(Node(0, 0, 10, 1), Node(1, 0, 10, 1)))
    with pytest.raises(InputError, match="no slow tier"):
        topo.demotion_target()


def test_duplicate_node_ids_raise() -> None:
    with pytest.raises(InputError, match="duplicate node ids") as exc:
        Topology(nodes=(Node(0, 0, 10, 1), Node(0, 1, 10, 1)))
    assert exc.value.where == "topology"


def test_empty_topology_and_out_of_range_ids_raise() -> None:
    with pytest.raises(InputError, match="at least one node"):
        Topology(nodes=())
    with pytest.raises(InputError, match=r"0\.\.1023"):
        Topology(nodes=(Node(-1, 0, 10, 1),))
    with pytest.raises(InputError, match=r"0\.\.1023"):
        Topology(nodes=(Node(1024, 0, 10, 1),))


def test_node_lookup() -> None:
    topo = _three_tier()
    assert topo.node(5).capacity_pages == 1000
    with pytest.raises(InputError, match="no node 3"):
        topo.node(3)


# ---- Plan -------------------------------------------------------------------------------------
def test_plan_build_puts_demotions_first_and_keeps_order() -> None:
    plan = Plan.build(np.array([7, 3, 9]), 0, np.array([4, 1]), 2)
    assert plan.pages.tolist() == [4, 1, 7, 3, 9]
    assert plan.dest.tolist() == [2, 2, 0, 0, 0]
    assert plan.kind.tolist() == [DEMOTE, DEMOTE, PROMOTE, PROMOTE, PROMOTE]
    assert plan.pages.dtype == np.int64
    assert plan.dest.dtype == np.int16
    assert plan.kind.dtype == np.uint8
    assert len(plan) == 5
    assert plan.promote.tolist() == [7, 3, 9]
    assert plan.demote.tolist() == [4, 1]


def test_plan_build_accepts_lists_and_empty_sides() -> None:
    plan = Plan.build([5, 6], 1, [], 0)
    assert plan.pages.tolist() == [5, 6]
    assert plan.kind.tolist() == [PROMOTE, PROMOTE]
    plan = Plan.build([], 1, [2], 3)
    assert plan.pages.tolist() == [2]
    assert plan.dest.tolist() == [3]


def test_plan_empty() -> None:
    plan = Plan.empty()
    assert len(plan) == 0
    assert plan.pages.dtype == np.int64
    assert plan.promote.shape == (0,)
    assert plan.demote.shape == (0,)


def test_plan_split_by_owner_keeps_order_within_owner() -> None:
    plan = Plan.build(np.array([5, 0, 3, 1]), 0, np.array([4, 2, 6]), 1)
    # plan order: 4 2 6 | 5 0 3 1
    owner = np.array([10, 20, 10, 20, 20, 10, 30])
    parts = plan.split(owner)
    assert sorted(parts) == [10, 20, 30]
    assert parts[10].pages.tolist() == [2, 5, 0]
    assert parts[10].kind.tolist() == [DEMOTE, PROMOTE, PROMOTE]
    assert parts[10].dest.tolist() == [1, 0, 0]
    assert parts[20].pages.tolist() == [4, 3, 1]
    assert parts[20].kind.tolist() == [DEMOTE, PROMOTE, PROMOTE]
    assert parts[30].pages.tolist() == [6]
    assert parts[30].dest.tolist() == [1]
    assert sum(len(p) for p in parts.values()) == len(plan)


def test_plan_split_of_empty_plan_is_empty() -> None:
    assert Plan.empty().split(np.arange(4)) == {}


def test_interleaved_promotes_into_free_room_first_then_alternates_chunks() -> None:
    p = Plan.build(np.arange(100, 110), 0, np.arange(200, 206), 1)
    out = p.interleaved(room=3, chunk=2)
    assert out.pages.tolist()[:13] == [100, 101, 102, 200, 201, 103, 104, 202, 203, 105, 106, 204, 205]
    assert out.pages.tolist()[13:] == [107, 108, 109]  # promotions beyond room + demotions: last
    assert p.interleaved(room=0, chunk=4096).pages.tolist() == p.pages.tolist()[:6] + list(range(100, 110))
    assert Plan.build(np.arange(3), 0, np.zeros(0, np.int64), 1).interleaved(1, 2).pages.tolist() == [0, 1, 2]


@pytest.mark.parametrize("seed", range(20))
def test_interleaved_keeps_every_move_and_never_overfills_the_room(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_p, n_d, room, chunk = (int(x) for x in rng.integers(0, 50, 4))
    p = Plan.build(rng.permutation(1000)[:n_p], 0, 1000 + rng.permutation(1000)[:n_d], 1)
    out = p.interleaved(room=room, chunk=max(1, chunk))
    assert sorted(out.pages.tolist()) == sorted(p.pages.tolist())
    assert out.promote.tolist() == p.promote.tolist() and out.demote.tolist() == p.demote.tolist()
    dest = dict(zip(p.pages.tolist(), p.dest.tolist(), strict=True))
    assert [dest[x] for x in out.pages.tolist()] == out.dest.tolist()
    is_p = out.kind == PROMOTE
    # at every prefix: promotions <= room + demotions, until the demotions run out
    over = np.cumsum(is_p) - np.cumsum(~is_p) - room
    done_d = np.cumsum(~is_p) >= n_d
    assert ((over <= 0) | done_d).all()
    with pytest.raises(ValueError, match="chunk"):
        p.interleaved(room=0, chunk=0)
