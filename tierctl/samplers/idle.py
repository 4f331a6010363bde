"""``IdlePageSampler`` ("idle"): accessed-bit scanning of target processes through idle page tracking.

Mode ``idle`` (the default) uses ``/sys/kernel/mm/page_idle/bitmap`` (CONFIG_IDLE_PAGE_TRACKING,
Documentation/admin-guide/mm/idle_page_tracking.rst): at ``start`` and after every ``drain`` the present
pages of each target (page frame numbers from /proc/PID/pagemap) are marked idle by writing their bits
(the kernel ORs what is written, clears the pages' accessed bits in every mapping and sets PG_idle);
``drain`` reads the bits back (for a page still marked idle the kernel re-checks the accessed bits of
its mappings first) and emits one row, count 1, per present page whose bit is clear: accessed since it
was marked. Pages faulted in since the last scan were never marked and count as accessed (they were).
A huge page's idle flag lives on its head page, so /proc/kpageflags tells heads from tails and tails
are read and marked through their head. Needs root (PFNs are hidden from readers without
CAP_SYS_ADMIN; the bitmap and kpageflags are 0600/0400).

There is no faithful per-page fallback when the bitmap is missing. ``clear_refs`` (writing 1) clears
the accessed bits and PG_referenced, but /proc/kpageflags KPF_REFERENCED is PG_referenced, which
accesses through page tables never set (only reclaim folds accessed bits into it): after
``clear_refs`` and a re-touch of 4096 pages in the guest, 0 of them had KPF_REFERENCED. So without the
bitmap this mode is unavailable, with that reason. Mode ``soft-dirty`` is an explicit opt-in that
observes *writes* only: ``clear_refs`` 4 clears the soft-dirty bits, pagemap bit 55 reports pages
written since (rows carry SAMPLE_WRITE | SAMPLE_SOFT_DIRTY; reads are invisible to it).

The scans are vectorised: one pread of pagemap per chunk of a mapping, one pread/pwrite of the bitmap per
run of consecutive 64-frame words; no per-page Python loop. Costs and limits: docs/samplers-nonbpf.md.

``TargetResolver`` (pids of target cgroups, a pid's cgroup v2 id) lives in targets.py, shared with DAMON;
the bitmap's I/O is ``tierctl.kernel.idlepage.IdleBitmap``, /proc is ``ProcFS``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from tierctl.errors import InputError, NoSuchProcessError, PermissionDeniedError, UnavailableError
from tierctl.kernel.cgroupfs import CGROUP_ROOT
from tierctl.kernel.idlepage import IDLE_BITMAP, LIVE_SYS, IdleBitmap
from tierctl.kernel.procfs import (
    KPF_COMPOUND_HEAD,
    KPF_COMPOUND_TAIL,
    KPF_HUGE,
    LIVE_PROC,
    ProcFS,
    Vma,
    kpf,
    pfn,
    present,
    soft_dirty,
)
from tierctl.samplers.base import Availability, Health, Targets, empty_raw
from tierctl.samplers.bpf_layout import SampleFlag
from tierctl.samplers.targets import SPECIAL_VMAS, TargetResolver, cap_rows, make_rows

# Source bits of RAW_SAMPLE_DTYPE.flags (bits 16 and up name the source; tierctl/data/bpf/tierctl.h has
# FAULT = 1 << 16 and PERF = 1 << 17). SAMPLE_WRITE is the x86 page-fault error code's write bit, as there.
SAMPLE_WRITE = int(SampleFlag.WRITE)
SAMPLE_IDLE = int(SampleFlag.IDLE)
SAMPLE_SOFT_DIRTY = int(SampleFlag.SOFT_DIRTY)

MODES = ("idle", "soft-dirty")
__all__ = ["IDLE_BITMAP", "SAMPLE_IDLE", "SAMPLE_SOFT_DIRTY", "SAMPLE_WRITE", "IdlePageSampler"]

NO_BITMAP_REASON = (
    "no idle page tracking ({path} missing: kernel built without CONFIG_IDLE_PAGE_TRACKING); the "
    "clear_refs + kpageflags fallback cannot report accesses (KPF_REFERENCED is PG_referenced, which "
    "accesses through page tables do not set: 0 of 4096 re-touched pages showed it in the guest), so none "
    "is used; mode='soft-dirty' observes writes only"
)


class IdlePageSampler:
    """Accessed-bit scanning with the idle page bitmap (or, opted in, write tracking with soft-dirty)."""

    name = "idle"

    def __init__(
        self,
        *,
        mode: str = "idle",
        max_rows: int = 1 << 20,
        chunk_pages: int = 1 << 18,
        anon_only: bool = False,
        sys_root: Path = LIVE_SYS,
        proc_root: Path = LIVE_PROC,
        cgroup_root: Path = CGROUP_ROOT,
        page_size: int | None = None,
        proc: ProcFS | None = None,
        bitmap: IdleBitmap | None = None,
    ) -> None:
        """The roots are for fake trees; ``proc`` and ``bitmap``, when given, replace the adapters made
        from them."""
        if mode not in MODES:
            raise InputError(f"unknown mode {mode!r}; known: {', '.join(MODES)}", "idle.mode")
        if max_rows < 1 or chunk_pages < 1:
            raise InputError("max_rows and chunk_pages must be >= 1", "idle")
        self.mode = mode
        self.max_rows = max_rows
        self.chunk_pages = chunk_pages
        self.anon_only = anon_only
        self.proc = proc if proc is not None else ProcFS(Path(proc_root), page_size=page_size)
        self.bitmap = bitmap if bitmap is not None else IdleBitmap(Path(sys_root))
        self.resolver = TargetResolver(self.proc, Path(cgroup_root))
        self._pids: list[int] = []
        self._health = Health()

    @property
    def bitmap_path(self) -> Path:
        return self.bitmap.path

    # -- SourceSampler --------------------------------------------------------------------------
    def probe(self) -> Availability:
        if self.mode == "idle":
            path = self.bitmap.path
            if not self.bitmap.exists():
                return Availability(False, NO_BITMAP_REASON.format(path=path))
            if not self.bitmap.accessible():
                return Availability(False, f"{path} needs root (and PFNs in pagemap need CAP_SYS_ADMIN)")
            return Availability(True, f"idle page tracking through {path}")
        if not self.proc.has_clear_refs():
            clear = self.proc.root / "self" / "clear_refs"
            return Availability(False, f"no {clear} (kernel without CONFIG_PROC_PAGE_MONITOR)")
        if self.proc.reports_soft_dirty() is False:
            return Availability(
                False, "pagemap reports no soft-dirty bits (kernel without CONFIG_MEM_SOFT_DIRTY)"
            )
        return Availability(True, "soft-dirty bits through clear_refs + pagemap (observes writes only)")

    def start(self, targets: Targets) -> None:
        avail = self.probe()
        if not avail.ok:
            raise UnavailableError(avail.reason, "idle")
        t0 = time.thread_time()
        pids = self.resolver.pids(targets)
        if not pids:
            raise UnavailableError(
                "needs target pids or cgroups: it scans the page tables of named processes", "idle"
            )
        if self.mode == "idle":
            self.bitmap.open()
        self._pids = []
        try:
            for pid in pids:
                try:
                    self._reset(pid)
                except NoSuchProcessError:
                    self._health.notes.append(f"pid {pid} exited before the first scan")
                    continue
                self._pids.append(pid)
        except BaseException:
            self.stop()
            raise
        self._health.cpu_seconds += time.thread_time() - t0

    def drain(self) -> np.ndarray:
        t0 = time.thread_time()
        parts = []
        for pid in list(self._pids):
            try:
                parts.append(self._scan_and_reset(pid))
            except NoSuchProcessError:
                self._pids.remove(pid)
                self._health.notes.append(f"pid {pid} exited; no longer scanned")
        rows = np.concatenate(parts) if parts else empty_raw()
        rows, dropped = cap_rows(rows, self.max_rows)
        self._health.samples += int(rows.shape[0])
        self._health.dropped += dropped
        self._health.cpu_seconds += time.thread_time() - t0
        return rows

    def stop(self) -> None:
        self.bitmap.close()
        self._pids = []

    def health(self) -> Health:
        h = self._health
        return Health(h.samples, h.dropped, h.cpu_seconds, h.bpf_run_ns, list(h.notes))

    @property
    def pids(self) -> list[int]:
        return list(self._pids)

    # -- one target -------------------------------------------------------------------------------
    def _vmas(self, pid: int) -> list[Vma]:
        return [
            v
            for v in self.proc.maps(pid)
            if v.path not in SPECIAL_VMAS and (v.anonymous or not self.anon_only) and v.end > v.start
        ]

    def _entries(self, pid: int) -> tuple[np.ndarray, np.ndarray]:
        """(vpn, pagemap entry) of every present page of the target's mappings."""
        ps = self.proc.page_size
        vpns, ents = [], []
        for v in self._vmas(pid):
            first, last = v.start // ps, v.end // ps
            for a in range(first, last, self.chunk_pages):
                n = min(self.chunk_pages, last - a)
                e = self.proc.pagemap(pid, a * ps, n)
                keep = np.flatnonzero(present(e))
                if keep.size:
                    vpns.append(keep.astype(np.uint64) + np.uint64(a))
                    ents.append(e[keep])
        if not vpns:
            return np.zeros(0, np.uint64), np.zeros(0, np.uint64)
        return np.concatenate(vpns), np.concatenate(ents)

    def _frames(self, pid: int, *, count_dropped: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(vpn, tracking frame) of the present pages whose idle state the bitmap can tell.

        The kernel keeps the idle flag of a huge page on its head page only (idle_page_tracking.rst:
        "one has to read /proc/kpageflags in order to correctly count idle huge pages"): a compound
        tail is tracked through the head frame, found as the nearest preceding head in the same run of
        consecutive frames. Tails whose head is not mapped in the scanned run, and hugetlb pages (not
        on an LRU: never tracked), are left out and counted in ``Health.dropped``.
        """
        vpn, ent = self._entries(pid)
        frames = pfn(ent)
        if frames.size and not frames.any():
            raise PermissionDeniedError(
                "pagemap hides page frame numbers: idle page tracking needs CAP_SYS_ADMIN",
                str(self.proc.root / str(pid) / "pagemap"),
            )
        if frames.size == 0:
            return vpn, frames
        flags = self.proc.kpageflags(frames)
        head, tail = kpf(flags, KPF_COMPOUND_HEAD), kpf(flags, KPF_COMPOUND_TAIL)
        if not tail.any() and not kpf(flags, KPF_HUGE).any():
            return vpn, frames
        idx = np.arange(frames.size)
        last_head = np.maximum.accumulate(np.where(head, idx, -1))
        safe = np.maximum(last_head, 0)
        step = (idx - safe).astype(np.uint64)
        same_run = (last_head >= 0) & (frames[safe] + step == frames) & (vpn[safe] + step == vpn)
        key = np.where(tail & same_run, frames[safe], frames)
        ok = (~tail | same_run) & ~kpf(flags, KPF_HUGE)
        if count_dropped:
            self._health.dropped += int((~ok).sum())
        return vpn[ok], key[ok]

    def _reset(self, pid: int) -> None:
        """Start a new observation interval for ``pid``."""
        if self.mode == "idle":
            _vpn, frames = self._frames(pid, count_dropped=False)
            self.bitmap.mark(frames)
        else:
            self.proc.clear_refs(pid, 4)

    def _scan_and_reset(self, pid: int) -> np.ndarray:
        """Rows for the pages accessed since the last reset; then start the next interval.

        Accesses between the read and the reset are not seen (by this interval or the next).
        """
        cg = self.resolver.cgroup_id(pid)
        if self.mode == "idle":
            vpn, frames = self._frames(pid)
            accessed = ~self.bitmap.idle(frames)
            self.bitmap.mark(frames)  # pages faulted in after this read count as accessed next time
            return make_rows(vpn[accessed], 1, pid=pid, cgroup=cg, flags=SAMPLE_IDLE)
        vpn, ent = self._entries(pid)
        self.proc.clear_refs(pid, 4)
        written = soft_dirty(ent)
        return make_rows(vpn[written], 1, pid=pid, cgroup=cg, flags=SAMPLE_SOFT_DIRTY | SAMPLE_WRITE)
