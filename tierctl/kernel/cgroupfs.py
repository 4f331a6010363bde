"""Reader (and a few writers) for the memory and cpuset cgroup files, v2 or v1.

``CgroupFS(root)`` works below ``root`` (``/sys/fs/cgroup``) and detects the layout once:

- ``UNIFIED``: cgroup v2 at ``root`` with the memory controller (``root/cgroup.controllers``).
- ``HYBRID``: the memory controller on a v1 hierarchy at ``root/memory`` while v2 is mounted too
  (at ``root/unified``, as systemd's hybrid mode does, or at ``root`` without memory).
- ``LEGACY``: v1 only (``root/memory``, no v2 anywhere under ``root``).
- ``NONE``: no memory controller; every method but ``layout`` raises UnavailableError.

Cgroup paths are relative to the hierarchy, "/"-separated, "" for the root; a leading or trailing
"/" is accepted (so /proc/PID/cgroup paths work). On v1 they name cgroups of the memory hierarchy,
and the cpuset methods use the same path in the cpuset hierarchy (``root/cpuset``).

Errors: a path with "." / ".." parts or naming no cgroup is InputError; EACCES/EPERM is
PermissionDeniedError; a file that does not parse is KernelError with ``where`` = ``file:line``;
other failed writes are KernelError naming the file. Units are in each method's docstring and
in docs/kernel-procfs-cgroupfs.md.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from tierctl.errors import (
    InputError,
    KernelError,
    NoSuchProcessError,
    PermissionDeniedError,
    TierctlError,
    UnavailableError,
)
from tierctl.kernel.idlist import format_list, parse_list
from tierctl.kernel.procfs import LIVE_PROC, Pid, ProcFS
from tierctl.kernel.roots import LIVE_CGROUP

CGROUP_ROOT = LIVE_CGROUP


class Layout(Enum):
    UNIFIED = "unified"
    HYBRID = "hybrid"
    LEGACY = "legacy"
    NONE = "none"


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
    for no, line in _lines(text):
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


class ReclaimIncompleteError(KernelError):
    """memory.reclaim answered EAGAIN: the kernel reclaimed less than asked (how much is not reported)."""


class CgroupFS:
    """The memory and cpuset files of every cgroup below ``root``.

    ``proc_root`` is where the root cgroup's pressure is read (``/proc/pressure/memory``);
    ``page_size`` converts v1 memory.numa_stat pages into bytes (default: this machine's).
    """

    def __init__(
        self,
        root: Path = CGROUP_ROOT,
        *,
        proc_root: Path = LIVE_PROC,
        page_size: int | None = None,
    ) -> None:
        self.root = Path(root)
        self.proc_root = Path(proc_root)
        self.page_size = page_size if page_size is not None else os.sysconf("SC_PAGE_SIZE")
        if self.page_size <= 0:
            raise InputError(f"must be > 0, got {self.page_size}", "page_size")
        self.layout = self._detect()

    @property
    def v2(self) -> bool:
        return self.layout is Layout.UNIFIED

    @property
    def memory_root(self) -> Path:
        """Directory of the root cgroup of the memory hierarchy."""
        self._need_memory()
        return self.root if self.v2 else self.root / "memory"

    @property
    def cpuset_root(self) -> Path:
        """Directory of the root cgroup of the cpuset hierarchy (v1: ``root/cpuset``)."""
        self._need_memory()
        return self.root if self.v2 else self.root / "cpuset"

    # -- discovery ------------------------------------------------------------------------------
    def list(self, under: str = "") -> list[str]:
        """``under`` and every cgroup below it in the memory hierarchy, sorted (parents first)."""
        base = self.memory_root
        top = self._dir(base, under)
        out = [_norm(under)]
        for dirpath, dirnames, _ in os.walk(top, followlinks=False):
            dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]
            rel = os.path.relpath(dirpath, base)
            out.extend(d if rel == "." else f"{rel}/{d}" for d in dirnames)
        return sorted(out, key=lambda p: p.split("/"))

    def exists(self, path: str) -> bool:
        """Whether cgroup ``path`` exists (in the memory hierarchy on hybrid hosts)."""
        try:
            self._dir(self.memory_root, path)
        except InputError:
            return False
        return True

    def cgroup_id(self, path: str) -> int:
        """The cgroup's v2 id (its directory's inode: what bpf_get_current_cgroup_id returns); 0 on a
        layout without a unified memory hierarchy, where no id names the memory cgroup."""
        if not self.v2:
            return 0
        return cgroup_id(self._dir(self.memory_root, path))

    def has_memory(self, path: str) -> bool:
        """Whether the cgroup has memory accounting files (v2: the memory controller is enabled)."""
        d = self._dir(self.memory_root, path)
        if not self.v2 or not _norm(path):
            return True
        return (d / "memory.current").exists()

    def pids(self, path: str) -> list[int]:
        """Processes in the cgroup itself (not its descendants), from cgroup.procs."""
        f = self._dir(self.memory_root, path) / "cgroup.procs"
        out = []
        for no, line in _lines(self._read(f)):
            if not line.isdigit():
                raise KernelError(f"not a pid: {line!r}", f"{f}:{no}")
            out.append(int(line))
        return out

    # -- memory ---------------------------------------------------------------------------------
    def memory_current(self, path: str) -> int:
        """Bytes charged to the cgroup and its descendants: v2 memory.current, v1 memory.usage_in_bytes.

        The v2 root cgroup has no memory.current: UnavailableError (use numa_stat("") or /proc/meminfo).
        """
        d = self._dir(self.memory_root, path)
        if self.v2 and not _norm(path):
            raise UnavailableError("the cgroup v2 root has no memory.current", str(d))
        return self._int(d / ("memory.current" if self.v2 else "memory.usage_in_bytes"))

    def memory_max(self, path: str) -> int | None:
        """The hard limit in bytes (v2 memory.max, v1 memory.limit_in_bytes); None = no limit ("max").

        The root cgroup is never limited (None).
        """
        d = self._dir(self.memory_root, path)
        if not _norm(path):
            return None
        if self.v2:
            text = self._one_line(d / "memory.max")
            return None if text == "max" else self._int(d / "memory.max", text)
        value = self._int(d / "memory.limit_in_bytes")
        return None if value >= _V1_UNLIMITED_MIN else value

    def memory_stat(self, path: str) -> dict[str, int]:
        """memory.stat as read: v2 sizes in bytes, v1 sizes in bytes (``total_*`` = hierarchical);
        event counters (pgfault, pgdemote_*, workingset_*, thp_*, ...) are counts on both."""
        f = self._dir(self.memory_root, path) / "memory.stat"
        out: dict[str, int] = {}
        for no, line in _lines(self._read(f)):
            parts = line.split()
            if len(parts) != 2 or not _is_int(parts[1]):
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
        f = self._dir(self.memory_root, path) / "memory.numa_stat"
        out: dict[str, dict[int, int]] = {}
        for no, line in _lines(self._read(f)):
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
                raise KernelError(
                    f"no {key!r} row", str(self._dir(self.memory_root, path) / "memory.numa_stat")
                )
            for node, value in stat[key].items():
                out[node] = out.get(node, 0) + value
        return out

    def pressure(self, path: str) -> Pressure:
        """Memory pressure of the cgroup: v2 memory.pressure; v1 has none (both fields None).

        For the root cgroup ("") the system-wide ``<proc_root>/pressure/memory`` is read on every
        layout. Averages are percent of wall time; totals are microseconds.
        """
        d = self._dir(self.memory_root, path)
        if not _norm(path):
            f = self.proc_root / "pressure" / "memory"
        elif self.v2:
            f = d / "memory.pressure"
        else:
            return Pressure(None, None)
        text = self._read_opt(f)  # absent: no PSI (CONFIG_PSI off); EOPNOTSUPP: psi=0
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
        return _parse_nodes(self._read(d / "cpuset.mems"), d / "cpuset.mems")

    def effective_mems(self, path: str) -> tuple[int, ...]:
        """Nodes the cgroup's tasks may allocate on: v2 cpuset.mems.effective, v1 cpuset.effective_mems."""
        d = self._dir(self.cpuset_root, path)
        f = d / ("cpuset.mems.effective" if self.v2 else "cpuset.effective_mems")
        return _parse_nodes(self._read(f), f)

    def set_cpuset_mems(self, path: str, nodes: Iterable[int]) -> None:
        """Write the cgroup's cpuset.mems ("0-1,3"); an empty list resets it (v2: inherit).

        Needs root (or a delegated cgroup). The kernel refuses nodes outside the parent's
        effective set (EINVAL, KernelError).
        """
        d = self._dir(self.cpuset_root, path)
        if not _norm(path):
            raise InputError("the root cgroup's cpuset.mems cannot be set", "/")
        text = format_nodes(nodes)
        self._write(d / "cpuset.mems", text or "\n")

    # -- actuators -----------------------------------------------------------------------------
    def reclaim(self, path: str, nbytes: int, swappiness: int | None = None) -> None:
        """Proactive reclaim: write ``<nbytes> [swappiness=<0..200>]`` to v2 memory.reclaim (kernel 5.19+;
        the root cgroup has one too: global reclaim). Nothing is throttled; the kernel reclaims from the
        cgroup and its descendants in the writer's context and may over- or under-reclaim.

        With demotion enabled (/sys/kernel/mm/numa/demotion_enabled) pages of a faster node are first
        demoted to its demotion target; on 6.12 demoted pages count toward ``nbytes`` although they stay
        charged (docs/pressure-sensing.md). ``swappiness`` (accepted by 6.12; not "max") weighs anon
        against file pages for this request only. ReclaimIncompleteError (KernelError) when the kernel
        reclaimed less than ``nbytes`` (EAGAIN); how much it did is not reported either way: re-read
        memory_current(). UnavailableError on cgroup v1 or when the file is missing.
        """
        if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes < 1:
            raise InputError(f"must be an int >= 1 (bytes), got {nbytes!r}", "nbytes")
        if swappiness is not None and (
            isinstance(swappiness, bool) or not isinstance(swappiness, int) or not 0 <= swappiness <= 200
        ):
            raise InputError(f"must be an int 0..200, got {swappiness!r}", "swappiness")
        d = self._dir(self.memory_root, path)
        f = d / "memory.reclaim"
        if not self.v2:
            raise UnavailableError(f"cgroup v1 ({self.layout.value}) has no memory.reclaim", str(f))
        text = str(nbytes) if swappiness is None else f"{nbytes} swappiness={swappiness}"
        try:
            self._write_raw(f, text)
        except OSError as e:
            if e.errno == errno.EAGAIN:
                raise ReclaimIncompleteError(
                    f"reclaimed less than {nbytes} bytes (re-read memory.current)", str(f)
                ) from None
            if e.errno == errno.ENOENT:
                raise UnavailableError(
                    "no memory.reclaim (kernel < 5.19, or the memory controller is not enabled)", str(f)
                ) from None
            if e.errno == errno.EINVAL and swappiness is not None:
                raise KernelError(f"the kernel refused {text!r} (older than swappiness=?)", str(f)) from None
            raise _write_error(e, f, f"writing {text!r} to memory.reclaim") from None

    def kill(self, path: str) -> None:
        """Kill every process of the cgroup and its descendants at once: writes "1" to v2 cgroup.kill
        (kernel 5.14+). The cgroup is empty once cgroup.events says ``populated 0``.

        InputError for the root cgroup, any ``init.scope``, a path outside the hierarchy (also through
        a symlink) and the cgroup this process runs in or below; UnavailableError on v1 or when the
        kernel has no cgroup.kill.
        """
        rel = _norm(path)
        if not rel:
            raise InputError("refusing to kill the root cgroup", "/")
        if "init.scope" in rel.split("/"):
            raise InputError("refusing to kill init.scope", path)
        d = self._dir(self.memory_root, rel)
        if not os.path.realpath(d).startswith(os.path.realpath(self.memory_root) + os.sep):
            raise InputError("refusing a cgroup outside the hierarchy", str(d))
        f = d / "cgroup.kill"
        if not self.v2:
            raise UnavailableError(f"cgroup v1 ({self.layout.value}) has no cgroup.kill", str(f))
        own = self._own_cgroup()
        if own is not None and (own == rel or own.startswith(rel + "/")):
            raise InputError(f"refusing to kill the cgroup this process runs in (/{own})", path)
        try:
            self._write_raw(f, "1")
        except OSError as e:
            if e.errno == errno.ENOENT:
                raise UnavailableError("no cgroup.kill (kernel < 5.14)", str(f)) from None
            raise _write_error(e, f, "writing '1' to cgroup.kill") from None

    def _own_cgroup(self) -> str | None:
        try:
            own = ProcFS(self.proc_root).cgroup_v2_path("self")
        except TierctlError:
            return None
        return None if own is None else own.strip("/")

    # -- test / ops helpers ---------------------------------------------------------------------
    def create(self, path: str, *, exist_ok: bool = False) -> None:
        """mkdir a cgroup in the memory hierarchy (its parent must exist)."""
        rel = _norm(path)
        if not rel:
            raise InputError("the root cgroup always exists", "/")
        parent, _, name = rel.rpartition("/")
        target = self._dir(self.memory_root, parent) / name
        try:
            os.mkdir(target)
        except FileExistsError:
            if not exist_ok:
                raise InputError("cgroup exists already", str(target)) from None
        except OSError as e:
            raise _write_error(e, target, "creating a cgroup") from None

    def remove(self, path: str) -> None:
        """rmdir a cgroup; it must have no processes and no child cgroups (else KernelError)."""
        if not _norm(path):
            raise InputError("the root cgroup cannot be removed", "/")
        d = self._dir(self.memory_root, path)
        try:
            os.rmdir(d)
        except OSError as e:
            raise _write_error(e, d, "removing a cgroup") from None

    def attach(self, path: str, pid: int) -> None:
        """Move process ``pid`` (all its threads) into the cgroup: writes cgroup.procs."""
        if isinstance(pid, bool) or not isinstance(pid, int) or pid < 1:
            raise InputError(f"not a pid: {pid!r}", "pid")
        self._write(self._dir(self.memory_root, path) / "cgroup.procs", str(pid), pid=pid)

    def enable_controllers(self, path: str, controllers: Sequence[str] = ("memory", "cpuset")) -> None:
        """Make ``controllers`` available in cgroup ``path`` (v2 only).

        Writes "+memory +cpuset" (the missing ones) into cgroup.subtree_control of each ancestor
        that lacks them, root first. The kernel refuses (EBUSY) to enable a domain controller in
        a non-root cgroup that has processes ("no internal processes").
        """
        if not self.v2:
            raise UnavailableError(
                f"cgroup v1 ({self.layout.value}) has no cgroup.subtree_control: each controller "
                "has its own hierarchy",
                str(self.root),
            )
        for c in controllers:
            if not c or not c.replace("_", "").isalnum():
                raise InputError(f"not a controller name: {c!r}", "controllers")
        rel = _norm(path)
        self._dir(self.root, rel)
        parts = rel.split("/") if rel else []
        for depth in range(len(parts)):
            anc = self.root.joinpath(*parts[:depth])
            f = anc / "cgroup.subtree_control"
            have = set(self._read(f).split())
            missing = [c for c in controllers if c not in have]
            if missing:
                self._write(f, " ".join(f"+{c}" for c in missing))

    # -- plumbing -------------------------------------------------------------------------------
    def _detect(self) -> Layout:
        ctl = self.root / "cgroup.controllers"
        if ctl.is_file():
            text = self._read(ctl)
            if "memory" in text.split():
                return Layout.UNIFIED
        if (self.root / "memory" / "memory.usage_in_bytes").is_file():
            if ctl.is_file() or (self.root / "unified" / "cgroup.controllers").is_file():
                return Layout.HYBRID
            return Layout.LEGACY
        return Layout.NONE

    def _need_memory(self) -> None:
        if self.layout is Layout.NONE:
            raise UnavailableError("no memory cgroup controller (neither v2 nor v1)", str(self.root))

    def _dir(self, base: Path, path: str) -> Path:
        rel = _norm(path)
        d = base.joinpath(*rel.split("/")) if rel else base
        try:
            is_dir = d.is_dir()
        except OSError as e:  # ENAMETOOLONG, EACCES on a parent
            raise InputError(f"no such cgroup ({e.strerror or e})", str(d)[:300]) from None
        if not is_dir:
            raise InputError("no such cgroup", str(d))
        return d

    def _read(self, f: Path) -> str:
        text = self._read_opt(f)
        if text is None:
            raise UnavailableError("not provided (controller not enabled for this cgroup?)", str(f))
        return text

    def _read_opt(self, f: Path) -> str | None:
        """The file's text, or None when it is absent or the kernel does not support reading it."""
        try:
            with open(f, encoding="utf-8", errors="surrogateescape") as fh:
                return fh.read()
        except FileNotFoundError:
            return None
        except OSError as e:
            if e.errno == errno.EOPNOTSUPP:
                return None
            if e.errno in (errno.EACCES, errno.EPERM):
                raise PermissionDeniedError("permission denied: reading needs read access", str(f)) from None
            raise KernelError(f"cannot read: {e.strerror or e}", str(f)) from None

    def _one_line(self, f: Path) -> str:
        text = self._read(f).strip()
        if not text:
            raise KernelError("empty file", str(f))
        if "\n" in text:
            raise KernelError(f"expected one value, got {len(text.splitlines())} lines", f"{f}:2")
        return text

    def _int(self, f: Path, text: str | None = None) -> int:
        text = self._one_line(f) if text is None else text
        if not text.isdigit():
            raise KernelError(f"not a byte count: {text!r}", f"{f}:1")
        return int(text)

    def _write(self, f: Path, text: str, *, pid: int | None = None) -> None:
        try:
            self._write_raw(f, text)
        except OSError as e:
            if e.errno == errno.ESRCH and pid is not None:
                raise NoSuchProcessError(f"no process {pid}", str(pid)) from None
            raise _write_error(e, f, f"writing {text.strip()!r} to {f.name}") from None

    @staticmethod
    def _write_raw(f: Path, text: str) -> None:
        """One write(2) of ``text``; OSError (of open or write) is the caller's to map."""
        fd = os.open(f, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)


