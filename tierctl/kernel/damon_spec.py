"""What a DAMON setup consists of: the operations and scheme actions tierctl uses, monitoring
attributes, one kdamond's spec, a kdamond's state, and the dtype of the regions it reports.

Frozen dataclasses that check themselves on construction (InputError naming ``damon.<field>``);
:class:`tierctl.kernel.damon.DamonSysfs` writes them into the sysfs tree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tierctl.errors import InputError
from tierctl.kernel.roots import LIVE_SYS

DAMON_ADMIN_REL = Path("kernel/mm/damon/admin")  # below the sysfs root
DAMON_ADMIN = LIVE_SYS / DAMON_ADMIN_REL
ULONG_MAX = (1 << 64) - 1
UINT_MAX = (1 << 32) - 1
OPERATIONS = ("vaddr", "fvaddr", "paddr")
SCHEME_ACTIONS = ("stat",)  # the only action a monitoring adapter needs; others move or reclaim memory

REGION_DTYPE = np.dtype(
    [
        ("start", np.uint64),  # address (virtual for vaddr, physical for paddr), inclusive
        ("end", np.uint64),  # exclusive
        ("nr_accesses", np.uint32),  # sampling intervals (of one aggregation) that saw an access
        ("age", np.uint32),  # aggregation intervals the region kept its access level
    ]
)

STAT_FILES = ("nr_tried", "sz_tried", "nr_applied", "sz_applied", "qt_exceeds")


@dataclass(frozen=True)
class MonitoringAttrs:
    """``monitoring_attrs``: intervals in microseconds and the bounds of the region count."""

    sample_us: int = 5_000
    aggr_us: int = 100_000
    update_us: int = 1_000_000  # vaddr: how often the target's mappings are re-read (kernel default 60 s)
    min_nr_regions: int = 10
    max_nr_regions: int = 1_000

    def __post_init__(self) -> None:
        for name in ("sample_us", "aggr_us", "update_us", "min_nr_regions", "max_nr_regions"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise InputError(f"must be an integer > 0, got {v!r}", f"damon.{name}")
        if self.aggr_us < self.sample_us:
            raise InputError(f"{self.aggr_us} < sample_us {self.sample_us}", "damon.aggr_us")
        if self.min_nr_regions < 3:  # the kernel's damon_set_attrs() refuses fewer
            raise InputError(f"must be >= 3, got {self.min_nr_regions}", "damon.min_nr_regions")
        if self.max_nr_regions < self.min_nr_regions:
            raise InputError(f"{self.max_nr_regions} < min_nr_regions", "damon.max_nr_regions")

    @property
    def max_nr_accesses(self) -> int:
        """The largest ``nr_accesses`` a region can report (every sample of an aggregation saw it)."""
        return self.aggr_us // self.sample_us


@dataclass(frozen=True)
class KdamondSpec:
    """One kdamond: one context with one target, and a ``stat`` scheme (or none)."""

    ops: str = "vaddr"
    pid: int | None = None  # vaddr / fvaddr target
    regions: tuple[tuple[int, int], ...] = ()  # initial regions: required for paddr and fvaddr
    attrs: MonitoringAttrs = field(default_factory=MonitoringAttrs)
    scheme: str | None = "stat"  # None: monitoring only (regions() is then unavailable)
    min_accesses: int = 0  # the scheme tries (and regions() returns) only regions with this many

    def __post_init__(self) -> None:
        if self.ops not in OPERATIONS:
            raise InputError(f"unknown operations {self.ops!r}; known: {', '.join(OPERATIONS)}", "damon.ops")
        if self.ops in ("vaddr", "fvaddr"):
            if isinstance(self.pid, bool) or not isinstance(self.pid, int) or self.pid < 1:
                raise InputError(f"{self.ops} needs a target pid >= 1, got {self.pid!r}", "damon.pid")
        elif self.pid is not None:
            raise InputError("paddr monitors physical memory: no pid", "damon.pid")
        if self.ops in ("paddr", "fvaddr") and not self.regions:
            raise InputError(f"{self.ops} needs initial regions (DAMON sets none by itself)", "damon.regions")
        prev_end = 0
        for start, end in self.regions:
            if not 0 <= start < end or start < prev_end:
                raise InputError(
                    f"regions must be ascending, non-empty, disjoint: {self.regions}", "damon.regions"
                )
            prev_end = end
        if isinstance(self.min_accesses, bool) or not isinstance(self.min_accesses, int):
            raise InputError(f"must be an integer, got {self.min_accesses!r}", "damon.min_accesses")
        if not 0 <= self.min_accesses <= self.attrs.max_nr_accesses:
            raise InputError(
                f"must be in 0..{self.attrs.max_nr_accesses}, got {self.min_accesses}", "damon.min_accesses"
            )
        if self.scheme is not None and self.scheme not in SCHEME_ACTIONS:
            raise InputError(f"unsupported scheme action {self.scheme!r} (only 'stat')", "damon.scheme")


@dataclass(frozen=True)
class KdamondState:
    index: int
    state: str  # "on" | "off"
    pid: int | None  # the kdamond thread's pid while on
