"""Reader and writer of the memory and cpuset cgroup files, v2 or v1.

``CgroupFS(root)`` works below ``root`` (``/sys/fs/cgroup``) and detects the layout once (``Layout``):
``UNIFIED`` (v2 with memory), ``HYBRID`` (memory on v1 at ``root/memory``, v2 mounted too),
``LEGACY`` (v1 only) or ``NONE`` (no memory controller: every method but ``layout`` raises
UnavailableError).

Cgroup paths are relative to the hierarchy, "/"-separated, "" for the root; a leading or trailing
"/" is accepted (so /proc/PID/cgroup paths work). On v1 they name cgroups of the memory hierarchy,
and the cpuset methods use the same path in the cpuset hierarchy (``root/cpuset``).

Errors: a path with "." / ".." parts or naming no cgroup is InputError; EACCES/EPERM is
PermissionDeniedError; a file that does not parse is KernelError with ``where`` = ``file:line``;
other failed writes are KernelError naming the file. Units are in each method's docstring and
in docs/kernel-procfs-cgroupfs.md.

By concern: ``cgroup_files`` (path rules, reading/writing one file, cgroup.procs), ``cgroup_tree``
(the one walker, the v2 root, lookups by id), ``cgroup_base`` (layout, directories), ``cgroup_reads``
(the readers, PSI parsing). This module is CgroupFS: those readers plus every write tierctl makes into
a cgroup (cpuset.mems, memory.reclaim, cgroup.kill, mkdir/rmdir/attach, subtree_control), and the
names importers use from here.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable, Sequence

from tierctl.errors import InputError, KernelError, TierctlError, UnavailableError
from tierctl.kernel import cgroup_files as files
from tierctl.kernel.cgroup_base import Layout
from tierctl.kernel.cgroup_files import norm as _norm  # tierctl.kernel.psi imports it from here
from tierctl.kernel.cgroup_files import procs
from tierctl.kernel.cgroup_reads import (
    NUMA_STAT_EVENT_PREFIXES,
    CgroupReads,
    Pressure,
    PressureLine,
    parse_pressure,
)
from tierctl.kernel.cgroup_tree import CgroupTree, cgroup2_root, cgroup_id, v2_root, walk
from tierctl.kernel.idlist import format_list
from tierctl.kernel.procfs import ProcFS
from tierctl.kernel.roots import LIVE_CGROUP

__all__ = [
    "CGROUP_ROOT",
    "NUMA_STAT_EVENT_PREFIXES",
    "CgroupFS",
    "CgroupTree",
    "Layout",
    "Pressure",
    "PressureLine",
    "ReclaimIncompleteError",
    "cgroup2_root",
    "cgroup_id",
    "format_nodes",
    "parse_pressure",
    "procs",
    "v2_root",
    "walk",
]

CGROUP_ROOT = LIVE_CGROUP


class ReclaimIncompleteError(KernelError):
    """memory.reclaim answered EAGAIN: the kernel reclaimed less than asked (how much is not reported)."""


def format_nodes(nodes: Iterable[int]) -> str:
    """Nodes as a kernel list: [0, 1, 3] -> "0-1,3"."""
    return format_list(nodes, "nodes")


class CgroupFS(CgroupReads):
    """The memory and cpuset files of every cgroup below ``root``.

    ``proc_root`` is where the root cgroup's pressure is read (``/proc/pressure/memory``);
    ``page_size`` converts v1 memory.numa_stat pages into bytes (default: this machine's).
    The readers (list, pids, memory_*, numa_stat, pressure, cpuset_mems ...) are ``CgroupReads``'s;
    ``root``, ``layout``, ``v2``, ``memory_root``, ``cpuset_root``, ``memory_dir`` and ``tree`` are
    ``CgroupBase``'s.
    """

    # -- cpuset ---------------------------------------------------------------------------------
    def set_cpuset_mems(self, path: str, nodes: Iterable[int]) -> None:
        """Write the cgroup's cpuset.mems ("0-1,3"); an empty list resets it (v2: inherit).

        Needs root (or a delegated cgroup). The kernel refuses nodes outside the parent's
        effective set (EINVAL, KernelError).
        """
        d = self._dir(self.cpuset_root, path)
        if not _norm(path):
            raise InputError("the root cgroup's cpuset.mems cannot be set", "/")
        text = format_nodes(nodes)
        files.write(d / "cpuset.mems", text or "\n")

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
        f = self.memory_dir(path) / "memory.reclaim"
        if not self.v2:
            raise UnavailableError(f"cgroup v1 ({self.layout.value}) has no memory.reclaim", str(f))
        text = str(nbytes) if swappiness is None else f"{nbytes} swappiness={swappiness}"
        try:
            files.write_raw(f, text)
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
            raise files.write_error(e, f, f"writing {text!r} to memory.reclaim") from None

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
        d = self.memory_dir(rel)
        if not os.path.realpath(d).startswith(os.path.realpath(self.memory_root) + os.sep):
            raise InputError("refusing a cgroup outside the hierarchy", str(d))
        f = d / "cgroup.kill"
        if not self.v2:
            raise UnavailableError(f"cgroup v1 ({self.layout.value}) has no cgroup.kill", str(f))
        own = self._own_cgroup()
        if own is not None and (own == rel or own.startswith(rel + "/")):
            raise InputError(f"refusing to kill the cgroup this process runs in (/{own})", path)
        try:
            files.write_raw(f, "1")
        except OSError as e:
            if e.errno == errno.ENOENT:
                raise UnavailableError("no cgroup.kill (kernel < 5.14)", str(f)) from None
            raise files.write_error(e, f, "writing '1' to cgroup.kill") from None

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
        target = self.memory_dir(parent) / name
        try:
            os.mkdir(target)
        except FileExistsError:
            if not exist_ok:
                raise InputError("cgroup exists already", str(target)) from None
        except OSError as e:
            raise files.write_error(e, target, "creating a cgroup") from None

    def remove(self, path: str) -> None:
        """rmdir a cgroup; it must have no processes and no child cgroups (else KernelError)."""
        if not _norm(path):
            raise InputError("the root cgroup cannot be removed", "/")
        d = self.memory_dir(path)
        try:
            os.rmdir(d)
        except OSError as e:
            raise files.write_error(e, d, "removing a cgroup") from None

    def attach(self, path: str, pid: int) -> None:
        """Move process ``pid`` (all its threads) into the cgroup: writes cgroup.procs."""
        if isinstance(pid, bool) or not isinstance(pid, int) or pid < 1:
            raise InputError(f"not a pid: {pid!r}", "pid")
        files.write(self.memory_dir(path) / "cgroup.procs", str(pid), pid=pid)

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
            have = set(files.read(f).split())
            missing = [c for c in controllers if c not in have]
            if missing:
                files.write(f, " ".join(f"+{c}" for c in missing))
