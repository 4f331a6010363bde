"""The typed, frozen form of a workload profile, and the problems a profile file can have.

A profile is built only from a file with no problems (``tierctl.profiles.loader``), so every value
here is already checked: amounts are valid bytes-or-share strings/ints, regexes compile, enums are
members.  Amounts stay raw (``"30%"``, ``"2G"``, ``1073741824``) and become pages only at use time
(``Placement.quota``), when the page size and the fast-tier capacity are known.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from tierctl import values
from tierctl.core.policy import Quota, amount_to_pages
from tierctl.errors import InputError
from tierctl.kernel.kubelet import QosClass

Amount = int | float | str  # bytes (int, "512M", "2G") or a share of the fast tier ("30%", 0.3)
Pin = Literal["fast", "slow", "auto"]
Thp = Literal["keep", "split", "ignore"]

PINS: tuple[str, ...] = ("fast", "slow", "auto")
THP_MODES: tuple[str, ...] = ("keep", "split", "ignore")
DEFAULT_HYSTERESIS = 0.25  # the tierctl policy's own default


@dataclass(frozen=True)
class ProfileProblem:
    """One thing wrong with a profile file: where (file, line, key) and what."""

    file: str
    line: int  # 1-based; 0 = the whole file (unreadable, empty directory, a set-level problem)
    key: str  # dotted key path, e.g. "placement.fast_min", "match[1].comm"; "file"/"toml" for those
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.key}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "key": self.key, "message": self.message}


class ProfileError(InputError):
    """Every problem found in a set of profile files; ``str`` is one ``file:line: key: message`` per line."""

    def __init__(self, problems: list[ProfileProblem] | tuple[ProfileProblem, ...]) -> None:
        self.problems: tuple[ProfileProblem, ...] = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True)
class MatchRule:
    """One ``[[match]]`` table: it matches when ALL its (present) fields match."""

    index: int  # position among the profile's [[match]] tables (0-based, as in "match[0]")
    line: int  # line of its [[match]] header in the file
    cgroup: str | None = None  # fnmatch glob on the cgroup path ("/system.slice/redis*.service")
    unit: str | None = None  # fnmatch glob on the systemd unit ("postgresql@*.service")
    comm: str | None = None  # regex source, matched against the whole process name
    user: str | int | None = None  # user name or uid
    namespace: str | None = None  # fnmatch glob on the pod's namespace
    pod_label: tuple[tuple[str, str], ...] | None = None  # (label, fnmatch glob on its value), all must match
    qos: QosClass | None = None  # the pod's QoS class
    comm_re: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    @property
    def has_pod_fields(self) -> bool:
        """A rule with a pod field matches pods only."""
        return self.namespace is not None or self.pod_label is not None or self.qos is not None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "line": self.line}
        for k in ("cgroup", "unit", "comm", "user", "namespace", "qos"):
            if getattr(self, k) is not None:
                out[k] = getattr(self, k)
        if self.pod_label is not None:
            out["pod_label"] = dict(self.pod_label)
        return out

    def describe(self) -> str:
        parts = [
            f"{k}={getattr(self, k)!r}"
            for k in ("cgroup", "unit", "comm", "user", "namespace")
            if getattr(self, k) is not None
        ]
        parts += [f"pod_label.{k}={v!r}" for k, v in self.pod_label or ()]
        if self.qos is not None:
            parts.append(f"qos={self.qos!r}")
        return " and ".join(parts)


def amount_kind(value: Amount) -> Literal["bytes", "share"]:
    """Whether a (valid) amount is bytes or a share of the fast tier (``values.amount`` decides)."""
    return values.amount(value, "amount").kind


@dataclass(frozen=True)
class Placement:
    """How a matched workload's memory is placed.  Defaults = the ``[placement]`` table left out."""

    fast_min: Amount = 0
    fast_max: Amount | None = None  # None: no cap
    priority: int = 0  # between workloads when the fast tier is oversubscribed; higher wins
    pin: Pin = "auto"
    hot_threshold: float | Literal["auto"] = "auto"
    headroom: Amount | Literal["auto"] = "auto"  # free fast-tier room kept for new allocations
    promote_rate_mbps: float | None = None  # None: only the global migration cap applies
    demote_rate_mbps: float | None = None
    hysteresis: float = DEFAULT_HYSTERESIS
    thp: Thp = "keep"
    samplers: tuple[str, ...] | None = None  # None: whatever the sampler chain finds best

    def quota(self, page_size: int, fast_capacity: int) -> Quota:
        """The fast-tier quota in pages for a machine whose fast tier holds ``fast_capacity`` pages.

        When fast_min and fast_max are of different kinds (a share and bytes) their order depends on
        the machine; if the minimum comes out above the cap, the cap wins (min is lowered to max).
        """
        lo = amount_to_pages(
            self.fast_min, page_size=page_size, fast_capacity=fast_capacity, where="fast_min"
        )
        if self.fast_max is None:
            return Quota(lo, None)
        hi = amount_to_pages(
            self.fast_max, page_size=page_size, fast_capacity=fast_capacity, where="fast_max"
        )
        return Quota(min(lo, hi), hi)

    def headroom_pages(self, page_size: int, fast_capacity: int) -> int | None:
        """Headroom in pages, or None for "auto" (the policy's adaptive headroom)."""
        if self.headroom == "auto":
            return None
        return amount_to_pages(
            self.headroom, page_size=page_size, fast_capacity=fast_capacity, where="headroom"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "fast_min": self.fast_min,
            "fast_max": self.fast_max,
            "priority": self.priority,
            "pin": self.pin,
            "hot_threshold": self.hot_threshold,
            "headroom": self.headroom,
            "promote_rate_mbps": self.promote_rate_mbps,
            "demote_rate_mbps": self.demote_rate_mbps,
            "hysteresis": self.hysteresis,
            "thp": self.thp,
            "samplers": None if self.samplers is None else list(self.samplers),
        }


