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
- Change: a target whose accessed regions cover no 2 MiB bucket that was not hot since it last gave
  rows (up to ``change_share`` of them may be new) gives no rows, except every ``keepalive``-th
  drain: at rest the heat is kept up without re-reading and re-sending the same pages every cycle,
  and a region that becomes hot is reported at once.
- Rows are capped at ``max_rows`` per drain (hottest regions first); the pages left out are counted
  in ``Health.dropped``.

Targets: the ``max_targets`` largest target processes with at least ``min_rss_bytes`` resident (small
processes do not matter for placement, and each kdamond costs CPU). Started with none, the sampler runs
and waits for ``retarget``; a changed set of processes tears the kdamonds down and starts new ones.
DAMON's sysfs serves one request at a time (a second one, even for another kdamond, answers EBUSY), and
each waits for the end of the kdamond's next aggregation interval: so a drain asks the kdamonds in turn,
round robin, until ``drain_s`` of waiting has passed; the next drain goes on where this one stopped.
Only regions that saw an access are read back (the scheme's ``nr_accesses`` minimum is 1): one sysfs
directory per region is the costly part.

Unavailable when DAMON's sysfs interface is missing, when another kdamond runs or kdamond directories
exist (``busy``: DAMON cannot add a kdamond then; this CI host runs one), or without root. A target that
exits stops its kdamond: its rows end, ``Health.notes`` says so, the other targets go on.

Crash safety: the kdamonds are recorded in a knob guard (kind ``damon``) before they are created, and
the record is dropped when they are torn down. The daemon hands in its guard (``knobs``: its record,
restored at its next start after a crash); without one the sampler keeps its own record in
``<run_dir>/damon-knobs.<pid>.json`` (made only while kdamonds run, as a BPF host does for the BPF
samplers), and before its first probe or start restores the records of processes that are gone, so a
killed ``tierctl sample`` does not leave DAMON "busy". The own record is kept only for the DAMON tree
below ``knob_root`` (the live one; a fake tree elsewhere gets none).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from tierctl.errors import InputError, NoSuchProcessError, TierctlError, UnavailableError
from tierctl.kernel.cgroupfs import CGROUP_ROOT
from tierctl.kernel.damon import DamonSession, DamonSysfs, KdamondSpec, MonitoringAttrs
from tierctl.kernel.knobs import DAMON_KDAMONDS, KnobGuard, Restored, restore_dead_records
from tierctl.kernel.procfs import LIVE_PROC, ProcFS, present
from tierctl.kernel.roots import LIVE_ROOT, LIVE_SYS, RUN_DIR, below
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


BUCKET_BYTES = 2 << 20
MAX_EVERY = 8

RECORD_PREFIX = "damon-knobs."  # <RUN_DIR>/damon-knobs.<pid>.json


def hot_buckets(regions: np.ndarray, page_size: int) -> np.ndarray:
    """The 2 MiB address buckets the accessed regions touch, sorted, unique (a region's whole span:
    mappings are not consulted, this is only for telling "the same places are hot" from a change)."""
    hot = regions[regions["nr_accesses"] > 0]
    if hot.size == 0:
        return np.zeros(0, np.int64)
    lo = hot["start"].astype(np.int64) // BUCKET_BYTES
    hi = (hot["end"].astype(np.int64) - 1) // BUCKET_BYTES + 1
    n = hi - lo
    idx = np.repeat(lo - (np.cumsum(n) - n), n) + np.arange(int(n.sum()), dtype=np.int64)
    return np.unique(idx)


def new_buckets(seen: np.ndarray | None, now: np.ndarray, share: float) -> bool:
    """Whether the hot buckets ``now`` add more than ``share`` of ``seen`` (at least one bucket) to
    the buckets ``seen`` since the last rows. Buckets that went quiet are no news: cooling shows in
    the heat's decay, and a hot region's count flickers between 0 and a few in DAMON's samples."""
    if seen is None:
        return True
    added = now.size - np.intersect1d(seen, now, assume_unique=True).size
    return added > share * seen.size


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
        min_rss_bytes: int = 16 << 20,
        drain_s: float = 0.25,
        keepalive: int = 8,
        change_share: float = 0.02,
        present_only: bool = True,
        replace_idle: bool = False,
        sys_root: Path = LIVE_SYS,
        damon_root: Path | None = None,
        proc_root: Path = LIVE_PROC,
        cgroup_root: Path = CGROUP_ROOT,
        page_size: int | None = None,
        proc: ProcFS | None = None,
        knobs: KnobGuard | None = None,
        knob_root: Path = LIVE_ROOT,
        run_dir: Path = RUN_DIR,
    ) -> None:
        """The roots are for fake trees (``damon_root``: DAMON's ``admin`` directory, default the one
        below ``sys_root``); ``proc``, when given, replaces the ProcFS made from ``proc_root``.

        ``knobs``: the guard that records the kdamonds before they are created (the daemon's); without
        one, the sampler's own record in ``run_dir``, below ``knob_root``, when the DAMON tree is there."""
        if max_rows < 1 or max_targets < 1:
            raise InputError("max_rows and max_targets must be >= 1", "damon")
        self.attrs = MonitoringAttrs(sample_us, aggr_us, update_us, min_nr_regions, max_nr_regions)
        self.max_rows = max_rows
        self.max_targets = max_targets
        self.min_rss_bytes = min_rss_bytes
        self.drain_s = drain_s
        if keepalive < 1 or not 0 <= change_share < 1:
            raise InputError("keepalive must be >= 1 and change_share in [0, 1)", "damon")
        self.keepalive = keepalive
        self.change_share = change_share
        self._sig: dict[int, np.ndarray] = {}  # kdamond -> hot 2 MiB buckets seen since it last gave rows
        self._quiet: dict[int, int] = {}  # kdamond -> drains since it last emitted
        self.present_only = present_only
        self.replace_idle = replace_idle
        self.proc = proc if proc is not None else ProcFS(Path(proc_root), page_size=page_size)
        self.fs = DamonSysfs(
            None if damon_root is None else Path(damon_root),
            sys_root=Path(sys_root),
            proc_root=self.proc.root,
        )
        self._knobs = knobs
        self._own = knobs is None  # the sampler keeps its own record (in run_dir)
        self.knob_root = Path(knobs.root if knobs is not None else knob_root)
        self.run_dir = Path(run_dir)
        self.restored_at_start: list[Restored] | None = None  # what restore_leftovers() restored
        self.resolver = TargetResolver(self.proc, Path(cgroup_root))
        self._session: DamonSession | None = None
        self._next = 0  # the kdamond the next drain asks first
        self._calls = 0
        self._every = 1  # read regions every this many drains (the watchdog's throttle doubles it)
        self._cgroups: dict[int, int] = {}  # pid -> cgroup id, looked up when the pid is first seen
        self._pids: list[int] = []
        self._live: set[int] = set()  # kdamond indices whose target still runs
        self._health = Health()

    # -- the record of the kdamonds ----------------------------------------------------------------
    def knobs(self) -> KnobGuard | None:
        """The guard that records the kdamonds: the one handed in, else the sampler's own (made on first
        use, in ``run_dir``; its file exists only while it records something), None when the DAMON tree
        is not below ``knob_root`` (a fake tree: no record)."""
        if self._knobs is None and self._own_record():
            state = self.run_dir / f"{RECORD_PREFIX}{os.getpid()}.json"
            self._knobs = KnobGuard(state, self.knob_root, damon=self._sysfs)
        return self._knobs

    def restore_leftovers(self) -> list[Restored]:
        """Restore the records ``<run_dir>/damon-knobs.<pid>.json`` of processes that are gone (their
        kdamonds off, ``nr_kdamonds`` 0) — with its own record, also one already under this process's
        pid (a killed process that had it before); once, before the first probe or start. Only for the
        DAMON tree below ``knob_root``."""
        if self.restored_at_start is None:
            done: list[Restored] = []
            if self._own_record():
                done = restore_dead_records(
                    self.run_dir, RECORD_PREFIX, root=self.knob_root, damon=self._sysfs
                )
                own = self.knobs() if self._own else None
                if own is not None and own.records:
                    done += own.restore_all()
            for r in done:
                detail = f" ({r.error})" if r.error else ""
                self._health.notes.append(f"left by a crashed run: {r.knob} {r.outcome}{detail}")
            self.restored_at_start = done
        return self.restored_at_start

    def _own_record(self) -> bool:
        """Whether the DAMON tree is the one below ``knob_root`` (where a record can restore it)."""
        return below(self.knob_root, DAMON_KDAMONDS) == self.fs.nr_path

    def _sysfs(self, admin: Path) -> DamonSysfs:
        """The DAMON adapter a guard restores through: this sampler's for its own tree."""
        return self.fs if admin == self.fs.root else DamonSysfs(admin, proc_root=self.proc.root)

    # -- SourceSampler --------------------------------------------------------------------------
    def probe(self) -> Availability:
        try:
            self.restore_leftovers()
            guard = self.knobs()
            if guard is not None and (why := self.fs.guard_problem(guard)) is not None:
                raise InputError(why, str(self.fs.nr_path))
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
        given = [p for p in self.resolver.pids(targets) if self.proc.exists(p)]
        if not given and not targets.cgroup_ids and not targets.pids:
            raise UnavailableError(
                "needs live target pids or cgroups: DAMON vaddr monitors named processes", "damon"
            )
        if targets.pids and not given and not targets.cgroup_ids:
            raise UnavailableError(
                "needs live target pids or cgroups: none of the named processes runs", "damon"
            )
        self._begin(self._pick(given))
        self._health.cpu_seconds += time.thread_time() - t0

    def retarget(self, targets: Targets) -> None:
        """Monitor the (largest) processes of ``targets`` from now on: new kdamonds when they changed."""
        t0 = time.thread_time()
        pids = self._pick([p for p in self.resolver.pids(targets) if self.proc.exists(p)])
        if pids != self.pids:
            self._end()
            self._begin(pids)
        self._health.cpu_seconds += time.thread_time() - t0

    def _pick(self, pids: list[int]) -> list[int]:
        """The ``max_targets`` largest of ``pids`` with at least ``min_rss_bytes`` resident, by pid."""
        sized = []
        for p in pids:
            try:
                rss = self.proc.rss_pages(p) * self.proc.page_size
            except TierctlError:  # gone meanwhile
                continue
            if rss >= self.min_rss_bytes:
                sized.append((rss, p))
        sized.sort(reverse=True)
        if len(sized) > self.max_targets:
            self._health.notes.append(f"{len(sized)} targets: monitoring the {self.max_targets} largest only")
        return sorted(p for _, p in sized[: self.max_targets])

    def _begin(self, pids: list[int]) -> None:
        if not pids:
            self._session, self._pids, self._live = None, [], set()
            return
        specs = [KdamondSpec("vaddr", pid, attrs=self.attrs, min_accesses=1) for pid in pids]
        self.restore_leftovers()
        session = self.fs.create(specs, replace_idle=self.replace_idle, guard=self.knobs())
        try:
            session.start()
        except BaseException:
            session.teardown(quiet=True)
            raise
        self._session, self._pids, self._live = session, pids, set(range(len(pids)))
        self._next = 0
        self._sig, self._quiet, self._cgroups = {}, {}, {}

    def _end(self) -> None:
        session, self._session = self._session, None
        self._live = set()
        if session is not None:
            session.teardown()

    def drain(self) -> np.ndarray:
        if self._session is None:
            return empty_raw()
        self._calls += 1
        if self._calls % self._every:
            return empty_raw()  # throttled: this drain is skipped
        t0 = time.thread_time()
        n = len(self._pids)
        order = [(self._next + i) % n for i in range(n)]
        parts, budget, dropped = [], self.max_rows, 0
        started = time.monotonic()
        for k in order:
            if k not in self._live:
                continue
            if parts and time.monotonic() - started >= self.drain_s:
                break  # the rest next time
            self._next = (k + 1) % n
            pid = self._pids[k]
            try:
                self._session.update_regions(k)
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

    def throttle(self) -> bool:
        """Halve the rate (the watchdog's resort before detaching): read the regions every other
        drain, up to one drain in 8; False when already there."""
        if self._every >= MAX_EVERY:
            return False
        self._every *= 2
        self._health.notes.append(f"rate lowered: regions read every {self._every} drains")
        return True

    def stop(self) -> None:
        self._end()

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
                total += self.proc.cpu_ticks(kpid)
            except TierctlError:
                continue
        return total / os.sysconf("SC_CLK_TCK")

    # -- one target -------------------------------------------------------------------------------
    def _cgroup_of(self, pid: int) -> int:
        if pid not in self._cgroups:  # a move to another cgroup shows at the next retarget
            self._cgroups[pid] = self.resolver.cgroup_id(pid)
        return self._cgroups[pid]

    def _rows(self, k: int, pid: int, budget: int) -> tuple[np.ndarray, int]:
        assert self._session is not None
        regions = self._session.read_regions(k)
        sig = hot_buckets(regions, self.proc.page_size)
        quiet, seen = self._quiet.get(k, 0), self._sig.get(k)
        if quiet + 1 < self.keepalive and not new_buckets(seen, sig, self.change_share):
            # the same places are hot (or fewer): nothing new to say this time
            self._quiet[k] = quiet + 1
            self._sig[k] = np.union1d(seen, sig) if seen is not None else sig
            return empty_raw(), 0
        self._sig[k], self._quiet[k] = sig, 0
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
            cgroup=self._cgroup_of(pid),
            flags=int(SampleFlag.DAMON),
        )
        return rows, dropped
