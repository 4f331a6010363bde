"""Readers for /proc: a process's mappings, NUMA placement, page table entries, page flags, vmstat.

``ProcFS(root)`` reads below ``root`` (``/proc`` by default), so tests point it at a captured or
synthetic tree. Every method reads the kernel's file afresh; nothing is cached.

Errors: a vanished pid is :class:`NoSuchProcessError`; EACCES/EPERM is
:class:`PermissionDeniedError` naming the privilege needed; a file the kernel does not provide
(config option off) is :class:`UnavailableError`; a line that does not parse is
:class:`KernelError` with ``where`` = ``file:line``; a bad argument is :class:`InputError`.
Field meanings: Documentation/filesystems/proc.rst and Documentation/admin-guide/mm/pagemap.rst.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import mmap
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tierctl.errors import (
    InputError,
    KernelError,
    NoSuchProcessError,
    PermissionDeniedError,
    TierctlError,
    UnavailableError,
)
from tierctl.kernel.roots import LIVE_PROC

Pid = int | str
"""A pid: an int >= 1, or "self" / "thread-self"."""

# --- /proc/PID/pagemap entry bits (pagemap.rst) ---------------------------------------------
PM_PFN_MASK = (1 << 55) - 1  # bits 0-54: PFN if present, swap type (0-4) + offset (5-54) if swapped
PM_SOFT_DIRTY = 55
PM_EXCLUSIVE = 56  # page mapped exactly once (since 4.2)
PM_UFFD_WP = 57
PM_FILE_OR_SHARED = 61  # file page or shared anonymous page (since 3.5)
PM_SWAPPED = 62
PM_PRESENT = 63

# --- /proc/kpageflags bits (include/uapi/linux/kernel-page-flags.h) -------------------------
KPF_LOCKED = 0
KPF_REFERENCED = 2
KPF_DIRTY = 4
KPF_LRU = 5
KPF_ACTIVE = 6
KPF_SLAB = 7
KPF_BUDDY = 10
KPF_MMAP = 11
KPF_ANON = 12
KPF_SWAPBACKED = 14
KPF_COMPOUND_HEAD = 15
KPF_COMPOUND_TAIL = 16
KPF_HUGE = 17  # hugetlbfs page
KPF_UNEVICTABLE = 18
KPF_NOPAGE = 20  # no page frame at this pfn
KPF_KSM = 21
KPF_THP = 22  # transparent huge page (head and tails)
KPF_ZERO_PAGE = 24
KPF_IDLE = 25

KPAGEFLAGS_MAX_RUN = 1 << 16
# frames this close are read in one pread with what lies between (8 bytes a frame): scattered frames
# cost one syscall per span instead of one each (a syscall costs far more than 4 KiB of reading)
KPAGEFLAGS_GAP = 512
"""Most entries read by one pread of /proc/kpageflags (512 KiB)."""

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

_MAPS_RE = re.compile(
    r"^(?P<start>[0-9a-f]+)-(?P<end>[0-9a-f]+) (?P<perms>[r-][w-][x-][ps]) (?P<offset>[0-9a-f]+) "
    r"(?P<dev>[0-9a-f]+:[0-9a-f]+) (?P<inode>\d+)(?: +(?P<path>.*))?$"
)
# policy names from mm/mempolicy.c policy_modes[]: two contain a space
_NUMA_MAPS_RE = re.compile(
    r"^(?P<start>[0-9a-f]+) "
    r"(?P<policy>(?:weighted interleave|prefer \(many\)|[a-z]+)(?:=[a-z|]+)?(?::[0-9,-]*)?)"
    r"(?: (?P<rest>.*))?$"
)
_NUMA_COUNTERS = ("anon", "dirty", "mapped", "mapmax", "swapcache", "active", "writeback")


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


# --- vectorised pagemap decoders -------------------------------------------------------------
def _bit(entries: np.ndarray, bit: int) -> np.ndarray:
    return ((np.asarray(entries, dtype=np.uint64) >> np.uint64(bit)) & np.uint64(1)) == 1


def present(entries: np.ndarray) -> np.ndarray:
    """Bool per entry: the page is in RAM (bit 63)."""
    return _bit(entries, PM_PRESENT)


def swapped(entries: np.ndarray) -> np.ndarray:
    """Bool per entry: the page is in swap (bit 62)."""
    return _bit(entries, PM_SWAPPED)


def file_or_shared(entries: np.ndarray) -> np.ndarray:
    """Bool per entry: a file page or a shared anonymous page (bit 61)."""
    return _bit(entries, PM_FILE_OR_SHARED)


def exclusive(entries: np.ndarray) -> np.ndarray:
    """Bool per entry: the page is mapped only here (bit 56)."""
    return _bit(entries, PM_EXCLUSIVE)


def soft_dirty(entries: np.ndarray) -> np.ndarray:
    """Bool per entry: written since soft-dirty bits were last cleared (bit 55)."""
    return _bit(entries, PM_SOFT_DIRTY)


def pfn(entries: np.ndarray) -> np.ndarray:
    """Page frame number (bits 0-54) of present pages, 0 elsewhere.

    The kernel reports 0 for every page to readers without CAP_SYS_ADMIN.
    """
    e = np.asarray(entries, dtype=np.uint64)
    return np.where(present(e), e & np.uint64(PM_PFN_MASK), np.uint64(0))


def swap_type(entries: np.ndarray) -> np.ndarray:
    """Swap device index (bits 0-4) of swapped pages, 0 elsewhere."""
    e = np.asarray(entries, dtype=np.uint64)
    return np.where(swapped(e), e & np.uint64(0x1F), np.uint64(0))


def swap_offset(entries: np.ndarray) -> np.ndarray:
    """Offset in the swap device (bits 5-54) of swapped pages, 0 elsewhere."""
    e = np.asarray(entries, dtype=np.uint64)
    return np.where(swapped(e), (e & np.uint64(PM_PFN_MASK)) >> np.uint64(5), np.uint64(0))


def kpf(flags: np.ndarray, bit: int) -> np.ndarray:
    """Bool per entry of /proc/kpageflags words: ``bit`` (a ``KPF_*`` constant) is set."""
    return _bit(flags, bit)


# --- the reader ------------------------------------------------------------------------------
_NEEDS = {
    "maps": "ptrace read access to the process (same user, or root / CAP_SYS_PTRACE)",
    "numa_maps": "ptrace read access to the process (same user, or root / CAP_SYS_PTRACE)",
    "pagemap": "ptrace read access to the process (same user, or root / CAP_SYS_PTRACE)",
    "kpageflags": "root (CAP_SYS_ADMIN and read access to the 0400 file)",
}
_CONFIG = {
    "numa_maps": "CONFIG_NUMA",
    "pagemap": "CONFIG_PROC_PAGE_MONITOR",
    "kpageflags": "CONFIG_PROC_PAGE_MONITOR",
    "pressure": "CONFIG_PSI",
}


# PAGEMAP_SCAN (ioctl on /proc/PID/pagemap, Linux 6.7+): categories from linux/fs.h
PAGE_IS_PRESENT, PAGE_IS_HUGE = 1 << 3, 1 << 6
SCAN_REGIONS = 256  # regions returned per call (the walk resumes at walk_end)
_NO_SCAN = (errno.ENOTTY, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOSYS)


class _PmScanArg(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_uint64)
        for name in (
            "size", "flags", "start", "end", "walk_end", "vec", "vec_len", "max_pages",
            "category_inverted", "category_mask", "category_anyof_mask", "return_mask",
        )
    ]  # fmt: skip


PAGEMAP_SCAN = (3 << 30) | (ctypes.sizeof(_PmScanArg) << 16) | (ord("f") << 8) | 16  # _IOWR('f', 16, ...)


class PagemapScanUnsupportedError(UnavailableError):
    """This kernel (or this file: a captured tree) has no PAGEMAP_SCAN ioctl."""


@dataclass(frozen=True)
class Mount:
    """One line of /proc/PID/mountinfo: where, and which filesystem type."""

    point: Path
    fstype: str


def _unescape(field: str) -> str:
    """mountinfo's octal escapes of space, tab, newline and backslash."""
    for code, ch in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, ch)
    return field


