"""What the daemon's Service offers to its front ends (socket API, CLI, TUI, metrics).

Every method returns plain JSON-ready data (dicts, lists, str, int, float, bool,
None) or raises a TierctlError subclass (InputError for bad arguments — unknown
cgroup, bad tier — PermissionDeniedError, UnavailableError). Mutations are only
called for authorised peers; the Service itself does not check credentials.
"""

from __future__ import annotations

from typing import Any, Protocol

API_VERSION = 1


class ServiceContract(Protocol):
    # ---- reads (tierctl group) ---------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """{"version", "state": "running"|"paused"|"dry-run", "cycle", "uptime_s", "samplers": [...],
        "tracked_pages", "last_cycle_s", "last_cycle_age_s" (None before the first cycle; paused
        cycles count), "moved": {...}, "profiles": [...], "overrides": {...}, "pods": {...}}"""
        ...

    def topology(self) -> dict[str, Any]: ...

    def cgroups(self) -> list[dict[str, Any]]:
        """One per managed cgroup: {"path", "profile", "override", "bytes_per_node": {node: bytes},
        "fast_bytes", "slow_bytes", "hot_bytes", "est_fast_hit_ratio", "promoted_pages",
        "demoted_pages" (counters since the daemon started)}, and "pod" when the cgroup is a
        Kubernetes pod's (absent otherwise): {"namespace": str|None, "name": str|None, "uid": str,
        "qos": "guaranteed"|"burstable"|"besteffort"|None, "container": str|None}; namespace and name
        are None until the API server has named the pod (docs/pods.md), container is None for the
        pod's own cgroup."""
        ...

    def cgroup_detail(self, path: str) -> dict[str, Any]:
        """{"path", "profile", "heat_histogram": {"fast": [...], "slow": [...]},
        "processes": [{"pid", "comm", "pages_per_node"}], "recent_migrations": [...]}"""
        ...

    def pressure_status(self) -> dict[str, Any]:
        """{"mode", "active", "target_ratio", "machine": {"total", "used", "available"}, "above_since",
        "notified", "working_sets": {path: {"estimate", "ended"}}, "last_actions"} (docs/pressure.md)"""
        ...

    def events_since(self, since: int) -> tuple[int, list[dict[str, Any]]]:
        """Events after sequence number ``since`` (0 = all kept) and the newest sequence number."""
        ...

    # ---- mutations (root or the configured group) ---------------------------------------------
    def pin(self, path: str, tier: str) -> dict[str, Any]: ...  # tier: "fast" | "slow" | "auto"

    def unpin(self, path: str) -> dict[str, Any]: ...

    def set_quota(
        self, path: str, fast_min: str | int | None, fast_max: str | int | None
    ) -> dict[str, Any]: ...

    def pause(self) -> dict[str, Any]: ...

    def resume(self) -> dict[str, Any]: ...

    def migrate_now(self, path: str | None) -> dict[str, Any]: ...

    def read_profiles(self) -> Any:
        """Read and check the profile set without touching the service (callable without its lock);
        raises a TierctlError for a set that cannot be used."""
        ...

    def reload(self, prepared: Any = None) -> dict[str, Any]:
        """Install ``prepared`` (what ``read_profiles`` returned, or the TierctlError it raised), or
        read the set now when None; all or nothing."""
        ...
