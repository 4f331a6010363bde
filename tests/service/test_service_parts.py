"""The Service's parts on their own: quota resolution, per-cgroup analytics, the policy's figures
through its declared interface (any policy), policy options from the daemon's configuration."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from tierctl.cli import build_parser
from tierctl.core.policies import make_policy
from tierctl.core.policy import MemoryState, capacity_threshold
from tierctl.core.topology import Node, Topology
from tierctl.data import profiles_dir
from tierctl.errors import InputError
from tierctl.profiles import load_profiles
from tierctl.service import analytics
from tierctl.service.overrides import Overrides
from tierctl.service.quotas import ALL_PAGES, resolve_quotas
from tierctl.sim.live import sim_service

CACHE = "/system.slice/redis-server.service"


def _topo(fast: int = 100, slow: int = 300) -> Topology:
    return Topology((Node(0, 0, fast, 10), Node(1, 1, slow, 100)), demotion_targets={0: 1})


def test_capacity_threshold_is_the_heat_of_the_page_that_fills_the_fast_tier() -> None:
    heat = np.array([5.0, 1.0, 0.0, 9.0, 3.0, 7.0])
    present = np.array([True, True, True, True, False, True])
    assert capacity_threshold(heat, present, 2) == 7.0  # 9 and 7 fit
    assert capacity_threshold(heat, present, 10) == 1.0  # everything with heat fits
    assert capacity_threshold(np.zeros(3), np.ones(3, bool), 2) == np.inf


@pytest.mark.parametrize("policy", ["tierctl", "nb2", "ewma", "static"])
def test_hot_bytes_are_counted_under_every_policy(tmp_path: Path, policy: str) -> None:
    """Before, hot bytes came from the tierctl policy's private stats and were 0 under the others."""
    svc = sim_service(
        "multi-cgroup", state_dir=tmp_path / "s", profiles_dir=profiles_dir(), epochs=20, policy=policy
    )
    svc.start()
    for _ in range(6):
        svc.cycle()
    rows = svc.cgroups()
    assert sum(r["hot_bytes"] for r in rows) > 0
    for r in rows:
        assert 0 <= r["hot_bytes"] <= r["fast_bytes"] + r["slow_bytes"]
    if policy != "tierctl":
        assert (
            svc.loop.controller.policy.hot_thresholds() is None and svc.loop.controller.policy.summary() == {}
        )


def test_policy_options_reach_the_policy_and_unknown_ones_are_refused(tmp_path: Path) -> None:
    svc = sim_service(
        "multi-cgroup",
        state_dir=tmp_path / "a",
        profiles_dir=profiles_dir(),
        policy_options={"hysteresis": 0.75},
    )
    assert svc.loop.controller.policy.hysteresis == 0.75  # type: ignore[attr-defined]
    with pytest.raises(InputError, match=r"no option 'hysteris'.*hysteresis") as e:
        make_policy("tierctl", hysteris=0.5)
    assert e.value.where == "--policy-option"
    with pytest.raises(InputError, match="unknown policy"):
        make_policy("tierclt")


def test_daemon_flags_parse_policy_options() -> None:
    args = build_parser().parse_args(
        ["daemon", "--policy", "nb2", "--policy-option", "low_wmark=0.02", "--policy-option", "x=true"]
    )
    assert args.policy == "nb2" and dict(args.policy_option) == {"low_wmark": 0.02, "x": True}
    with pytest.raises(SystemExit):
        build_parser().parse_args(["daemon", "--policy-option", "novalue"])


def test_quotas_pins_override_profiles_and_operator_quotas_replace_them(tmp_path: Path) -> None:
    profiles = tmp_path / "p"
    shutil.copytree(profiles_dir(), profiles)
    pset = load_profiles([profiles])
    topo = _topo()
    cgroups = [CACHE, "/a", "/b"]
    matches = {CACHE: "latency-cache", "/a": "default", "/b": "default"}
    over = Overrides(pins={"/a": "fast", "/b": "slow"})
    q = resolve_quotas(cgroups, matches, pset, over, topo, cycle_s=1.0)
    assert q[1].min_pages == ALL_PAGES and (q[2].min_pages, q[2].max_pages) == (0, 0)
    over = Overrides(quotas={CACHE: {"fast_min": "30%", "fast_max": "20%"}})
    q = resolve_quotas(cgroups, matches, pset, over, topo, cycle_s=1.0)
    assert (q[0].min_pages, q[0].max_pages) == (30, 30)  # a max below the min is raised to it


def test_per_cgroup_analytics_count_bytes_by_tier_and_node() -> None:
    topo = _topo(fast=4, slow=8)
    node = np.array([0, 0, 1, 1, 1, -1], dtype=np.int16)
    cgroup = np.array([0, 1, 0, 0, 1, 0], dtype=np.uint16)
    st = MemoryState(node=node, cgroup=cgroup, n_cgroups=2, topology=topo)
    heat = np.array([4.0, 1.0, 2.0, 0.0, 8.0, 99.0], dtype=np.float32)
    out = analytics.per_cgroup(st, ["/x", "/y"], heat, None, 4096, {"/x": "p"}, {"/y": "slow"})
    x, y = out["/x"], out["/y"]
    assert x["bytes_per_node"] == {"0": 4096, "1": 8192} and y["bytes_per_node"] == {"0": 4096, "1": 4096}
    assert x["profile"] == "p" and y["override"] == "slow"
    assert x["est_fast_hit_ratio"] == pytest.approx(4 / 6)  # the absent page's heat is not counted
    # no policy threshold: the 4 hottest present pages (8, 4, 2, 1) would fill the fast tier
    assert x["hot_bytes"] == 2 * 4096 and y["hot_bytes"] == 2 * 4096
    out = analytics.per_cgroup(st, ["/x", "/y"], heat, np.array([3.0, np.inf]), 4096, {}, {})
    assert out["/x"]["hot_bytes"] == 4096 and out["/y"]["hot_bytes"] == 0


def test_a_profiles_pin_is_applied_unless_the_operator_pins(tmp_path: Path) -> None:
    """A profile's `pin` used to be parsed and never applied (issue 16: the screen said what was not so)."""
    from tierctl.service.quotas import quota_view

    profiles = tmp_path / "p"
    profiles.mkdir()
    (profiles / "default.toml").write_text((profiles_dir() / "default.toml").read_text())
    (profiles / "cold.toml").write_text(
        '[[match]]\ncgroup = "/cold.service"\n[placement]\npin = "slow"\nfast_max = "10%"\n'
    )
    pset = load_profiles([profiles])
    topo = _topo()
    cgroups, matches = ["/cold.service"], {"/cold.service": "cold"}
    q = resolve_quotas(cgroups, matches, pset, Overrides(), topo, cycle_s=1.0)
    assert (q[0].min_pages, q[0].max_pages) == (0, 0)
    view = quota_view("/cold.service", "cold", pset, Overrides(), topo)
    assert not view["active"] and view["why_inactive"].startswith("pinned to slow by its profile")
    q = resolve_quotas(cgroups, matches, pset, Overrides(pins={"/cold.service": "fast"}), topo, cycle_s=1.0)
    assert q[0].min_pages == ALL_PAGES  # the operator's pin wins over the profile's