class ProcFS:
    """Reads process and memory-management files below ``root`` (``/proc``)."""

    def __init__(self, root: Path = LIVE_PROC, *, page_size: int | None = None) -> None:
        self.root = Path(root)
        self.page_size = page_size if page_size is not None else os.sysconf("SC_PAGE_SIZE")
        if self.page_size <= 0 or self.page_size & (self.page_size - 1):
            raise InputError(f"must be a power of two, got {self.page_size}", "page_size")

    # -- per-process text files ---------------------------------------------------------------
    def maps(self, pid: Pid) -> list[Vma]:
        """The process's mappings from /proc/PID/maps (empty for kernel threads and zombies)."""
        path = self._pid_file(pid, "maps")
        out = []
        for no, line in _lines(self._read(path, pid)):
            m = _MAPS_RE.match(line)
            if m is None:
                raise KernelError(f"not a maps line: {line!r}", f"{path}:{no}")
            out.append(
                Vma(
                    start=int(m["start"], 16),
                    end=int(m["end"], 16),
                    perms=m["perms"],
                    offset=int(m["offset"], 16),
                    dev=m["dev"],
                    inode=int(m["inode"]),
                    path=m["path"] or "",
                )
            )
        return out

    def numa_maps(self, pid: Pid) -> list[NumaMap]:
        """Policy and per-node resident pages of each mapping, from /proc/PID/numa_maps.

        Reading it walks the process's page tables (costly for large processes). Its lines are the
        mappings of maps() except the [vsyscall] gate area.
        """
        path = self._pid_file(pid, "numa_maps")
        return [_numa_line(line, f"{path}:{no}") for no, line in _lines(self._read(path, pid))]

    def comm(self, pid: Pid) -> str:
        """The process's command name (at most 15 characters), from /proc/PID/comm."""
        path = self._pid_file(pid, "comm")
        text = self._read(path, pid).rstrip("\n")
        if not text:
            raise KernelError("empty file", str(path))
        return text

    def uid(self, pid: Pid) -> int:
        """The process's real uid (first field of ``Uid:`` in /proc/PID/status)."""
        path = self._pid_file(pid, "status")
        for no, line in _lines(self._read(path, pid)):
            if line.startswith("Uid:"):
                fields = line.split()
                if len(fields) < 2 or not fields[1].isdigit():
                    raise KernelError(f"not a Uid line: {line!r}", f"{path}:{no}")
                return int(fields[1])
        raise KernelError("no Uid: line", str(path))

    def cgroup_path(self, pid: Pid) -> str:
        """The cgroup that accounts the process's memory, relative to its hierarchy ("" = root).

        From /proc/PID/cgroup: the cgroup v1 ``memory`` controller's line when there is one (hybrid
        and legacy hosts), else the cgroup v2 ``0::/path`` line. Pair it with CgroupFS, whose
        paths use the same convention.
        """
        memory, v2 = self._cgroups(pid)
        if memory is not None:
            return memory
        if v2 is None:
            raise UnavailableError(
                "neither a memory controller nor a cgroup v2 line", str(self._pid_file(pid, "cgroup"))
            )
        return v2

    def cgroup_v2_path(self, pid: Pid) -> str | None:
        """The process's cgroup in the v2 hierarchy (the ``0::/path`` line of /proc/PID/cgroup, relative
        to the v2 mount, "" = root), also on hybrid hosts; None when the process has no v2 line."""
        return self._cgroups(pid)[1]

    def _cgroups(self, pid: Pid) -> tuple[str | None, str | None]:
        """(memory controller's cgroup, v2 cgroup) from /proc/PID/cgroup, each None when absent."""
        path = self._pid_file(pid, "cgroup")
        memory: str | None = None
        v2: str | None = None
        for no, line in _lines(self._read(path, pid)):
            parts = line.split(":", 2)
            if len(parts) != 3 or not parts[0].isdigit() or not parts[2].startswith("/"):
                raise KernelError(f"not a cgroup line: {line!r}", f"{path}:{no}")
            hier, controllers, cg = parts
            if memory is None and "memory" in controllers.split(","):
                memory = cg.strip().strip("/")
            if hier == "0" and controllers == "":
                v2 = cg.strip().strip("/")
        return memory, v2

    def groups(self, pid: Pid) -> frozenset[int]:
        """The process's supplementary groups (``Groups:`` of /proc/PID/status)."""
        path = self._pid_file(pid, "status")
        for _no, line in _lines(self._read(path, pid)):
            if line.startswith("Groups:"):
                return frozenset(int(g) for g in line.split()[1:] if g.isdigit())
        return frozenset()

    def cpu_ticks(self, pid: Pid) -> int:
        """User + system CPU time of the process in clock ticks (utime + stime of /proc/PID/stat)."""
        path = self._pid_file(pid, "stat")
        text = self._read(path, pid)
        try:
            fields = text.rsplit(")", 1)[1].split()  # the comm in parentheses may hold spaces
            return int(fields[11]) + int(fields[12])
        except (IndexError, ValueError):
            raise KernelError(f"not a stat line: {text[:80]!r}", f"{path}:1") from None

    def clear_refs(self, pid: Pid, value: int) -> None:
        """Write ``value`` to /proc/PID/clear_refs (1: accessed bits, 4: soft-dirty bits; proc.rst)."""
        path = self._pid_file(pid, "clear_refs")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, f"{int(value)}\n".encode())
            finally:
                os.close(fd)
        except OSError as e:
            if e.errno in (errno.EACCES, errno.EPERM):
                raise PermissionDeniedError(
                    "permission denied: clear_refs needs the process's owner or root", str(path)
                ) from None
            if e.errno in (errno.ENOENT, errno.ESRCH) and not self.exists(pid):
                raise NoSuchProcessError(f"no process {pid}", str(path.parent)) from None
            raise KernelError(f"cannot write {value}: {e.strerror}", str(path)) from None

    def has_clear_refs(self) -> bool:
        """Whether the kernel provides /proc/PID/clear_refs (CONFIG_PROC_PAGE_MONITOR), checked on self."""
        return (self.root / "self" / "clear_refs").exists()

    def filesystems(self) -> frozenset[str] | None:
        """Filesystem types the kernel knows (/proc/filesystems); None when that file cannot be read."""
        try:
            text = self._read(self.root / "filesystems", None)
        except TierctlError:
            return None
        return frozenset(line.split()[-1] for _no, line in _lines(text))

    def mounts(self, pid: Pid = "self") -> list[Mount]:
        """The process's mount points (/proc/PID/mountinfo), in mount order; [] when unreadable."""
        path = self._pid_file(pid, "mountinfo")
        try:
            text = self._read(path, pid)
        except TierctlError:
            return []
        out = []
        for _no, line in _lines(text):
            left, _, right = line.partition(" - ")
            fields = left.split()
            if len(fields) > 4 and right:
                out.append(Mount(Path(_unescape(fields[4])), right.split(" ", 1)[0]))
        return out

    def status_field(self, pid: Pid, field: str) -> str | None:
        """The value of one ``Field:`` line of /proc/PID/status, stripped; None when absent or unreadable."""
        try:
            text = self._read(self._pid_file(pid, "status"), pid)
        except TierctlError:
            return None
        for line in text.splitlines():
            if line.startswith(field + ":"):
                return line[len(field) + 1 :].strip()
        return None

    def fdinfo(self, fd: int) -> str | None:
        """This process's /proc/self/fdinfo/FD; None when it cannot be read."""
        try:
            return self._read(self.root / "self" / "fdinfo" / str(int(fd)), None)
        except TierctlError:
            return None

    def exists(self, pid: Pid) -> bool:
        """Whether /proc/PID exists now (it may vanish right after)."""
        return (self.root / _pid_name(pid)).is_dir()

    def rss_pages(self, pid: Pid) -> int:
        """Resident pages of the process (/proc/PID/statm, second field)."""
        path = self._pid_file(pid, "statm")
        text = self._read(path, pid)
        try:
            return int(text.split()[1])
        except (IndexError, ValueError):
            raise KernelError(f"unexpected content {text[:40]!r}", str(path)) from None

    def pids(self) -> list[int]:
        """Every pid with a /proc/PID directory, ascending."""
        try:
            names = os.listdir(self.root)
        except OSError as e:
            raise UnavailableError(f"cannot list: {e.strerror}", str(self.root)) from None
        return sorted(int(n) for n in names if n.isdigit())

    # -- binary files --------------------------------------------------------------------------
    def reports_soft_dirty(self) -> bool | None:
        """Whether this kernel reports soft-dirty bits (CONFIG_MEM_SOFT_DIRTY): a fresh private page
        of this process, once written, must show bit 55 in its pagemap entry. None below a root that
        is not the live /proc (a captured tree has no ``self`` to probe)."""
        if self.root != LIVE_PROC:
            return None
        m = mmap.mmap(-1, mmap.PAGESIZE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        try:
            m[0] = 1
            buf = ctypes.c_char.from_buffer(m)
            addr = ctypes.addressof(buf)
            del buf  # the buffer export must end before close()
            return bool(soft_dirty(self.pagemap("self", addr, 1))[0])
        except TierctlError:
            return False
        finally:
            m.close()

    def pagemap_scan(
        self, pid: Pid, ranges: list[tuple[int, int]], *, huge_only: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """Start and end addresses of the present page ranges (with ``huge_only``, PMD-mapped huge
        ranges) within the ``[start, end)`` address ``ranges``, by the PAGEMAP_SCAN ioctl: a few
        24-byte records per span instead of 8 bytes per page. Raises PagemapScanUnsupportedError
        where the kernel has no such ioctl."""
        path = self._pid_file(pid, "pagemap")
        fd = self._open(path, pid)
        vec = np.zeros((SCAN_REGIONS, 3), dtype=np.uint64)
        mask = PAGE_IS_PRESENT | (PAGE_IS_HUGE if huge_only else 0)
        arg = _PmScanArg(
            size=ctypes.sizeof(_PmScanArg),
            vec=vec.ctypes.data,
            vec_len=SCAN_REGIONS,
            category_mask=mask,
            return_mask=PAGE_IS_HUGE if huge_only else PAGE_IS_PRESENT,
        )
        found: list[np.ndarray] = []
        try:
            for start, end in ranges:
                arg.start, arg.end = start, end
                while True:
                    got = fcntl.ioctl(fd, PAGEMAP_SCAN, arg)  # type: ignore[call-overload]
                    if got > 0:
                        found.append(vec[:got, :2].copy())
                    if arg.walk_end >= end or got < SCAN_REGIONS:
                        break
                    arg.start = arg.walk_end
        except OSError as e:
            if e.errno in _NO_SCAN:
                raise PagemapScanUnsupportedError(
                    f"no PAGEMAP_SCAN ({os.strerror(e.errno)})", str(path)
                ) from None
            raise self._error(e, path, pid) from None
        finally:
            os.close(fd)
        if not found:
            empty = np.zeros(0, dtype=np.uint64)
            return empty, empty
        regions = np.concatenate(found)
        return regions[:, 0], regions[:, 1]

    def pagemap(self, pid: Pid, start_addr: int, n_pages: int) -> np.ndarray:
        """The page-table entries of ``n_pages`` pages from ``start_addr``, one uint64 per page.

        One pread of /proc/PID/pagemap (8 bytes per page). Decode with present(), swapped(), pfn(),
        exclusive(), soft_dirty(), file_or_shared(). Unmapped pages read as 0. PFNs are 0 unless
        the reader has CAP_SYS_ADMIN.
        """
        if isinstance(start_addr, bool) or not isinstance(start_addr, int) or start_addr < 0:
            raise InputError(f"must be an address >= 0, got {start_addr!r}", "start_addr")
        if start_addr % self.page_size:
            raise InputError(f"{start_addr:#x} is not aligned to {self.page_size} bytes", "start_addr")
        if isinstance(n_pages, bool) or not isinstance(n_pages, int) or n_pages < 0:
            raise InputError(f"must be >= 0, got {n_pages!r}", "n_pages")
        path = self._pid_file(pid, "pagemap")
        fd = self._open(path, pid)
        try:
            want = 8 * n_pages
            data = self._pread(fd, want, (start_addr // self.page_size) * 8, path, pid)
        finally:
            os.close(fd)
        if len(data) != want:
            end = start_addr + n_pages * self.page_size
            raise InputError(f"range {start_addr:#x}-{end:#x} extends beyond the address space", str(path))
        return np.frombuffer(data, dtype="<u8").astype(np.uint64)

    def pagemap_ranges(self, pid: Pid, ranges: list[tuple[int, int]]) -> list[np.ndarray]:
        """``pagemap`` for several (start_addr, n_pages) ranges of one process: one open, one pread
        per range (page-aligned starts; ranges beyond the address space read short, as zeros)."""
        path = self._pid_file(pid, "pagemap")
        fd = self._open(path, pid)
        out = []
        try:
            for start, n in ranges:
                data = self._pread(fd, 8 * n, (start // self.page_size) * 8, path, pid)
                arr = np.zeros(n, dtype=np.uint64)
                got = len(data) // 8
                arr[:got] = np.frombuffer(data, dtype="<u8", count=got)
                out.append(arr)
        finally:
            os.close(fd)
        return out

    def kpageflags(self, pfns: np.ndarray) -> np.ndarray:
        """Page flags (``KPF_*`` bits) of each page frame in ``pfns``, same order, uint64.

        Reads /proc/kpageflags with one pread per span of frames less than KPAGEFLAGS_GAP apart
        (at most KPAGEFLAGS_MAX_RUN frames each). Needs root. Frames come from pfn(pagemap(...)); a 0
        there means "no frame known" (not present, or no CAP_SYS_ADMIN), and frame 0 is read like any other.
        """
        arr = np.asarray(pfns)
        if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "ui"):
            raise InputError(f"must be a 1-d integer array, got {arr.dtype}{list(arr.shape)}", "pfns")
        if arr.size == 0:
            return np.zeros(0, dtype=np.uint64)
        if arr.dtype.kind == "i" and int(arr.min()) < 0:
            raise InputError("page frame numbers must be >= 0", "pfns")
        # sorted unique frames and each input's position among them; a stable argsort, not
        # np.unique(return_inverse=True): its quicksort argsort segfaulted in the TCG guest (numpy 2.4)
        keys = arr.astype(np.uint64)
        order = np.argsort(keys, kind="stable")
        ranked = keys[order]
        new_run = np.r_[True, ranked[1:] != ranked[:-1]]
        uniq = ranked[new_run]
        inverse = np.empty(keys.shape[0], dtype=np.int64)
        inverse[order] = np.cumsum(new_run) - 1
        flags = np.empty(uniq.size, dtype=np.uint64)
        path = self.root / "kpageflags"
        fd = self._open(path, None)
        try:
            for s0, s1 in near_runs(uniq, KPAGEFLAGS_GAP, KPAGEFLAGS_MAX_RUN):
                first, last = int(uniq[s0]), int(uniq[s1 - 1])
                want = 8 * (last - first + 1)
                data = self._pread(fd, want, 8 * first, path, None)
                if len(data) != want:
                    raise InputError(f"frames {first}..{last} extend beyond physical memory", str(path))
                span = np.frombuffer(data, dtype="<u8")
                flags[s0:s1] = span[(uniq[s0:s1] - np.uint64(first)).astype(np.int64)]
        finally:
            os.close(fd)
        return flags[inverse.reshape(-1)]

    # -- global counters ------------------------------------------------------------------------
    def vmstat(self) -> dict[str, int]:
        """Every counter of /proc/vmstat (pages or events since boot; ``nr_*`` are current pages)."""
        path = self.root / "vmstat"
        out: dict[str, int] = {}
        for no, line in _lines(self._read(path, None)):
            parts = line.split()
            if len(parts) != 2 or not _is_int(parts[1]):
                raise KernelError(f"not a 'name value' line: {line!r}", f"{path}:{no}")
            out[parts[0]] = int(parts[1])
        if not out:
            raise KernelError("empty file", str(path))
        return out

    def meminfo(self) -> Meminfo:
        """/proc/meminfo. KernelError naming file:line for a line that does not parse, or naming the
        file when MemTotal, MemAvailable (3.14+), SwapTotal or SwapFree is missing."""
        path = self.root / "meminfo"
        out: dict[str, int] = {}
        for no, line in _lines(self._read(path, None)):
            name, sep, rest = line.partition(":")
            parts = rest.split()
            if not sep or not parts or not parts[0].isdigit() or parts[1:] not in ([], ["kB"]):
                raise KernelError(f"not a 'Name: value [kB]' line: {line!r}", f"{path}:{no}")
            out[name.strip()] = int(parts[0]) * (1024 if parts[1:] else 1)
        missing = [k for k in ("MemTotal", "MemAvailable", "SwapTotal", "SwapFree") if k not in out]
        if missing:
            raise KernelError(f"no {', '.join(missing)} line(s)", str(path))
        return Meminfo(out["MemTotal"], out["MemAvailable"], out["SwapTotal"], out["SwapFree"], out)

    def tiering_counters(self) -> dict[str, int]:
        """The TIERING_COUNTERS this kernel has, in that order."""
        stats = self.vmstat()
        return {k: stats[k] for k in TIERING_COUNTERS if k in stats}

    # -- plumbing -------------------------------------------------------------------------------
    def _pid_file(self, pid: Pid, name: str) -> Path:
        return self.root / _pid_name(pid) / name

    def _read(self, path: Path, pid: Pid | None) -> str:
        try:
            with open(path, encoding="utf-8", errors="surrogateescape") as fh:
                return fh.read()
        except OSError as e:
            raise self._error(e, path, pid) from None

    def _open(self, path: Path, pid: Pid | None) -> int:
        try:
            return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise self._error(e, path, pid) from None

    def _pread(self, fd: int, n: int, offset: int, path: Path, pid: Pid | None) -> bytes:
        try:
            return os.pread(fd, n, offset)
        except OSError as e:
            raise self._error(e, path, pid) from None

    def _root_denied(self, name: str, pid: Pid) -> str:
        """Why root may not read a ptrace-gated file: the kernel's check wants the reader's capabilities
        to cover the target's permitted set (or CAP_SYS_PTRACE in the target's user namespace)."""
        base = (
            "permission denied even as root: the kernel's ptrace access check refused reading "
            f"{name} of pid {pid}"
        )
        try:
            own = status_caps((self.root / "self" / "status").read_text(), "CapEff")
            target = status_caps((self.root / _pid_name(pid) / "status").read_text(), "CapPrm")
        except OSError:
            own = target = None
        if own is not None and target is not None and target & ~own:
            return (
                f"{base}: it holds capabilities this process lacks ({_cap_names(target & ~own)}); run "
                "tierctl with a full capability set, or from the same user namespace as the target"
            )
        return f"{base} (another user namespace, or an LSM such as Yama with kernel.yama.ptrace_scope = 3)"

    def _error(self, e: OSError, path: Path, pid: Pid | None) -> TierctlError:
        name = path.name
        if e.errno == errno.ESRCH or (e.errno == errno.ENOENT and pid is not None and not self.exists(pid)):
            return NoSuchProcessError(f"no process {pid}", str(path.parent))
        if e.errno in (errno.EACCES, errno.EPERM):
            if pid is not None and name in _PTRACE_GATED and os.geteuid() == 0:
                return PermissionDeniedError(self._root_denied(name, pid), str(path))
            need = _NEEDS.get(name, "read access")
            return PermissionDeniedError(f"permission denied: reading {name} needs {need}", str(path))
        if e.errno == errno.ENOENT:
            hint = f" (needs {_CONFIG[name]})" if name in _CONFIG else ""
            return UnavailableError(f"not provided by this kernel{hint}", str(path))
        return KernelError(f"cannot read: {e.strerror or e}", str(path))


def status_caps(status: str, field: str = "CapEff") -> int | None:
    """A capability mask (``CapEff``, ``CapPrm`` ...) from the text of /proc/PID/status; None when
    the line is missing or malformed."""
    for line in status.splitlines():
        if line.startswith(field + ":"):
            with contextlib.suppress(ValueError):
                return int(line.split()[1], 16)
    return None


def _cap_names(mask: int) -> str:
    return ", ".join(
        f"CAP_{_CAP_NAMES[b]}" if b < len(_CAP_NAMES) else f"capability {b}"
        for b in range(64)
        if mask >> b & 1
    )


_PTRACE_GATED = frozenset({"maps", "numa_maps", "pagemap", "smaps", "smaps_rollup"})
# fmt: off
_CAP_NAMES = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
    "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
)
# fmt: on


def _pid_name(pid: Pid) -> str:
    if isinstance(pid, bool):
        raise InputError(f"not a pid: {pid!r}", "pid")
    if isinstance(pid, int):
        if pid < 1:
            raise InputError(f"not a pid: {pid}", "pid")
        return str(pid)
    if pid in ("self", "thread-self"):
        return pid
    raise InputError(f"not a pid: {pid!r} (an int >= 1 or 'self')", "pid")


def _lines(text: str) -> list[tuple[int, str]]:
    return [(no, line) for no, line in enumerate(text.splitlines(), start=1) if line.strip()]


def _is_int(s: str) -> bool:
    return s.isdigit() or (s[:1] == "-" and s[1:].isdigit())


def _numa_line(line: str, where: str) -> NumaMap:
    m = _NUMA_MAPS_RE.match(line)
    if m is None:
        raise KernelError(f"not a numa_maps line: {line!r}", where)
    nodes: dict[int, int] = {}
    counters: dict[str, int] = {}
    other: list[tuple[str, int]] = []
    tags: list[str] = []
    file: str | None = None
    kpsize: int | None = None
    for tok in (m["rest"] or "").split():
        key, eq, value = tok.partition("=")
        if not eq:
            tags.append(tok)
        elif key == "file":
            file = value
        elif not value.isdigit():
            raise KernelError(f"{key}={value!r} is not a count", where)
        elif key[:1] == "N" and key[1:].isdigit():
            nodes[int(key[1:])] = int(value)
        elif key == "kernelpagesize_kB":
            kpsize = int(value)
        elif key in _NUMA_COUNTERS:
            counters[key] = int(value)
        else:
            other.append((key, int(value)))
    pages = sum(nodes.values())
    counters.setdefault("active", pages)
    if pages and kpsize is None:
        raise KernelError("pages per node without kernelpagesize_kB", where)
    return NumaMap(
        start=int(m["start"], 16),
        policy=m["policy"],
        pages_per_node=nodes,
        kernelpagesize_kb=kpsize,
        file=file,
        tags=tuple(tags),
        other=tuple(other),
        **counters,
    )


def near_runs(keys: np.ndarray, max_gap: int, max_span: int) -> list[tuple[int, int]]:
    """Index ranges [start, stop) of sorted unique ``keys`` (page or frame numbers) where each key is
    less than ``max_gap`` after the previous one and a range spans at most ``max_span`` keys' worth of
    numbers: what one read can cover. Vectorised except for splitting spans longer than ``max_span``."""
    if keys.size == 0:
        return []
    k = keys.astype(np.int64)
    breaks = np.flatnonzero(np.diff(k) >= max_gap) + 1
    starts = np.r_[0, breaks]
    stops = np.r_[breaks, k.size]
    out = []
    for s0, s1 in zip(starts.tolist(), stops.tolist(), strict=True):
        while k[s1 - 1] - k[s0] >= max_span:  # a long span: cut it where it reaches max_span
            cut = int(np.searchsorted(k[s0:s1], k[s0] + max_span, side="left")) + s0
            out.append((s0, cut))
            s0 = cut
        out.append((s0, s1))
    return out
