"""The daemon's Service on the simulated two-tier machine: overrides, pause, reload, persistence, views."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from tierctl.data import profiles_dir
from tierctl.errors import InputError
from tierctl.profiles.schema import ProfileError
from tierctl.service.service import Service
from tierctl.sim.live import sim_service

CACHE = "/system.slice/redis-server.service"
BATCH = "/batch.slice/nightly-etl.service"
DB = "/system.slice/postgresql@16-main.service"


def _svc(tmp_path: Path, **kw: object) -> Service:
    profiles = tmp_path / "profiles"
    if not profiles.exists():
        shutil.copytree(profiles_dir(), profiles)
    svc = sim_service(
        "multi-cgroup", state_dir=tmp_path / "state", profiles_dir=profiles, epochs=60, wall=lambda: 1e9, **kw
    )
    svc.start()
    return svc


@pytest.fixture(scope="module")
def warm(tmp_path_factory: pytest.TempPathFactory) -> Service:
    svc = _svc(tmp_path_factory.mktemp("warm"))
    for _ in range(30):
        svc.cycle()
    return svc


def _by_path(svc: Service) -> dict[str, dict]:
    return {c["path"]: c for c in svc.cgroups()}


def test_profiles_match_the_simulated_cgroups(warm: Service) -> None:
    got = {p: c["profile"] for p, c in _by_path(warm).items()}
    assert got == {CACHE: "latency-cache", BATCH: "batch", DB: "database"}
    assert warm.status()["state"] == "running" and warm.status()["cycle"] == 30


def test_the_controller_places_the_hot_sets(warm: Service) -> None:
    cg = _by_path(warm)
    # the batch job allocated first and filled DRAM; its profile caps it at 15 % of the fast tier
    fast = sum(c["fast_bytes"] for c in cg.values())
    assert cg[BATCH]["fast_bytes"] <= 0.15 * fast + 4096
    assert cg[CACHE]["est_fast_hit_ratio"] > 0.9
    assert warm.status()["moved"]["promoted"] > 0 and warm.status()["moved"]["demoted"] > 0
    assert [e for e in warm.events if e["kind"] == "migrated"]


def test_detail_shows_heat_by_tier_and_the_process(warm: Service) -> None:
    d = warm.cgroup_detail(CACHE)
    n_pages = d["processes"][0]["pages_per_node"]
    assert d["processes"][0]["comm"] == "redis-server"
    assert sum(n_pages.values()) * 4096 == d["fast_bytes"] + d["slow_bytes"]
    assert sum(d["heat_histogram"]["fast"]) * 4096 == d["fast_bytes"]
    with pytest.raises(InputError, match="not a managed cgroup"):
        warm.cgroup_detail("/nope.slice")


def test_pin_slow_drains_the_cgroup_and_survives_a_restart(tmp_path: Path) -> None:
    svc = _svc(tmp_path)
    for _ in range(10):
        svc.cycle()
    assert _by_path(svc)[CACHE]["fast_bytes"] > 0
    svc.pin(CACHE, "slow")
    for _ in range(15):
        svc.cycle()
    assert _by_path(svc)[CACHE]["fast_bytes"] == 0
    assert _by_path(svc)[CACHE]["override"] == "slow"
    again = _svc(tmp_path)  # same state dir: the override is back before the first cycle
    assert again.overrides.pins == {CACHE: "slow"}
    again.unpin(CACHE)
    assert _svc(tmp_path).overrides.pins == {}


def test_pause_keeps_the_machine_running_but_moves_nothing(tmp_path: Path) -> None:
    svc = _svc(tmp_path)
    svc.cycle()
    svc.pause()
    moved = dict(svc.moved)
    epoch = svc.platform.loop.epoch  # type: ignore[attr-defined]
    for _ in range(5):
        svc.cycle()
    assert svc.moved == moved and svc.status()["state"] == "paused"
    assert svc.platform.loop.epoch == epoch + 5  # type: ignore[attr-defined]
    svc.resume()
    for _ in range(3):
        svc.cycle()
    assert svc.moved != moved


def test_reload_is_transactional(tmp_path: Path) -> None:
    svc = _svc(tmp_path)
    names = svc.profiles.names()
    (tmp_path / "profiles" / "broken.toml").write_text("[placement]\npin = 'warm'\n")
    with pytest.raises(ProfileError, match=r"broken\.toml"):
        svc.reload()
    assert svc.profiles.names() == names
    (tmp_path / "profiles" / "broken.toml").unlink()
    assert svc.reload()["profiles"] == names


def test_mutations_check_the_cgroup_and_the_tier(tmp_path: Path) -> None:
    svc = _svc(tmp_path)
    with pytest.raises(InputError, match="no such cgroup"):
        svc.pin("/no.slice/x.service", "fast")
    with pytest.raises(InputError):
        svc.pin(CACHE, "warm")
    svc.set_quota(CACHE, "10%", None)
    assert svc.status()["overrides"]["quotas"][CACHE] == {"fast_min": "10%", "fast_max": None}
    assert [e["kind"] for e in svc.events][-1] == "quota" and svc.events[-1]["time"] == 1e9


def test_dry_run_plans_but_never_moves(tmp_path: Path) -> None:
    svc = _svc(tmp_path, dry_run=True)
    for _ in range(10):
        svc.cycle()
    assert svc.status()["state"] == "dry-run"
    assert svc.moved == {"promoted": 0, "demoted": 0}
    assert svc.status()["moved"]["outcomes"].get("dry_run", 0) > 0


def _fast_pages_of(svc: Service, path: str) -> int:
    loop = svc.platform.loop  # type: ignore[attr-defined]
    i = loop.view.cgroups.index(path)
    return int(((loop.machine.cgroup == i) & (loop.machine.node == 0)).sum())


def test_a_profiles_rate_limits_bound_each_cycle(tmp_path: Path) -> None:
    profiles = tmp_path / "profiles"
    shutil.copytree(profiles_dir(), profiles)
    text = (profiles / "latency-cache.toml").read_text()
    assert "promote_rate_mbps = " in text
    lines = [
        "promote_rate_mbps = 0.4" if ln.startswith("promote_rate_mbps") else ln for ln in text.splitlines()
    ]
    (profiles / "latency-cache.toml").write_text("\n".join(lines) + "\n")
    svc = _svc(tmp_path)
    limit = int(0.4e6 // 4096)  # 97 pages per 1 s epoch
    for _ in range(2):  # first touches (and the first discovery: profiles match from cycle 2 on)
        svc.cycle()
    gains = []
    for _ in range(20):
        before = _fast_pages_of(svc, CACHE)
        svc.cycle()
        gains.append(_fast_pages_of(svc, CACHE) - before)
    assert max(gains) <= limit and max(gains) == limit  # bounded, and the limit is what binds
    assert svc.loop.controller.totals.rate_limited > 0


def test_a_fixed_threshold_above_every_page_keeps_the_cgroup_out(tmp_path: Path) -> None:
    profiles = tmp_path / "profiles"
    shutil.copytree(profiles_dir(), profiles)
    text = (profiles / "latency-cache.toml").read_text()
    lines = [ln for ln in text.splitlines() if not ln.startswith(("hot_threshold", "fast_min", "pin"))]
    i = lines.index("[placement]")
    lines[i + 1 : i + 1] = ["hot_threshold = 1e12"]
    (profiles / "latency-cache.toml").write_text("\n".join(lines) + "\n")
    svc = _svc(tmp_path)
    first = None
    for n in range(25):
        svc.cycle()
        if n == 0:
            first = _fast_pages_of(svc, CACHE)
    assert first is not None and _fast_pages_of(svc, CACHE) <= first  # never promoted, only demoted


def test_the_heat_strip_follows_the_address_space(warm: Service) -> None:
    d = warm.cgroup_detail(DB)
    strip = d["heat_strip"]
    assert len(strip["heat"]) == len(strip["fast_fraction"]) == 64
    loop = warm.platform.loop  # type: ignore[attr-defined]
    i = loop.view.cgroups.index(DB)
    mine = np.flatnonzero(loop.machine.cgroup == i)
    heat = loop.controller.heat.heat[mine]
    first = mine.shape[0] // 64
    assert strip["heat"][0] == pytest.approx(float(heat[:first].mean()), rel=1e-5)
    fast = float(np.mean(strip["fast_fraction"]))
    assert fast == pytest.approx(d["fast_bytes"] / (d["fast_bytes"] + d["slow_bytes"]), abs=0.02)
    assert all(0.0 <= f <= 1.0 for f in strip["fast_fraction"])


def test_migrations_are_reported_per_cgroup(warm: Service) -> None:
    events = [e for e in warm.events if e["kind"] == "migrated"]
    assert events
    for e in events:
        per = e["cgroups"]
        assert sum(c["promoted"] for c in per.values()) == e["promoted"]
        assert sum(c["demoted"] for c in per.values()) == e["demoted"]
    mine = warm.cgroup_detail(BATCH)["recent_migrations"]
    assert mine and all("cgroups" not in m for m in mine)
    last = next(e for e in reversed(events) if BATCH in e["cgroups"])
    assert mine[-1]["seq"] == last["seq"] and mine[-1]["demoted"] == last["cgroups"][BATCH]["demoted"]


def test_a_pin_keeps_the_rate_limits_but_not_a_fixed_threshold(tmp_path: Path) -> None:
    profiles = tmp_path / "profiles"
    shutil.copytree(profiles_dir(), profiles)
    text = (profiles / "batch.toml").read_text()
    assert 'hot_threshold = "auto"' in text
    (profiles / "batch.toml").write_text(text.replace('hot_threshold = "auto"', "hot_threshold = 1e12"))
    svc = _svc(tmp_path)
    svc.cycle()
    svc.cycle()
    svc.pin(BATCH, "fast")
    svc.cycle()
    i = svc.loop.view.cgroups.index(BATCH)
    q = svc.loop.controller.quotas[i]
    assert q.threshold is None and q.hysteresis is None
    assert q.promote_pages == int(50e6 // 4096) and q.demote_pages == int(400e6 // 4096)


def test_cycle_log_has_one_json_line_per_cycle(tmp_path: Path) -> None:
    import json

    log = tmp_path / "cycles.jsonl"
    svc = _svc(tmp_path, cycle_log=log)
    for _ in range(3):
        svc.cycle()
    svc.stop()
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert [x["cycle"] for x in lines] == [1, 2, 3]
    assert all(x["time"] == 1e9 and x["tracked_pages"] > 0 for x in lines)
    assert sum(x["promoted"] + x["demoted"] for x in lines) == svc.moved["promoted"] + svc.moved["demoted"]
    assert "target" in lines[0]["policy"] and "thresholds" not in lines[0]["policy"]
    # how much of the page space the decision evaluated (all of it at this size)
    assert lines[0]["policy"]["full"] is True and lines[0]["policy"]["evaluated"] > 0


def test_cycle_log_that_cannot_be_opened_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot open for appending") as e:
        _svc(tmp_path, cycle_log=tmp_path / "missing" / "cycles.jsonl")
    assert e.value.where == str(tmp_path / "missing" / "cycles.jsonl")
