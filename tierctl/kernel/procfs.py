"""Readers for /proc: a process's mappings, NUMA placement, page table entries, page flags, vmstat.

``ProcFS(root)`` reads below ``root`` (``/proc`` by default), so tests point it at a captured or
synthetic tree. Every method reads the kernel's file afresh; nothing is cached. This module holds
the reader; it delegates to :mod:`~tierctl.kernel.proc_parsers` (the text files' parsers, building
:mod:`~tierctl.kernel.proc_records`), :mod:`~tierctl.kernel.pagemap_bits` (pagemap and kpageflags
bits and decoders), :mod:`~tierctl.kernel.pagemap_scan` (the PAGEMAP_SCAN ioctl) and its base
:class:`~tierctl.kernel.proc_files.ProcFiles` (file access and its errors). Every name importable
from here before those modules existed still is.

Errors: a vanished pid is :class:`NoSuchProcessError`; EACCES/EPERM is
:class:`PermissionDeniedError` naming the privilege needed; a file the kernel does not provide
(config option off) is :class:`UnavailableError`; a line that does not parse is
:class:`KernelError` with ``where`` = ``file:line``; a bad argument is :class:`InputError`.
Field meanings: Documentation/filesystems/proc.rst and Documentation/admin-guide/mm/pagemap.rst.
"""

from __future__ import annotations

import ctypes
import mmap
import os

import numpy as np

from tierctl.errors import InputError, KernelError, TierctlError, UnavailableError
from tierctl.kernel import proc_parsers
from tierctl.kernel.pagemap_bits import (
    KPF_ACTIVE,
    KPF_ANON,
    KPF_BUDDY,
    KPF_COMPOUND_HEAD,
    KPF_COMPOUND_TAIL,
    KPF_DIRTY,
    KPF_HUGE,
    KPF_IDLE,
    KPF_KSM,
    KPF_LOCKED,
    KPF_LRU,
    KPF_MMAP,
    KPF_NOPAGE,
    KPF_REFERENCED,
    KPF_SLAB,
    KPF_SWAPBACKED,
    KPF_THP,
    KPF_UNEVICTABLE,
    KPF_ZERO_PAGE,
    PM_EXCLUSIVE,
    PM_FILE_OR_SHARED,
    PM_PFN_MASK,
    PM_PRESENT,
    PM_SOFT_DIRTY,
    PM_SWAPPED,
    PM_UFFD_WP,
    check_page_range,
    exclusive,
    file_or_shared,
    kpf,
    near_runs,
    pfn,
    present,
    soft_dirty,
    swap_offset,
    swap_type,
    swapped,
    unique_frames,
)
from tierctl.kernel.pagemap_scan import (
    NO_SCAN_ERRNOS,
    PAGE_IS_HUGE,
    PAGE_IS_PRESENT,
    PAGEMAP_SCAN,
    SCAN_REGIONS,
    PagemapScanUnsupportedError,
    scan_regions,
)
from tierctl.kernel.proc_files import ProcFiles
from tierctl.kernel.proc_parsers import status_caps
from tierctl.kernel.proc_records import TIERING_COUNTERS, Meminfo, Mount, NumaMap, Pid, Vma
from tierctl.kernel.roots import LIVE_PROC

__all__ = [
    "KPAGEFLAGS_GAP", "KPAGEFLAGS_MAX_RUN", "KPF_ACTIVE", "KPF_ANON", "KPF_BUDDY", "KPF_COMPOUND_HEAD",
    "KPF_COMPOUND_TAIL", "KPF_DIRTY", "KPF_HUGE", "KPF_IDLE", "KPF_KSM", "KPF_LOCKED", "KPF_LRU",
    "KPF_MMAP", "KPF_NOPAGE", "KPF_REFERENCED", "KPF_SLAB", "KPF_SWAPBACKED", "KPF_THP",
    "KPF_UNEVICTABLE", "KPF_ZERO_PAGE", "LIVE_PROC", "PAGEMAP_SCAN", "PAGE_IS_HUGE", "PAGE_IS_PRESENT",
    "PM_EXCLUSIVE", "PM_FILE_OR_SHARED", "PM_PFN_MASK", "PM_PRESENT", "PM_SOFT_DIRTY", "PM_SWAPPED",
    "PM_UFFD_WP", "SCAN_REGIONS", "TIERING_COUNTERS", "Meminfo", "Mount", "NumaMap",
    "PagemapScanUnsupportedError", "Pid", "ProcFS", "Vma", "exclusive", "file_or_shared", "kpf",
    "near_runs", "pfn", "present", "soft_dirty", "status_caps", "swap_offset", "swap_type", "swapped",
]  # fmt: skip

KPAGEFLAGS_MAX_RUN = 1 << 16
# frames this close are read in one pread with what lies between (8 bytes a frame): scattered frames
# cost one syscall per span instead of one each (a syscall costs far more than 4 KiB of reading)
KPAGEFLAGS_GAP = 512
"""Most entries read by one pread of /proc/kpageflags (512 KiB)."""


