"""What kinds of memory a cgroup uses, and its memory events: typed views over CgroupFS's files.

``MemStat(cgroupfs)`` reads, for one cgroup path (CgroupFS's convention: "" is the root):

- ``memory_by_kind(path)``: anon, file, shmem, kernel (and slab), sock, zswap, swap, dirty, writeback
  and workingset refaults, from v2 memory.stat (+ memory.swap.current), or v1 memory.stat ``total_*``
  (+ memory.memsw/kmem usage files where the kernel has them);
- ``memory_events(path, local=False)``: low/high/max/oom/oom_kill/oom_group_kill of v2 memory.events
  (memory.events.local with ``local=True``), or v1 memory.oom_control (under_oom, oom_kill);
- ``memory_by_node(path)``: bytes per node and kind, from CgroupFS.numa_stat (memory.numa_stat).

Every figure is bytes except the refault counters (events: pages refaulted). A field is None when
this kernel or layout does not provide it (v1 has no zswap nor slab figures; a kernel without swap
accounting has no memory.swap.current; refaults are split anon/file since 5.9). A missing file the
method needs is UnavailableError naming the file; parse errors are KernelError ``file:line``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tierctl.errors import KernelError, UnavailableError
from tierctl.kernel import cgroup_files as files
from tierctl.kernel.cgroupfs import NUMA_STAT_EVENT_PREFIXES, CgroupFS

# v2 memory.stat rows that make up "kernel" on kernels that do not print it (before 5.18/6.0)
_V2_KERNEL_PARTS = ("kernel_stack", "pagetables", "sec_pagetables", "percpu", "vmalloc")
_V2_EVENT_KEYS = ("low", "high", "max", "oom", "oom_kill", "oom_group_kill")


@dataclass(frozen=True)
class MemoryByKind:
    """A cgroup's memory (itself and descendants) by kind, in bytes; None = not provided here.

    ``file`` includes ``shmem`` (tmpfs, shared anonymous mappings: swap-backed, not droppable);
    ``kernel`` includes ``slab``; ``zswap`` is the compressed size in the zswap pool, ``swap`` what
    is on swap devices (v2 memory.swap.current). Refaults count pages since the cgroup was created.
    """

    anon: int
    file: int
    shmem: int | None
    kernel: int | None
    slab: int | None
    sock: int | None
    zswap: int | None
    swap: int | None
    dirty: int | None
    writeback: int | None
    refault_anon: int | None
    refault_file: int | None

    @property
    def refaults(self) -> int | None:
        """All workingset refaults (anon + file; the pre-5.9 single counter)."""
        parts = [x for x in (self.refault_anon, self.refault_file) if x is not None]
        return sum(parts) if parts else None


@dataclass(frozen=True)
class MemoryEvents:
    """Memory event counters since the cgroup was created (v2 memory.events[.local]).

    low/high/max: times usage was reclaimed under memory.low protection / went over memory.high /
    hit memory.max; oom: times the limit was hit and reclaim failed; oom_kill: processes the OOM
    killer killed; oom_group_kill: group kills (memory.oom.group). On v1 only ``oom_kill`` (if the
    kernel prints it) and ``under_oom`` (memory.oom_control: the cgroup is in OOM right now) exist.
    """

    low: int | None
    high: int | None
    max: int | None
    oom: int | None
    oom_kill: int | None
    oom_group_kill: int | None
    under_oom: bool | None = None
    local: bool = False


class MemStat:
    """Typed memory facts of the cgroups below ``cgroupfs.root`` (any layout with memory)."""

    def __init__(self, cgroupfs: CgroupFS) -> None:
        self.fs = cgroupfs

    def memory_by_kind(self, path: str) -> MemoryByKind:
        """Memory of the cgroup by kind (bytes; refaults in pages). The v2 root has no
        memory.swap.current (swap None); v1 figures are the hierarchical ``total_*`` rows."""
        stat = self.fs.memory_stat(path)
        return self._v2_kinds(path, stat) if self.fs.v2 else self._v1_kinds(path, stat)

    def memory_events(self, path: str, *, local: bool = False) -> MemoryEvents:
        """Event counters of the cgroup: v2 memory.events (including descendants) or, with
        ``local``, memory.events.local (the cgroup itself); v1 memory.oom_control. The root cgroup
        has no memory.events on v2 (UnavailableError)."""
        d = self.fs.memory_dir(path)
        if not self.fs.v2:
            if local:
                raise UnavailableError("cgroup v1 has no memory.events.local", str(d / "memory.events.local"))
            f = d / "memory.oom_control"
            vals = self._pairs(f)
            if "under_oom" not in vals:
                raise KernelError("no 'under_oom' line", str(f))
            return MemoryEvents(
                None, None, None, None, vals.get("oom_kill"), None, under_oom=bool(vals["under_oom"])
            )
        f = d / ("memory.events.local" if local else "memory.events")
        vals = self._pairs(f)
        missing = [k for k in ("max", "oom", "oom_kill") if k not in vals]
        if missing:
            raise KernelError(f"no {', '.join(missing)} line(s)", str(f))
        return MemoryEvents(*(vals.get(k) for k in _V2_EVENT_KEYS), local=local)

    def memory_by_node(self, path: str) -> dict[int, dict[str, int]]:
        """``{node: {kind: bytes}}`` from memory.numa_stat: every byte row (anon, file, shmem,
        file_dirty, slab, ... on v2; v1's hierarchical_* rows under their short names: anon, file,
        unevictable, total). Event rows (workingset_*, pgdemote_*, pgpromote_*) are left out."""
        stat = self.fs.numa_stat(path)
        out: dict[int, dict[str, int]] = {}
        for key, nodes in stat.items():
            if self.fs.v2:
                if key.startswith(NUMA_STAT_EVENT_PREFIXES):
                    continue
                kind = key
            elif key.startswith("hierarchical_"):
                kind = key.removeprefix("hierarchical_")
            else:
                continue
            for node, value in nodes.items():
                out.setdefault(node, {})[kind] = value
        return dict(sorted(out.items()))

    # -- plumbing -------------------------------------------------------------------------------
    def _v2_kinds(self, path: str, st: dict[str, int]) -> MemoryByKind:
        f = self.fs.memory_dir(path) / "memory.stat"
        _need(st, ("anon", "file"), str(f))
        slab = st.get("slab")
        if slab is None and "slab_reclaimable" in st:
            slab = st["slab_reclaimable"] + st.get("slab_unreclaimable", 0)
        kernel = st.get("kernel")
        if kernel is None:
            parts = [st[k] for k in _V2_KERNEL_PARTS if k in st] + ([slab] if slab is not None else [])
            kernel = sum(parts) if parts else None
        refault_anon = st.get("workingset_refault_anon")
        refault_file = st.get("workingset_refault_file", st.get("workingset_refault"))
        return MemoryByKind(
            anon=st["anon"],
            file=st["file"],
            shmem=st.get("shmem"),
            kernel=kernel,
            slab=slab,
            sock=st.get("sock"),
            zswap=st.get("zswap"),
            swap=self._swap_current(path),
            dirty=st.get("file_dirty"),
            writeback=st.get("file_writeback"),
            refault_anon=refault_anon,
            refault_file=refault_file,
        )

    def _v1_kinds(self, path: str, st: dict[str, int]) -> MemoryByKind:
        d = self.fs.memory_dir(path)

        def get(key: str) -> int | None:
            return st.get(f"total_{key}", st.get(key))

        anon, file = get("rss"), get("cache")
        if anon is None or file is None:
            raise KernelError("no 'rss'/'cache' (or total_*) rows", str(d / "memory.stat"))
        swap = get("swap")  # present when swap accounting (memsw) is on
        return MemoryByKind(
            anon=anon,
            file=file,
            shmem=get("shmem"),
            kernel=self._opt_int(d / "memory.kmem.usage_in_bytes"),
            slab=None,
            sock=self._opt_int(d / "memory.kmem.tcp.usage_in_bytes"),
            zswap=None,
            swap=swap,
            dirty=get("dirty"),
            writeback=get("writeback"),
            refault_anon=get("workingset_refault_anon"),
            refault_file=get("workingset_refault_file")
            if "workingset_refault_file" in st
            else get("workingset_refault"),
        )

    def _swap_current(self, path: str) -> int | None:
        d = self.fs.memory_dir(path)
        return self._opt_int(d / "memory.swap.current")

    def _opt_int(self, f: Path) -> int | None:
        text = files.read_opt(f)
        return None if text is None else files.read_int(f, text.strip())

    def _pairs(self, f: Path) -> dict[str, int]:
        out: dict[str, int] = {}
        for no, line in enumerate(files.read(f).splitlines(), start=1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2 or not parts[1].isdigit():
                raise KernelError(f"not a 'name count' line: {line!r}", f"{f}:{no}")
            out[parts[0]] = int(parts[1])
        if not out:
            raise KernelError("empty file", str(f))
        return out


def _need(st: dict[str, int], keys: tuple[str, ...], where: str) -> None:
    missing = [k for k in keys if k not in st]
    if missing:
        raise KernelError(f"no {', '.join(repr(k) for k in missing)} row(s)", where)
