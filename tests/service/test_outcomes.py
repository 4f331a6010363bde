"""Every override and action reports its real outcome (issue 16, item 2), on the simulated machine.

Each of these failed before: a pin to a full fast tier answered "pinned" and nothing said it moved
nothing; migrate-now answered "done" with 0 pages; a quota under a pin was silently ignored; a pin to
the slow tier of a one-node machine was accepted."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from tierctl.core.topology import Node, Topology
from tierctl.errors import InputError
from tierctl.service.outcomes import ALL, CycleFacts, Goal, Moves, OutcomeBook, Placement
from tierctl.service.service import Service
from tierctl.sim.live import sim_service

BATCH = "/batch.slice/nightly-etl.service"  # 32,768 pages: twice the 16,384-page fast tier
CACHE = "/system.slice/redis-server.service"


class Clock:
    def __init__(self) -> None:
        self.t = 1e9

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def warm(tmp_path: Path, clock: Clock) -> Service:
    svc = sim_service(state_dir=tmp_path / "state", wall=clock)
    for _ in range(10):
        svc.cycle()
    return svc


def cycles(svc: Service, clock: Clock, n: int) -> None:
    for _ in range(n):
        clock.t += 1
        svc.cycle()


def outcome_events(svc: Service, after: int) -> list[dict[str, Any]]:
    return [e for e in svc.events_since(after)[1] if e["kind"] == "outcome"]


def row(svc: Service, path: str) -> dict[str, Any]:
    return next(r for r in svc.cgroups() if r["path"] == path)


def test_pin_to_a_full_fast_tier_waits_for_room_then_is_stuck(warm: Service, clock: Clock) -> None:
    seq = warm.events.seq
    res = warm.pin(BATCH, "fast")
    assert res["ok"] is True and res["pins"] == {BATCH: "fast"}  # the old keys stay
    o = res["outcome"]
    assert (o["action"], o["target"], o["state"], o["moved_pages"]) == ("pin", "fast", "accepted", 0)
    assert o["since"] == clock.t and "25% of 32,768 pages in fast" in o["message"]
    assert warm.events[-1]["kind"] == "pin" and warm.events[-1]["outcome"] == o
    cycles(warm, clock, 1)
    o = row(warm, BATCH)["outcome"]
    assert o["state"] == "in_progress" and o["moved_pages"] == 0
    assert o["waiting_for"].startswith("room in the fast tier (full: ")
    # the figures: the other cgroups' fast-tier minimums hold the rest of the fast tier
    assert CACHE in o["waiting_for"] and "more than the whole fast tier" in o["waiting_for"]
    cycles(warm, clock, 4)
    o = warm.cgroup_detail(BATCH)["outcome"]
    assert o["state"] == "stuck" and o["waiting_for"].startswith("room in the fast tier")
    assert "stuck for 5 cycles" in o["message"] and o["updated"] == clock.t
    cycles(warm, clock, 5)
    # one event per change of state, not one per cycle
    assert [e["state"] for e in outcome_events(warm, seq)] == ["in_progress", "stuck"]
    e = outcome_events(warm, seq)[-1]
    assert (e["cgroup"], e["action"], e["target"]) == (BATCH, "pin", "fast") and "stuck" in e["message"]


def test_pin_slow_reports_the_pages_it_moved_and_done(warm: Service, clock: Clock) -> None:
    seq = warm.events.seq
    warm.pin(CACHE, "slow")
    for _ in range(30):
        cycles(warm, clock, 1)
        if row(warm, CACHE)["outcome"]["state"] == "done":
            break
    o = row(warm, CACHE)["outcome"]
    assert o["state"] == "done" and row(warm, CACHE)["fast_bytes"] == 0
    moved = row(warm, CACHE)["demoted_pages"]
    assert o["moved_pages"] > 0 and o["moved_pages"] <= moved
    assert f"{o['moved_pages']:,} pages moved since the request" in o["message"]
    assert "0% of 8,192 pages in fast" in o["message"]
    states = [e["state"] for e in outcome_events(warm, seq)]
    # the budget goes to the other cgroups' moves first (stuck, saying so), then the pin moves
    assert states[-1] == "done" and all(a != b for a, b in itertools.pairwise(states))


def test_migrate_now_is_accepted_and_reports_what_the_next_cycle_moved(warm: Service, clock: Clock) -> None:
    cycle = warm.cycles
    res = warm.migrate_now(CACHE)
    assert warm.cycles == cycle  # queued for the next cycle, not run in the request
    assert res["queued"] == CACHE and res["cycle"] == cycle and "moved" in res
    o = res["outcome"]
    assert (o["action"], o["target"], o["state"]) == ("migrate", CACHE, "accepted")
    assert "runs at the next cycle" in o["message"]
    warm.set_quota(CACHE, None, "10%")  # something to move: 4,352 fast pages, at most 1,638
    res = warm.migrate_now(CACHE)
    cycles(warm, clock, 1)
    o = row(warm, CACHE)["outcome"]
    # the other cgroups' moves take the budget first: never "done" with nothing moved
    assert o["action"] == "migrate" and o["state"] == "in_progress"
    assert o["waiting_for"].startswith("the migration budget (1,638 pages/cycle")
    for _ in range(15):
        if o["state"] == "done":
            break
        cycles(warm, clock, 1)
        o = row(warm, CACHE)["outcome"]
    assert o["state"] == "done" and f"{o['moved_pages']:,} pages moved" in o["message"]


def test_migrate_now_with_nothing_to_move_says_so(warm: Service, clock: Clock) -> None:
    warm.migrate_now(None)
    cycles(warm, clock, 1)
    o = warm.status()["outcomes"][ALL]
    assert o["target"] == "all"
    if o["moved_pages"] == 0:
        assert o["state"] == "done" and "nothing needed moving" in o["message"]
    else:
        assert "nothing needed moving" not in o["message"]


def test_migrate_now_on_a_pinned_cgroup_is_not_done_while_the_pin_is_not_met(
    warm: Service, clock: Clock
) -> None:
    warm.pin(BATCH, "fast")
    warm.migrate_now(BATCH)
    cycles(warm, clock, 1)
    o = row(warm, BATCH)["outcome"]
    assert o["action"] == "migrate" and o["state"] == "in_progress" and o["moved_pages"] == 0
    assert o["waiting_for"].startswith("room in the fast tier")


def test_a_quota_set_while_pinned_is_stored_and_explained_inactive(warm: Service, clock: Clock) -> None:
    warm.pin(BATCH, "fast")
    res = warm.set_quota(BATCH, None, "10%")
    assert res["quotas"][BATCH] == {"fast_min": None, "fast_max": "10%"}  # stored
    o = res["outcome"]
    assert o["action"] == "quota" and o["target"] == "fast_max=10%"
    assert "inactive while pinned to fast" in o["message"]
    assert o["waiting_for"].startswith("a pin that wins over the quota (pinned to fast")
    cycles(warm, clock, 8)
    o = row(warm, BATCH)["outcome"]
    assert o["state"] == "in_progress" and "inactive while pinned to fast" in o["message"]  # never stuck
    q = warm.cgroup_detail(BATCH)["quota"]
    assert q["source"] == "override" and q["fast_max"] == 1638 * 4096 and q["fast_min"] is None
    assert q["active"] is False and q["why_inactive"].startswith("pinned to fast")
    warm.unpin(BATCH)  # the quota applies now
    assert warm.cgroup_detail(BATCH)["quota"]["active"] is True


def test_the_detail_shows_the_profiles_quota(warm: Service) -> None:
    q = warm.cgroup_detail(CACHE)["quota"]  # latency-cache: fast_min 40 %, fast_max 80 %
    assert q == {
        "fast_min": 6553 * 4096,
        "fast_max": 13107 * 4096,
        "source": "profile",
        "active": True,
        "why_inactive": None,
        "fast_min_amount": "40%",
        "fast_max_amount": "80%",
    }


def test_pin_to_a_tier_the_machine_lacks_is_refused(warm: Service, clock: Clock) -> None:
    one = Topology((Node(0, 0, 16384, 100),), page_size=4096)
    warm.editor.topology = lambda: one
    before = warm.overrides.to_json()
    with pytest.raises(
        InputError, match=r"no slow tier on this machine.*nodes present: 0 \(tier 0, fast"
    ) as e:
        warm.pin(CACHE, "slow")
    assert e.value.where == "tier"
    with pytest.raises(InputError, match="no slow tier") as e:
        warm.set_quota(CACHE, None, "50%")
    assert e.value.where == "fast_max"
    assert warm.overrides.to_json() == before and row(warm, CACHE)["outcome"] is None
    warm.pin(CACHE, "fast")  # the one tier there is


def test_paused_outcomes_wait_for_resume_and_events_once(warm: Service, clock: Clock) -> None:
    warm.pause()
    seq = warm.events.seq
    o = warm.pin(CACHE, "slow")["outcome"]
    assert o["waiting_for"].startswith("placement is paused")
    cycles(warm, clock, 8)
    o = row(warm, CACHE)["outcome"]
    assert o["state"] == "in_progress" and o["waiting_for"].startswith("placement is paused")
    assert [e["state"] for e in outcome_events(warm, seq)] == ["in_progress"]


def test_a_dry_run_daemon_reports_impossible(tmp_path: Path, clock: Clock) -> None:
    svc = sim_service(state_dir=tmp_path, wall=clock, dry_run=True)
    cycles(svc, clock, 5)
    o = svc.pin(BATCH, "slow")["outcome"]  # half of it in fast (first touch)
    assert "dry-run" in o["message"]
    cycles(svc, clock, 3)
    o = row(svc, BATCH)["outcome"]
    assert o["state"] == "impossible" and "none made" in o["message"]


# ---- the book alone --------------------------------------------------------------------------------


def facts(**kw: Any) -> CycleFacts:
    base: dict[str, Any] = {
        "cgroups": frozenset({"/a"}),
        "placement": {"/a": Placement(10, 90)},
        "moves": {},
        "quotas": {},
        "pins": {"/a": "fast"},
        "fast_capacity": 100,
        "fast_free": 50,
        "budget_pages": 1000,
    }
    return CycleFacts(**{**base, **kw})


def test_book_rate_limit_then_done_and_a_gone_cgroup() -> None:
    from tierctl.core.policy import Quota

    events: list[dict[str, Any]] = []
    book = OutcomeBook(lambda: 5.0, lambda kind, **i: events.append({"kind": kind, **i}), stuck_cycles=2)
    book.start("/a", "pin", "fast", Goal("fast"), "accepted")
    q = {"/a": Quota(promote_pages=20)}
    book.observe(facts(moves={"/a": Moves(planned=40, promoted=20)}, quotas=q))
    o = book.get("/a")
    assert o is not None and o["state"] == "in_progress" and o["moved_pages"] == 20
    assert o["waiting_for"] == "the migration rate limit (20 pages/cycle)"
    book.observe(facts(moves={"/a": Moves(planned=5, busy=3, not_permitted=2)}))
    o = book.get("/a")
    assert o is not None and o["waiting_for"].startswith("pages the kernel refused (3 busy, 2 not allowed)")
    book.observe(facts(moves={"/a": Moves(planned=5, busy=5)}))
    assert (book.get("/a") or {})["state"] == "stuck"
    book.observe(facts(placement={"/a": Placement(100, 0)}, moves={"/a": Moves(planned=70, promoted=70)}))
    o = book.get("/a")
    assert o is not None and o["state"] == "done" and o["moved_pages"] == 90
    assert [e["state"] for e in events] == ["in_progress", "stuck", "done"]
    book.start("/a", "pin", "slow", Goal("slow"), "accepted")
    book.observe(facts(cgroups=frozenset()))
    assert (book.get("/a") or {})["state"] == "impossible" and events[-1]["message"].endswith("gone")


def test_a_quota_under_its_profiles_pin_is_explained_inactive_not_stuck(tmp_path: Path, clock: Clock) -> None:
    """The pin in force may be the profile's (``pin = "slow"``), not only the operator's: a quota set
    then is stored, says the pin wins, and waits without ever being called stuck."""
    import shutil

    from tierctl.data import profiles_dir

    profiles = tmp_path / "profiles"
    shutil.copytree(profiles_dir(), profiles)
    batch = profiles / "batch.toml"
    batch.write_text(batch.read_text().replace('pin = "auto"', 'pin = "slow"', 1))
    svc = sim_service(state_dir=tmp_path / "state", profiles_dir=profiles, wall=clock)
    cycles(svc, clock, 10)
    o = svc.set_quota(BATCH, "50%", None)["outcome"]
    assert "inactive while pinned to slow" in o["message"]
    assert o["waiting_for"].startswith("a pin that wins over the quota (pinned to slow")
    cycles(svc, clock, 8)
    o = row(svc, BATCH)["outcome"]
    assert o["state"] == "in_progress" and o["waiting_for"].startswith("a pin that wins")  # never stuck
    assert svc.cgroup_detail(BATCH)["quota"]["why_inactive"].startswith("pinned to slow")