KillPolicy = Literal["never", "cgroup"]
KILL_POLICIES: tuple[str, ...] = ("never", "cgroup")
HOOKS: tuple[str, ...] = ("notify", "prekill", "cleanup")


@dataclass(frozen=True)
class PressurePolicy:
    """What a matched workload accepts when the machine runs short of memory (``[pressure]``).

    The ladder (docs/pressure.md) trims workloads toward their working set, lowest ``priority`` and
    coldest first, never below ``protect``; then notifies them and gives them ``grace_s`` to shed;
    then kills, whole, only those whose ``kill`` is ``"cgroup"``. Hooks are argv lists (absolute
    program path first) run with the facts in their environment."""

    priority: int = 0  # between workloads under pressure: lower is trimmed, notified and killed first
    protect: Amount = 0  # bytes (or a share of the machine's memory) never trimmed away
    trim: bool = True  # may be trimmed toward its working set (memory.reclaim, never memory.high)
    trim_rate_mbps: float = 32.0  # how fast, at most
    notify: bool = True  # told (socket API events, the notify hook) when it should shed memory
    grace_s: float = 10.0  # after a notification, before the ladder may go on to killing it
    kill: KillPolicy = "never"  # "cgroup": the whole cgroup may be killed as a last resort
    hooks: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (event, argv) for notify, prekill, cleanup

    def protect_bytes(self, mem_total: int) -> int:
        """``protect`` in bytes on a machine with ``mem_total`` bytes of memory."""
        a = values.amount(self.protect, "pressure.protect")
        return int(a.value) if a.kind == "bytes" else int(a.value * mem_total)

    def hook(self, event: str) -> tuple[str, ...] | None:
        return next((argv for e, argv in self.hooks if e == event), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "priority": self.priority,
            "protect": self.protect,
            "trim": self.trim,
            "trim_rate_mbps": self.trim_rate_mbps,
            "notify": self.notify,
            "grace_s": self.grace_s,
            "kill": self.kill,
            "hooks": {e: list(argv) for e, argv in self.hooks},
        }


@dataclass(frozen=True)
class Profile:
    """One profile file, checked."""

    name: str
    file: str
    priority: int = 0  # order in which profiles are tried: higher first, then by file name
    description: str = ""
    match: tuple[MatchRule, ...] = ()  # empty: a catch-all (matches every workload)
    placement: Placement = field(default_factory=Placement)
    pressure: PressurePolicy = field(default_factory=PressurePolicy)

    @property
    def is_catch_all(self) -> bool:
        return not self.match

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "file": self.file,
            "priority": self.priority,
            "description": self.description,
            "catch_all": self.is_catch_all,
            "match": [m.to_json() for m in self.match],
            "placement": self.placement.to_json(),
            "pressure": self.pressure.to_json(),
        }