# --------------------------------------------------------------------------- the v2 hierarchy by id
def cgroup_id(directory: Path) -> int:
    """The v2 id of a cgroup directory: its inode number (what bpf_get_current_cgroup_id returns).
    InputError when there is no such directory, KernelError when it cannot be looked at."""
    try:
        return os.stat(directory).st_ino
    except (FileNotFoundError, NotADirectoryError):
        raise InputError("no such cgroup", str(directory)) from None
    except OSError as e:
        raise KernelError(f"cannot stat: {e.strerror}", str(directory)) from None


class CgroupTree:
    """The cgroup v2 hierarchy mounted at ``root``, seen through ids (directory inode numbers): the one
    walker, the id of a directory or of a process's cgroup, a directory by id, the processes of cgroups
    named by id. ``proc`` reads /proc/PID/cgroup. Used by the samplers, whose rows and targets name
    cgroups by id (v2 ids also on hybrid hosts, where the memory controller is v1)."""

    def __init__(self, root: Path, proc: ProcFS | None = None) -> None:
        self.root = Path(root)
        self.proc = proc if proc is not None else ProcFS()

    @classmethod
    def below(cls, cgroup_root: Path = CGROUP_ROOT, proc: ProcFS | None = None) -> CgroupTree | None:
        """The v2 hierarchy at ``cgroup_root`` itself, or at its ``unified`` folder (systemd's hybrid
        mode); None when neither holds one."""
        for cand in (cgroup_root, cgroup_root / "unified"):
            if (cand / "cgroup.controllers").is_file() or (
                cand != cgroup_root and (cand / "cgroup.procs").is_file()
            ):
                return cls(cand, proc)
        return None

    @classmethod
    def mounted(cls, proc: ProcFS | None = None) -> CgroupTree | None:
        """The v2 hierarchy this process sees mounted (from its mountinfo); None when there is none."""
        proc = proc if proc is not None else ProcFS()
        root = cgroup2_root(proc)
        return None if root is None else cls(root, proc)

    def walk(self, top: Path | None = None) -> Iterator[tuple[Path, int]]:
        """(directory, id) of ``top`` (default: the root) and every cgroup below it, depth first, parents
        before children, siblings by name. Directories that vanish or cannot be listed meanwhile are
        skipped; symlinks are not followed."""
        top = self.root if top is None else top
        try:
            stack = [(top, cgroup_id(top))]
        except TierctlError:
            return
        while stack:
            d, i = stack.pop()
            yield d, i
            try:
                with os.scandir(d) as it:
                    entries = sorted((e.name, e.inode()) for e in it if e.is_dir(follow_symlinks=False))
            except OSError:
                continue
            stack.extend((d / name, ino) for name, ino in reversed(entries))

    def path_of(self, cgid: int) -> Path | None:
        """The directory of cgroup id ``cgid``, None when no cgroup has it."""
        return next((d for d, i in self.walk() if i == cgid), None)

    def descendant_ids(self, cgid: int) -> list[int]:
        """``cgid`` and the id of every cgroup below it (just ``[cgid]`` when it is not found)."""
        top = self.path_of(cgid)
        return [cgid] if top is None else [i for _d, i in self.walk(top)]

    def pid_dir(self, pid: Pid) -> Path | None:
        """The process's v2 cgroup directory; None when unknown (no v2 line, the process gone)."""
        try:
            rel = self.proc.cgroup_v2_path(pid)
        except TierctlError:
            return None
        return None if rel is None else (self.root / rel if rel else self.root)

    def pid_id(self, pid: Pid) -> int | None:
        """The id of the process's v2 cgroup; None when unknown."""
        d = self.pid_dir(pid)
        try:
            return None if d is None else cgroup_id(d)
        except TierctlError:
            return None

    def pids(self, ids: Iterable[int]) -> list[int]:
        """Processes in the cgroups with these ids (each cgroup itself, not its descendants), sorted."""
        want = {int(i) for i in ids}
        out: set[int] = set()
        if want:
            for d, i in self.walk():
                if i in want:
                    out.update(procs(d / "cgroup.procs"))
        return sorted(out)


