"""The one cgroup walker, the one way to find the cgroup v2 hierarchy, and lookups by cgroup id.

- ``walk(top)``: (path relative to ``top``, id) of ``top`` and every directory below it. CgroupFS.list
  (any hierarchy, v1 included) and every CgroupTree lookup are built on it: one ``os.scandir`` per
  directory, the ids taken from the directory entries (no stat per cgroup).
- ``v2_root(cgroup_root, proc)``: where the v2 hierarchy is. CgroupTree.find/below/mounted and
  ``cgroup2_root`` all answer through it.
- ``CgroupTree``: the v2 hierarchy seen through ids (directory inode numbers, what
  bpf_get_current_cgroup_id returns): the path of an id, the ids below one, the id of a process's
  cgroup, the processes of cgroups named by id.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Iterator
from pathlib import Path

from tierctl.errors import InputError, KernelError, TierctlError
from tierctl.kernel.cgroup_files import norm, procs
from tierctl.kernel.procfs import Pid, ProcFS
from tierctl.kernel.roots import LIVE_CGROUP


def cgroup_id(directory: Path) -> int:
    """The v2 id of a cgroup directory: its inode number (what bpf_get_current_cgroup_id returns).
    InputError when there is no such directory, KernelError when it cannot be looked at."""
    try:
        return os.stat(directory).st_ino
    except (FileNotFoundError, NotADirectoryError):
        raise InputError("no such cgroup", str(directory)) from None
    except OSError as e:
        raise KernelError(f"cannot stat: {e.strerror}", str(directory)) from None


def walk(top: Path | str) -> Iterator[tuple[str, int]]:
    """(path relative to ``top`` — "" for ``top`` itself, "/"-separated —, directory inode) of ``top``
    and every directory below it: depth first, parents before children, siblings by name (so the
    paths come sorted by their "/"-separated parts). Nothing when ``top`` is gone. A directory that
    cannot be listed (unreadable, removed meanwhile) is reported, without children; symlinks are
    not followed.
    """
    base = os.fspath(top)
    try:
        stack = [("", os.stat(base).st_ino)]
    except OSError:
        return
    while stack:
        rel, ino = stack.pop()
        yield rel, ino
        try:
            with os.scandir(os.path.join(base, rel) if rel else base) as it:
                entries = sorted((e.name, e.inode()) for e in it if e.is_dir(follow_symlinks=False))
        except OSError:
            continue
        prefix = f"{rel}/" if rel else ""
        stack.extend((prefix + name, i) for name, i in reversed(entries))


def cgroup2_root(proc: ProcFS | None = None) -> Path | None:
    """Mount point of the cgroup v2 hierarchy from mountinfo: /sys/fs/cgroup, or /sys/fs/cgroup/unified
    on hybrid hosts (the default place first, then the shortest path). ``v2_root(None, proc)``."""
    return v2_root(None, proc)


def v2_root(cgroup_root: Path | None = None, proc: ProcFS | None = None) -> Path | None:
    """Where the cgroup v2 hierarchy is; None when there is none.

    With a ``cgroup_root`` (the CLI's and the daemon's ``--cgroup-root``, default /sys/fs/cgroup): that
    directory when it holds a v2 hierarchy (``cgroup.controllers``), else its ``unified`` folder
    (systemd's hybrid mode) when that does, else None — never a mount elsewhere, so everything
    configured with the same root sees the same tree. Without one (None): the cgroup2 mount this
    process sees in ``proc``'s mountinfo (the default place first, then the shortest path).
    """
    if cgroup_root is None:
        proc = proc if proc is not None else ProcFS()
        found = [m.point for m in proc.mounts() if m.fstype == "cgroup2"]
        found.sort(key=lambda p: (p != LIVE_CGROUP, len(str(p))))
        return found[0] if found else None
    root = Path(cgroup_root)
    if (root / "cgroup.controllers").is_file():
        return root
    unified = root / "unified"
    if (unified / "cgroup.controllers").is_file() or (unified / "cgroup.procs").is_file():
        return unified
    return None


class CgroupTree:
    """The cgroup v2 hierarchy mounted at ``root``, seen through ids (directory inode numbers): the id
    of a directory or of a process's cgroup, a directory by id, the processes of cgroups named by id.
    ``proc`` reads /proc/PID/cgroup. Used by the samplers, whose rows and targets name cgroups by id
    (v2 ids also on hybrid hosts, where the memory controller is v1). Every lookup is one ``walk``."""

    def __init__(self, root: Path, proc: ProcFS | None = None) -> None:
        self.root = Path(root)
        self.proc = proc if proc is not None else ProcFS()

    @classmethod
    def find(cls, cgroup_root: Path | None = None, proc: ProcFS | None = None) -> CgroupTree | None:
        """The v2 hierarchy at ``v2_root(cgroup_root, proc)``: below ``cgroup_root`` when one is
        given, else where mountinfo says; None when there is none."""
        root = v2_root(cgroup_root, proc)
        return None if root is None else cls(root, proc)

    @classmethod
    def below(cls, cgroup_root: Path = LIVE_CGROUP, proc: ProcFS | None = None) -> CgroupTree | None:
        """The v2 hierarchy at ``cgroup_root`` itself, or at its ``unified`` folder (systemd's hybrid
        mode); None when neither holds one. ``find(cgroup_root, proc)``."""
        return cls.find(Path(cgroup_root), proc)

    @classmethod
    def mounted(cls, proc: ProcFS | None = None) -> CgroupTree | None:
        """The v2 hierarchy this process sees mounted (from its mountinfo); None when there is none.
        ``find(None, proc)``: prefer ``find(cgroup_root)`` where a cgroup root is configured."""
        return cls.find(None, proc)

    def walk(self, top: Path | None = None) -> Iterator[tuple[Path, int]]:
        """(directory, id) of ``top`` (default: the root) and every cgroup below it, in ``walk``'s
        order. Directories that vanish or cannot be listed meanwhile are not descended into;
        symlinks are not followed."""
        base = self.root if top is None else Path(top)
        for rel, i in walk(base):
            yield (base / rel if rel else base), i

    def ids(self, under: str = "") -> list[tuple[str, int]]:
        """(path relative to the root, id) of cgroup ``under`` (relative to the root, "" = the root)
        and every cgroup below it, parents first; [] when ``under`` is gone (InputError for a path
        with "." or ".." parts)."""
        rel = norm(under)
        if not rel:
            return list(walk(self.root))
        return [(f"{rel}/{r}" if r else rel, i) for r, i in walk(self.root / rel)]

    def paths_of(self, ids: Collection[int]) -> dict[int, str]:
        """Path (relative to the root, "" = the root) of each of ``ids`` that names a cgroup; one walk."""
        want = {int(i) for i in ids}
        out: dict[int, str] = {}
        if want:
            for rel, i in walk(self.root):
                if i in want:
                    out[i] = rel
                    if len(out) == len(want):
                        break
        return out

    def path_of(self, cgid: int) -> Path | None:
        """The directory of cgroup id ``cgid``, None when no cgroup has it."""
        rel = self.paths_of((cgid,)).get(int(cgid))
        return None if rel is None else (self.root / rel if rel else self.root)

    def descendant_ids(self, cgid: int) -> list[int]:
        """``cgid`` and the id of every cgroup below it (just ``[cgid]`` when it is not found)."""
        top = self.path_of(cgid)
        return [cgid] if top is None else [i for _rel, i in walk(top)]

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
        """Processes in the cgroups with these ids (each cgroup itself, not its descendants), sorted.
        A cgroup whose cgroup.procs cannot be read (removed meanwhile) has none."""
        out: set[int] = set()
        for rel in self.paths_of(list(ids)).values():
            out.update(procs((self.root / rel if rel else self.root) / "cgroup.procs"))
        return sorted(out)
