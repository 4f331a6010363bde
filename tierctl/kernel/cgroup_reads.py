"""What CgroupFS reads from the memory and cpuset cgroup files: discovery (one walk), memory.current/
max/stat/numa_stat, PSI, cpuset.mems. ``CgroupReads`` is CgroupFS's base (``tierctl.kernel.cgroupfs``):
use CgroupFS, whose docstring has the path and error rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tierctl.errors import InputError, KernelError, UnavailableError
from tierctl.kernel import cgroup_files as files
from tierctl.kernel.cgroup_base import CgroupBase
from tierctl.kernel.cgroup_files import norm as _norm
from tierctl.kernel.cgroup_files import procs
from tierctl.kernel.cgroup_tree import cgroup_id, walk
from tierctl.kernel.idlist import parse_list

NUMA_STAT_EVENT_PREFIXES: tuple[str, ...] = ("workingset_", "pgdemote_", "pgpromote_")
"""v2 memory.numa_stat rows that count events or pages (not bytes), as the kernel's
memcg_page_state_output_unit() exports them."""


@dataclass(frozen=True)
class PressureLine:
    """One PSI line: percent of wall time stalled, averaged over 10/60/300 s, and total stall time."""

    avg10: float
    avg60: float
    avg300: float
    total_us: int


@dataclass(frozen=True)
class Pressure:
    """Memory pressure (PSI). ``some``: some task stalled on memory; ``full``: all non-idle tasks did.

    A field is None when the kernel does not provide it: cgroup v1 has no per-cgroup PSI, and a
    kernel without PSI (CONFIG_PSI off or ``psi=0``) has no pressure files at all.
    """

    some: PressureLine | None
    full: PressureLine | None


_V1_UNLIMITED_MIN = (1 << 63) - (1 << 16)  # v1 prints PAGE_COUNTER_MAX * PAGE_SIZE for "no limit"


def parse_pressure(text: str, where: str) -> Pressure:
    """The text of a PSI file (``some avg10=.. avg60=.. avg300=.. total=..`` and an optional ``full``
    line); KernelError with ``where`` = ``where:line`` when a line does not parse, or the text is empty."""
    lines: dict[str, PressureLine] = {}
    for no, line in files.lines(text):
        kind, *fields = line.split()
        vals = dict(x.partition("=")[::2] for x in fields)
        try:
            lines[kind] = PressureLine(
                float(vals["avg10"]), float(vals["avg60"]), float(vals["avg300"]), int(vals["total"])
            )
        except (KeyError, ValueError):
            raise KernelError(f"not a PSI line: {line!r}", f"{where}:{no}") from None
        if kind not in ("some", "full"):
            raise KernelError(f"unknown PSI line kind {kind!r}", f"{where}:{no}")
    if not lines:
        raise KernelError("empty file", where)
    return Pressure(lines.get("some"), lines.get("full"))


class CgroupReads(CgroupBase):
    """The readers of CgroupFS; every path is a cgroup path as CgroupFS takes them."""

    # -- discovery ------------------------------------------------------------------------------
    def list(self, under: str = "") -> list[str]:
        """``under`` and every cgroup below it in the memory hierarchy, sorted (parents first, siblings
        by name): one ``cgroup_tree.walk``. A cgroup that cannot be listed (unreadable, removed
        meanwhile) is listed without its children; [] when ``under`` vanishes while it is walked."""
        top = self.memory_dir(under)
        rel = _norm(under)
        if not rel:
            return [r for r, _ in walk(top)]
        return [f"{rel}/{r}" if r else rel for r, _ in walk(top)]

    def exists(self, path: str) -> bool:
        """Whether cgroup ``path`` exists (in the memory hierarchy on hybrid hosts)."""
        try:
            self.memory_dir(path)
        except InputError:
            return False
        return True

    def cgroup_id(self, path: str) -> int:
        """The cgroup's v2 id (its directory's inode: what bpf_get_current_cgroup_id returns); 0 on a
        layout without a unified memory hierarchy, where no id names the memory cgroup."""
        if not self.v2:
            return 0
        return cgroup_id(self.memory_dir(path))

    def has_memory(self, path: str) -> bool:
        """Whether the cgroup has memory accounting files (v2: the memory controller is enabled)."""
        d = self.memory_dir(path)
        if not self.v2 or not _norm(path):
            return True
        return (d / "memory.current").exists()

    def pids(self, path: str) -> list[int]:
        """Processes in the cgroup itself (not its descendants), from cgroup.procs (``procs``, strict)."""
        return procs(self.memory_dir(path) / "cgroup.procs", strict=True)

    # -- memory ---------------------------------------------------------------------------------
    def memory_current(self, path: str) -> int:
        """Bytes charged to the cgroup and its descendants: v2 memory.current, v1 memory.usage_in_bytes.

        The v2 root cgroup has no memory.current: UnavailableError (use numa_stat("") or /proc/meminfo).
        """
        d = self.memory_dir(path)
        if self.v2 and not _norm(path):
            raise UnavailableError("the cgroup v2 root has no memory.current", str(d))
        return files.read_int(d / ("memory.current" if self.v2 else "memory.usage_in_bytes"))

    def memory_max(self, path: str) -> int | None:
        """The hard limit in bytes (v2 memory.max, v1 memory.limit_in_bytes); None = no limit ("max").

        The root cgroup is never limited (None).
        """
        d = self.memory_dir(path)
        if not _norm(path):
            return None
        if self.v2:
            text = files.one_line(d / "memory.max")
            return None if text == "max" else files.read_int(d / "memory.max", text)
        value = files.read_int(d / "memory.limit_in_bytes")
        return None if value >= _V1_UNLIMITED_MIN else value

    def memory_stat(self, path: str) -> dict[str, int]:
        """memory.stat as read: v2 sizes in bytes, v1 sizes in bytes (``total_*`` = hierarchical);
        event counters (pgfault, pgdemote_*, workingset_*, thp_*, ...) are counts on both."""
        f = self.memory_dir(path) / "memory.stat"
        out: dict[str, int] = {}
        for no, line in files.lines(files.read(f)):
            parts = line.split()
            if len(parts) != 2 or not files.is_int(parts[1]):
                raise KernelError(f"not a 'name value' line: {line!r}", f"{f}:{no}")
            out[parts[0]] = int(parts[1])
        return out

    def numa_stat(self, path: str) -> dict[str, dict[int, int]]:
        """Per-node memory of the cgroup: ``{"anon": {0: bytes, 1: bytes}, "file": {...}, ...}``.

        v2 memory.numa_stat lines are ``anon N0=<bytes> N1=<bytes>`` and are returned as read: bytes,
        except the NUMA_STAT_EVENT_PREFIXES rows (workingset_*, pgdemote_*, pgpromote_success), which
        count events/pages. v1 lines are ``anon=<pages> N0=<pages>`` (plus ``total``, ``file``,
        ``unevictable`` and ``hierarchical_*``) in PAGES: they are converted to bytes with
        ``page_size``, and the leading total (the sum over nodes) is dropped. v2 rows include
        descendants; v1 rows count the cgroup's own pages except the ``hierarchical_*`` ones.
        """
        f = self.memory_dir(path) / "memory.numa_stat"
        out: dict[str, dict[int, int]] = {}
        for no, line in files.lines(files.read(f)):
            where = f"{f}:{no}"
            head, *cols = line.split()
            if self.v2:
                key, unit = head, 1
            else:
                key, eq, total = head.partition("=")
                if not eq or not total.isdigit():
                    raise KernelError(f"not a 'name=pages N0=pages' line: {line!r}", where)
                unit = self.page_size
            nodes: dict[int, int] = {}
            for col in cols:
                name, eq, value = col.partition("=")
                if not eq or name[:1] != "N" or not name[1:].isdigit() or not value.isdigit():
                    raise KernelError(f"not an N<node>=<value> field: {col!r}", where)
                nodes[int(name[1:])] = int(value) * unit
            out[key] = nodes
        return out

    def node_memory(self, path: str) -> dict[int, int]:
        """Bytes of anonymous + file memory per node, descendants included.

        v2: ``anon`` + ``file`` of memory.numa_stat (v2 statistics are always hierarchical).
        v1: ``hierarchical_anon`` + ``hierarchical_file`` (v1's ``anon``/``file`` rows count the
        cgroup's own pages only), so the figures add up like memory_current().
        """
        stat = self.numa_stat(path)
        keys = ("anon", "file") if self.v2 else ("hierarchical_anon", "hierarchical_file")
        out: dict[int, int] = {}
        for key in keys:
            if key not in stat:
                raise KernelError(f"no {key!r} row", str(self.memory_dir(path) / "memory.numa_stat"))
            for node, value in stat[key].items():
                out[node] = out.get(node, 0) + value
        return out

    def pressure(self, path: str) -> Pressure:
        """Memory pressure of the cgroup: v2 memory.pressure; v1 has none (both fields None).

        For the root cgroup ("") the system-wide ``<proc_root>/pressure/memory`` is read on every
        layout. Averages are percent of wall time; totals are microseconds.
        """
        d = self.memory_dir(path)
        if not _norm(path):
            f = self.proc_root / "pressure" / "memory"
        elif self.v2:
            f = d / "memory.pressure"
        else:
            return Pressure(None, None)
        text = files.read_opt(f)  # absent: no PSI (CONFIG_PSI off); EOPNOTSUPP: psi=0
        return Pressure(None, None) if text is None else parse_pressure(text, str(f))

    # -- cpuset ---------------------------------------------------------------------------------
    def cpuset_mems(self, path: str) -> tuple[int, ...]:
        """Nodes the cgroup is restricted to (v2 cpuset.mems, v1 ``root/cpuset/<path>/cpuset.mems``).

        Empty: no restriction set here (v2: the parent's effective nodes apply; v1: no task may
        join). The v2 root has no cpuset.mems and is never restricted: ().
        """
        d = self._dir(self.cpuset_root, path)
        if self.v2 and not _norm(path):
            return ()
        return _parse_nodes(files.read(d / "cpuset.mems"), d / "cpuset.mems")

    def effective_mems(self, path: str) -> tuple[int, ...]:
        """Nodes the cgroup's tasks may allocate on: v2 cpuset.mems.effective, v1 cpuset.effective_mems."""
        d = self._dir(self.cpuset_root, path)
        f = d / ("cpuset.mems.effective" if self.v2 else "cpuset.effective_mems")
        return _parse_nodes(files.read(f), f)


def _parse_nodes(text: str, f: Path) -> tuple[int, ...]:
    return tuple(parse_list(text, f"{f}:1"))