def procs(path: Path) -> list[int]:
    """The pids of a cgroup.procs file; [] when it cannot be read (the cgroup removed meanwhile)."""
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            return [int(x) for x in fh.read().split() if x.isdigit()]
    except OSError:
        return []


def cgroup2_root(proc: ProcFS | None = None) -> Path | None:
    """Mount point of the cgroup v2 hierarchy from mountinfo: /sys/fs/cgroup, or /sys/fs/cgroup/unified
    on hybrid hosts (the default place first, then the shortest path)."""
    proc = proc if proc is not None else ProcFS()
    found = [m.point for m in proc.mounts() if m.fstype == "cgroup2"]
    found.sort(key=lambda p: (p != CGROUP_ROOT, len(str(p))))
    return found[0] if found else None


def format_nodes(nodes: Iterable[int]) -> str:
    """Nodes as a kernel list: [0, 1, 3] -> "0-1,3"."""
    return format_list(nodes, "nodes")


def _parse_nodes(text: str, f: Path) -> tuple[int, ...]:
    return tuple(parse_list(text, f"{f}:1"))


def _norm(path: str) -> str:
    if not isinstance(path, str):
        raise InputError(f"not a cgroup path: {path!r}", "cgroup")
    rel = path.strip("/")
    if rel and any(p in ("", ".", "..") for p in rel.split("/")):
        raise InputError("cgroup paths may not contain '.', '..' or '//'", path)
    return rel


def _lines(text: str) -> list[tuple[int, str]]:
    return [(no, line.strip()) for no, line in enumerate(text.splitlines(), start=1) if line.strip()]


def _is_int(s: str) -> bool:
    return s.isdigit() or (s[:1] == "-" and s[1:].isdigit())


def _write_error(e: OSError, f: Path, what: str) -> TierctlError:
    if e.errno in (errno.EACCES, errno.EPERM):
        return PermissionDeniedError(
            f"permission denied: {what} needs root (or write access to a delegated cgroup)", str(f)
        )
    if e.errno == errno.ENOENT:
        return UnavailableError(f"{what}: no such file (controller not enabled?)", str(f))
    if e.errno == errno.EBUSY:
        return KernelError(f"{what}: busy (cgroup has processes or children)", str(f))
    return KernelError(f"{what}: {e.strerror or e}", str(f))
