"""Records read from /proc text files (Meminfo, Vma, NumaMap, Mount), the vmstat counters tierctl
watches, and the ``Pid`` type with its validation.

Plain frozen dataclasses: :mod:`tierctl.kernel.proc_parsers` builds them from file text,
:class:`tierctl.kernel.procfs.ProcFS` reads the files. Field meanings: Documentation/filesystems/proc.rst.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tierctl.errors import InputError

Pid = int | str
"""A pid: an int >= 1, or "self" / "thread-self"."""


def pid_name(pid: Pid) -> str:
    """The /proc directory name of ``pid``; InputError (where ``pid``) for anything else."""
    if isinstance(pid, bool):
        raise InputError(f"not a pid: {pid!r}", "pid")
    if isinstance(pid, int):
        if pid < 1:
            raise InputError(f"not a pid: {pid}", "pid")
        return str(pid)
    if pid in ("self", "thread-self"):
        return pid
    raise InputError(f"not a pid: {pid!r} (an int >= 1 or 'self')", "pid")


TIERING_COUNTERS: tuple[str, ...] = (
    "pgpromote_success",
    "pgpromote_candidate",
    "pgpromote_candidate_nrl",
    "pgdemote_kswapd",
    "pgdemote_direct",
    "pgdemote_khugepaged",
    "pgdemote_proactive",
    "numa_pte_updates",
    "numa_huge_pte_updates",
    "numa_hint_faults",
    "numa_hint_faults_local",
    "numa_pages_migrated",
    "pgmigrate_success",
    "pgmigrate_fail",
    "thp_migration_success",
    "thp_migration_fail",
    "thp_migration_split",
)
"""/proc/vmstat counters about promotion, demotion, NUMA hint faults and migration (all in pages or
events since boot). Which exist depends on the kernel: 6.12 has all but ``pgpromote_candidate_nrl``
and ``pgdemote_proactive`` (both newer)."""


@dataclass(frozen=True)
class Meminfo:
    """System memory from /proc/meminfo, in bytes. ``fields`` holds every line: ``kB`` values
    converted to bytes, unit-less ones (HugePages_Total, ...) as read."""

    total: int  # MemTotal
    available: int  # MemAvailable: an estimate of what can be allocated without swapping
    swap_total: int
    swap_free: int
    fields: dict[str, int]

    @property
    def used(self) -> int:
        """MemTotal - MemAvailable: the figure a "keep usage below N %" target compares."""
        return self.total - self.available


@dataclass(frozen=True)
class Vma:
    """One line of /proc/PID/maps: [start, end) with permissions and backing."""

    start: int
    end: int
    perms: str  # e.g. "rw-p": read, write, execute, p(rivate) or s(hared)
    offset: int
    dev: str  # "major:minor" in hex
    inode: int
    path: str  # file path, "[heap]", "[stack]", "[vdso]", ... or "" for anonymous memory

    @property
    def size(self) -> int:
        return self.end - self.start

    @property
    def private(self) -> bool:
        return self.perms[3] == "p"

    @property
    def anonymous(self) -> bool:
        """No file behind it (heap, stack and nameless mappings)."""
        return self.inode == 0

    def pages(self, page_size: int = 4096) -> int:
        """Number of pages of ``page_size`` bytes the range spans."""
        if page_size <= 0:
            raise InputError(f"must be > 0, got {page_size}", "page_size")
        return self.size // page_size


@dataclass(frozen=True)
class NumaMap:
    """One line of /proc/PID/numa_maps.

    ``pages_per_node`` maps node -> resident pages in units of ``kernelpagesize_kb`` (4 for normal
    and transparent huge pages, which numa_maps counts as base pages; 2048 or 1048576 for hugetlb).
    ``kernelpagesize_kb`` is None when the mapping has no resident page: the kernel prints no
    counts for it then. Counters absent from the line are 0, except ``active``, which the kernel
    omits when every page is active: it then equals ``pages``.
    """

    start: int
    policy: str  # "default", "bind:1", "interleave:0-1", "prefer (many):0-1", "bind=static:1", ...
    pages_per_node: dict[int, int]
    kernelpagesize_kb: int | None
    anon: int = 0
    dirty: int = 0
    mapped: int = 0
    mapmax: int = 0
    swapcache: int = 0
    active: int = 0
    writeback: int = 0
    file: str | None = None
    tags: tuple[str, ...] = ()  # bare words: "heap", "stack", "huge" (hugetlb)
    other: tuple[tuple[str, int], ...] = ()  # key=value counters this module does not know

    @property
    def pages(self) -> int:
        return sum(self.pages_per_node.values())

    def bytes_per_node(self) -> dict[int, int]:
        """Resident bytes per node (``pages_per_node`` times the mapping's page size)."""
        unit = (self.kernelpagesize_kb or 0) * 1024
        return {n: p * unit for n, p in self.pages_per_node.items()}


@dataclass(frozen=True)
class Mount:
    """One line of /proc/PID/mountinfo: where, and which filesystem type."""

    point: Path
    fstype: str
