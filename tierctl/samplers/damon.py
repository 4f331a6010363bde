"""``DamonSampler`` ("damon"): DAMON's virtual-address monitoring of target processes, as raw samples.

One kdamond per target pid (vaddr operations, one context, one target, a ``stat`` scheme matching every
region), set up with :mod:`tierctl.kernel.damon`. Each ``drain`` asks every kdamond for its regions
(``update_schemes_tried_regions``) and turns the regions that saw accesses into per-page rows of
RAW_SAMPLE_DTYPE: every page of such a region, clipped to the process's mappings (and, with
``present_only``, to the pages present in RAM), gets ``count`` = the region's ``nr_accesses``.

Resolution (details in docs/samplers-nonbpf.md):

- Space: a region, not a page. DAMON checks one random page per region per sampling interval and
  credits the whole region; regions adapt (split, merge) between ``min_nr_regions`` and
  ``max_nr_regions``, so a hot 4 KiB page inside a cold 64 MiB region lifts the whole region, and
  every page of a region gets the same count.
- Time: a drain reads the *last aggregation interval* (``aggr_us``), not the time since the previous
  drain: ``count`` is how many of its ``aggr_us / sample_us`` samples saw the region accessed (0..20
  with the defaults). Set ``aggr_us`` near the controller's cycle if a drain should summarise a cycle
  (a drain then blocks up to about two aggregation intervals).
- Rows are capped at ``max_rows`` per drain (hottest regions first); the pages left out are counted
  in ``Health.dropped``.

Unavailable when DAMON's sysfs interface is missing, when another kdamond runs or kdamond directories
exist (``busy``: DAMON cannot add a kdamond then; this CI host runs one), or without root. A target that
exits stops its kdamond: its rows end, ``Health.notes`` says so, the other targets go on.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from tierctl.errors import InputError, NoSuchProcessError, TierctlError, UnavailableError
from tierctl.kernel.damon import DAMON_ADMIN, DamonSession, DamonSysfs, KdamondSpec, MonitoringAttrs
from tierctl.kernel.procfs import ProcFS, present
from tierctl.samplers.base import Availability, Health, Targets, empty_raw
from tierctl.samplers.bpf_layout import SampleFlag
from tierctl.samplers.targets import SPECIAL_VMAS, TargetResolver, make_rows


def clip_regions(
    regions: np.ndarray, vma_start: np.ndarray, vma_end: np.ndarray, page_size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pieces of the accessed regions inside mappings: (first vpn, pages, nr_accesses), by address.

    ``regions`` is REGION_DTYPE sorted by start; ``vma_start``/``vma_end`` are the sorted, disjoint
    mappings in bytes. Regions with nr_accesses == 0 give nothing. Vectorised over region x mapping
    overlaps (each overlap found with two binary searches).
    """
    hot = regions[regions["nr_accesses"] > 0]
    if hot.size == 0 or vma_start.size == 0:
        z = np.zeros(0, np.int64)
        return z, z, z
    ps = np.int64(page_size)
    rs = hot["start"].astype(np.int64) // ps
    re = (hot["end"].astype(np.int64) + ps - 1) // ps
    vs = np.asarray(vma_start, dtype=np.int64) // ps
    ve = np.asarray(vma_end, dtype=np.int64) // ps
    lo = np.searchsorted(ve, rs, side="right")  # first mapping ending after the region starts
    hi = np.searchsorted(vs, re, side="left")  # mappings starting before the region ends
    n = np.maximum(hi - lo, 0)
    ridx = np.repeat(np.arange(hot.size), n)
    within = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
    vidx = lo[ridx] + within
    s = np.maximum(rs[ridx], vs[vidx])
    e = np.minimum(re[ridx], ve[vidx])
    keep = e > s
    return s[keep], (e - s)[keep], hot["nr_accesses"][ridx][keep].astype(np.int64)


