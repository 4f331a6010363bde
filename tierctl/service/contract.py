"""What the daemon's Service offers to its front ends (socket API, CLI, TUI, metrics).

Every method returns plain JSON-ready data (dicts, lists, str, int, float, bool,
None) or raises a TierctlError subclass (InputError for bad arguments — unknown
cgroup, bad tier — PermissionDeniedError, UnavailableError). Mutations are only
called for authorised peers; the Service itself does not check credentials.

**Outcomes** (``service.outcomes``): every pin, unpin, quota and migrate request starts an outcome for
its cgroup (the newest request on a cgroup replaces the older one; a migration pass over every cgroup is
kept under ``"*"``), judged after each cycle from real figures — the cgroup's pages per tier, the pages
the mover moved or was refused for it, the fast tier's free room, the budget and rate limits::

    OUTCOME = {
        "action": "pin" | "unpin" | "quota" | "migrate",
        "target": str,            # "fast", "slow", "auto", "fast_min=10%, fast_max=20%", "none"
                                  # (quota dropped), a cgroup path or "all" (migrate)
        "state": "accepted" | "in_progress" | "done" | "impossible" | "stuck",
        "waiting_for": str | None,  # in_progress/stuck/accepted: what holds it up, e.g. "room in the
                                  # fast tier (full: ...)", "the migration rate limit (N pages/cycle)",
                                  # "the migration budget (...)", "pages the kernel refused (...)",
                                  # "a pin that wins over the quota (...)", "placement is paused ..."
        "moved_pages": int,       # pages of the cgroup moved (either way) since the request
        "since": float,           # wall time of the request
        "updated": float,         # wall time of the last judgement
        "message": str,           # one human line, e.g. "pin fast: done, 1,204 pages moved since the
                                  # request; 100% of 24,576 pages in fast"
    }

- ``accepted``: stored, no cycle has run since; ``in_progress``: a cycle ran, the goal is not met
  yet; ``done``: met (a pin: no page left in the other tier; a quota: fast pages within [min, max]; an
  unpin or a dropped quota: a decision ran without it; migrate: the pass ran and moved what it planned
  for the cgroup — "nothing needed moving" when it planned nothing — or, for a pinned cgroup, the pin
  is met); ``stuck``: 5 cycles without progress while something still blocks it (``waiting_for`` says
  what; back to in_progress when pages move again); ``impossible``: the cgroup is gone, its tier no
  longer exists, or the daemon runs dry (moves planned, none made). Final: done, impossible.
- A quota set while the cgroup is pinned is **accepted and inactive**: stored (it applies once the
  pin is dropped), its outcome stays ``in_progress`` with ``waiting_for`` "a pin that wins over the
  quota (pinned to fast; unpin to apply it)" — never stuck, never done while the pin holds.
- Refused at request time (InputError, nothing stored): a pin to ``slow`` or a ``fast_max`` on a
  machine without a slow tier (the message names the nodes present, ``where`` = "tier"/"fast_max").
- Events: the mutation's own event (``pin``, ``quota``, ``migrate``; ``unpin`` is a ``pin`` event with
  tier ``auto``) carries ``"outcome": OUTCOME`` (state accepted); every later change of state is one
  ``{"kind": "outcome", "cgroup", "action", "target", "state", "waiting_for", "moved_pages",
  "message"}`` event (not one per cycle; figures that change within a state emit nothing).
"""

from __future__ import annotations

from typing import Any, Protocol

API_VERSION = 1


class ServiceContract(Protocol):
    # ---- reads (tierctl group) ---------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """{"version", "state": "running"|"paused"|"dry-run", "cycle", "uptime_s", "samplers": [...],
        "tracked_pages", "last_cycle_s", "last_cycle_age_s" (None before the first cycle; paused
        cycles count), "moved": {...}, "profiles": [...], "overrides": {...}, "pods": {...},
        "outcomes": {cgroup or "*": OUTCOME}}"""
        ...

    def topology(self) -> dict[str, Any]: ...

    def cgroups(self) -> list[dict[str, Any]]:
        """One per managed cgroup: {"path", "profile", "override", "bytes_per_node": {node: bytes},
        "fast_bytes", "slow_bytes", "hot_bytes", "est_fast_hit_ratio", "promoted_pages",
        "demoted_pages" (counters since the daemon started), "outcome": None | OUTCOME (the newest
        request's on this cgroup)}, and "pod" when the cgroup is a
        Kubernetes pod's (absent otherwise): {"namespace": str|None, "name": str|None, "uid": str,
        "qos": "guaranteed"|"burstable"|"besteffort"|None, "container": str|None}; namespace and name
        are None until the API server has named the pod (docs/pods.md), container is None for the
        pod's own cgroup."""
        ...

    def cgroup_detail(self, path: str) -> dict[str, Any]:
        """{"path", "profile", "heat_histogram": {"fast": [...], "slow": [...]},
        "processes": [{"pid", "comm", "pages_per_node"}], "recent_migrations": [...],
        "outcome": None | OUTCOME, "quota": {"fast_min": bytes|None, "fast_max": bytes|None,
        "source": "profile"|"override"|None, "active": bool, "why_inactive": str|None,
        "fast_min_amount": str|int|None, "fast_max_amount": str|int|None}} — the quota on this machine
        (a profile's too), the amounts as written ("40%", "4G"); source None: no quota (inactive, no
        reason); a pin makes it inactive ("pinned to fast: a pin wins over a quota ...")."""
        ...

    def pressure_status(self) -> dict[str, Any]:
        """{"mode", "active", "target_ratio", "machine": {"total", "used", "available"}, "above_since",
        "notified", "working_sets": {path: {"estimate", "ended"}}, "last_actions"} (docs/pressure.md)"""
        ...

    def events_since(self, since: int) -> tuple[int, list[dict[str, Any]]]:
        """Events after sequence number ``since`` (0 = all kept) and the newest sequence number."""
        ...

    # ---- mutations (root or the configured group) ---------------------------------------------
    # pin, unpin, set_quota: the overrides as stored ({"version", "pins", "quotas", "paused"}) plus
    # "ok": True and "outcome": OUTCOME (state "accepted")
    def pin(self, path: str, tier: str) -> dict[str, Any]: ...  # tier: "fast" | "slow" | "auto"

    def unpin(self, path: str) -> dict[str, Any]: ...

    def set_quota(
        self, path: str, fast_min: str | int | None, fast_max: str | int | None
    ) -> dict[str, Any]: ...

    def pause(self) -> dict[str, Any]: ...

    def resume(self) -> dict[str, Any]: ...

    def migrate_now(self, path: str | None) -> dict[str, Any]:
        """Queue a placement pass for the next cycle (its policy decides even without news):
        {"ok": True, "outcome": OUTCOME (accepted), "queued": path or "all", "cycle", "moved" (as
        before the pass)}; the outcome reports the pages that cycle moved for the cgroup."""
        ...

    def read_profiles(self) -> Any:
        """Read and check the profile set without touching the service (callable without its lock);
        raises a TierctlError for a set that cannot be used."""
        ...

    def reload(self, prepared: Any = None, *, trigger: str = "api") -> dict[str, Any]:
        """Install ``prepared`` (what ``read_profiles`` returned, or the TierctlError it raised), or
        read the set now when None; all or nothing. ``trigger`` (signal, watch, api) is counted and
        named in the event."""
        ...