class ProcFS(ProcFiles):
    """Reads process and memory-management files below ``root`` (``/proc``); ``page_size`` is this
    machine's unless given (a power of two). File access and its errors: ``ProcFiles``."""

    # -- per-process text files ---------------------------------------------------------------
    def maps(self, pid: Pid) -> list[Vma]:
        """The process's mappings from /proc/PID/maps (empty for kernel threads and zombies)."""
        path = self._pid_file(pid, "maps")
        return proc_parsers.parse_maps(self._read(path, pid), path)

    def numa_maps(self, pid: Pid) -> list[NumaMap]:
        """Policy and per-node resident pages of each mapping, from /proc/PID/numa_maps.

        Reading it walks the process's page tables (costly for large processes). Its lines are the
        mappings of maps() except the [vsyscall] gate area.
        """
        path = self._pid_file(pid, "numa_maps")
        return proc_parsers.parse_numa_maps(self._read(path, pid), path)

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
        return proc_parsers.parse_uid(self._read(path, pid), path)

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
        return proc_parsers.parse_cgroups(self._read(path, pid), path)

    def groups(self, pid: Pid) -> frozenset[int]:
        """The process's supplementary groups (``Groups:`` of /proc/PID/status)."""
        return proc_parsers.parse_groups(self._read(self._pid_file(pid, "status"), pid))

    def cpu_ticks(self, pid: Pid) -> int:
        """User + system CPU time of the process in clock ticks (utime + stime of /proc/PID/stat)."""
        path = self._pid_file(pid, "stat")
        return proc_parsers.parse_cpu_ticks(self._read(path, pid), path)

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
            raise self._clear_refs_error(e, path, pid, value) from None

    def has_clear_refs(self) -> bool:
        """Whether the kernel provides /proc/PID/clear_refs (CONFIG_PROC_PAGE_MONITOR), checked on self."""
        return (self.root / "self" / "clear_refs").exists()

    def filesystems(self) -> frozenset[str] | None:
        """Filesystem types the kernel knows (/proc/filesystems); None when that file cannot be read."""
        try:
            text = self._read(self.root / "filesystems", None)
        except TierctlError:
            return None
        return frozenset(line.split()[-1] for _no, line in proc_parsers.nonblank_lines(text))

    def mounts(self, pid: Pid = "self") -> list[Mount]:
        """The process's mount points (/proc/PID/mountinfo), in mount order; [] when unreadable."""
        path = self._pid_file(pid, "mountinfo")
        try:
            text = self._read(path, pid)
        except TierctlError:
            return []
        return proc_parsers.parse_mountinfo(text)

    def status_field(self, pid: Pid, field: str) -> str | None:
        """The value of one ``Field:`` line of /proc/PID/status, stripped; None when absent or unreadable."""
        try:
            text = self._read(self._pid_file(pid, "status"), pid)
        except TierctlError:
            return None
        return proc_parsers.status_value(text, field)

    def fdinfo(self, fd: int) -> str | None:
        """This process's /proc/self/fdinfo/FD; None when it cannot be read."""
        try:
            return self._read(self.root / "self" / "fdinfo" / str(int(fd)), None)
        except TierctlError:
            return None

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
        try:
            return scan_regions(fd, ranges, huge_only=huge_only)
        except OSError as e:
            if e.errno in NO_SCAN_ERRNOS:
                raise PagemapScanUnsupportedError(
                    f"no PAGEMAP_SCAN ({os.strerror(e.errno)})", str(path)
                ) from None
            raise self._error(e, path, pid) from None
        finally:
            os.close(fd)

    def pagemap(self, pid: Pid, start_addr: int, n_pages: int) -> np.ndarray:
        """The page-table entries of ``n_pages`` pages from ``start_addr``, one uint64 per page.

        One pread of /proc/PID/pagemap (8 bytes per page). Decode with present(), swapped(), pfn(),
        exclusive(), soft_dirty(), file_or_shared(). Unmapped pages read as 0. PFNs are 0 unless
        the reader has CAP_SYS_ADMIN.
        """
        check_page_range(start_addr, n_pages, self.page_size)
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
        uniq, inverse = unique_frames(pfns)
        if uniq.size == 0:
            return np.zeros(0, dtype=np.uint64)
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
        return proc_parsers.parse_vmstat(self._read(path, None), path)

    def meminfo(self) -> Meminfo:
        """/proc/meminfo. KernelError naming file:line for a line that does not parse, or naming the
        file when MemTotal, MemAvailable (3.14+), SwapTotal or SwapFree is missing."""
        path = self.root / "meminfo"
        return proc_parsers.parse_meminfo(self._read(path, None), path)

    def tiering_counters(self) -> dict[str, int]:
        """The TIERING_COUNTERS this kernel has, in that order."""
        stats = self.vmstat()
        return {k: stats[k] for k in TIERING_COUNTERS if k in stats}