def expand_pieces(
    first: np.ndarray, pages: np.ndarray, count: np.ndarray, budget: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Per-page (vpn, count) of the pieces, hottest pieces first, at most ``budget`` pages.

    Returns (vpn, count, kept_first, kept_pages, dropped): the kept pieces (the last one possibly
    shortened) in expansion order, and how many pages did not fit.
    """
    order = np.argsort(-count, kind="stable")
    first, pages, count = first[order], pages[order], count[order]
    total = int(pages.sum())
    dropped = max(0, total - budget)
    if dropped:
        cum = np.cumsum(pages)
        k = int(np.searchsorted(cum, budget, side="left"))  # piece holding the budget's last page
        pages = pages[: k + 1].copy()
        pages[k] -= int(cum[k]) - budget
        first, count = first[: k + 1], count[: k + 1]
        nz = pages > 0
        first, pages, count = first[nz], pages[nz], count[nz]
    n = int(pages.sum())
    offsets = np.cumsum(pages) - pages
    vpn = np.repeat(first - offsets, pages) + np.arange(n, dtype=np.int64)
    return vpn, np.repeat(count, pages), first, pages, dropped


class DamonSampler:
    """Per-page rows from DAMON vaddr regions; one kdamond per target process."""

    name = "damon"

    def __init__(
        self,
        *,
        sample_us: int = 5_000,
        aggr_us: int = 100_000,
        update_us: int = 1_000_000,
        min_nr_regions: int = 10,
        max_nr_regions: int = 1_000,
        max_rows: int = 1 << 20,
        max_targets: int = 16,
        present_only: bool = True,
        replace_idle: bool = False,
        damon_root: Path = DAMON_ADMIN,
        proc_root: Path = Path("/proc"),
        cgroup_root: Path = Path("/sys/fs/cgroup"),
        page_size: int | None = None,
    ) -> None:
        if max_rows < 1 or max_targets < 1:
            raise InputError("max_rows and max_targets must be >= 1", "damon")
        self.attrs = MonitoringAttrs(sample_us, aggr_us, update_us, min_nr_regions, max_nr_regions)
        self.max_rows = max_rows
        self.max_targets = max_targets
        self.present_only = present_only
        self.replace_idle = replace_idle
        self.fs = DamonSysfs(Path(damon_root), proc_root=Path(proc_root))
        self.proc = ProcFS(Path(proc_root), page_size=page_size)
        self.resolver = TargetResolver(Path(proc_root), Path(cgroup_root))
        self._session: DamonSession | None = None
        self._pids: list[int] = []
        self._live: set[int] = set()  # kdamond indices whose target still runs
        self._health = Health()

    # -- SourceSampler --------------------------------------------------------------------------
    def probe(self) -> Availability:
        try:
            self.fs.check_free(replace_idle=self.replace_idle)
        except TierctlError as e:
            return Availability(False, str(e))
        a = self.attrs
        return Availability(
            True,
            f"DAMON vaddr through {self.fs.root} (sample {a.sample_us} us, aggregation {a.aggr_us} us, "
            f"{a.min_nr_regions}-{a.max_nr_regions} regions; counts 0..{a.max_nr_accesses})",
        )

    def start(self, targets: Targets) -> None:
        t0 = time.thread_time()
        pids = [p for p in self.resolver.pids(targets) if self.proc.exists(p)]
        if not pids:
            raise UnavailableError(
                "needs live target pids or cgroups: DAMON vaddr monitors named processes", "damon"
            )
        if len(pids) > self.max_targets:
            self._health.notes.append(f"{len(pids)} targets: monitoring the first {self.max_targets} only")
            pids = pids[: self.max_targets]
        specs = [KdamondSpec("vaddr", pid, attrs=self.attrs) for pid in pids]
        session = self.fs.create(specs, replace_idle=self.replace_idle)
        try:
            session.start()
        except BaseException:
            session.teardown(quiet=True)
            raise
        self._session, self._pids, self._live = session, pids, set(range(len(pids)))
        self._health.cpu_seconds += time.thread_time() - t0

    def drain(self) -> np.ndarray:
        if self._session is None:
            return empty_raw()
        t0 = time.thread_time()
        parts, budget, dropped = [], self.max_rows, 0
        for k, pid in enumerate(self._pids):
            if k not in self._live:
                continue
            try:
                rows, lost = self._rows(k, pid, budget)
            except NoSuchProcessError:
                self._live.discard(k)
                self._health.notes.append(f"pid {pid} exited; its kdamond stopped")
                continue
            parts.append(rows)
            budget -= rows.shape[0]
            dropped += lost
        out = np.concatenate(parts) if parts else empty_raw()
        self._health.samples += int(out.shape[0])
        self._health.dropped += dropped
        self._health.cpu_seconds += time.thread_time() - t0
        return out

    def stop(self) -> None:
        session, self._session = self._session, None
        self._live = set()
        if session is not None:
            session.teardown()

    def health(self) -> Health:
        h = self._health
        return Health(h.samples, h.dropped, h.cpu_seconds, h.bpf_run_ns, list(h.notes))

    # -- extras ---------------------------------------------------------------------------------
    @property
    def pids(self) -> list[int]:
        """Targets whose kdamond still runs."""
        return [p for k, p in enumerate(self._pids) if k in self._live]

    def kernel_cpu_seconds(self) -> float:
        """CPU time of the running kdamond threads so far (utime + stime from /proc/PID/stat)."""
        if self._session is None:
            return 0.0
        total = 0
        for k in range(len(self._session)):
            kpid = self._session.kdamond_pid(k) if k in self._live else None
            if kpid is None:
                continue
            try:
                fields = (self.proc.root / str(kpid) / "stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
            except (OSError, IndexError, ValueError):
                continue
        return total / os.sysconf("SC_CLK_TCK")

    # -- one target -------------------------------------------------------------------------------
    def _rows(self, k: int, pid: int, budget: int) -> tuple[np.ndarray, int]:
        assert self._session is not None
        regions = self._session.regions(k)
        vmas = [v for v in self.proc.maps(pid) if v.path not in SPECIAL_VMAS]
        vs = np.array([v.start for v in vmas], dtype=np.int64)
        ve = np.array([v.end for v in vmas], dtype=np.int64)
        first, pages, count = clip_regions(regions, vs, ve, self.proc.page_size)
        vpn, cnt, kfirst, kpages, dropped = expand_pieces(first, pages, count, max(0, budget))
        if self.present_only and vpn.size:
            ps = self.proc.page_size
            mask = np.concatenate(
                [
                    present(self.proc.pagemap(pid, int(f) * ps, int(n)))
                    for f, n in zip(kfirst, kpages, strict=True)
                ]
            )
            vpn, cnt = vpn[mask], cnt[mask]
        rows = make_rows(
            vpn.astype(np.uint64),
            cnt,
            pid=pid,
            cgroup=self.resolver.cgroup_id(pid),
            flags=int(SampleFlag.DAMON),
        )
        return rows, dropped
