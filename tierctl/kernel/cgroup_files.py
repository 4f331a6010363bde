"""One cgroup file at a time: path rules, reading and writing with tierctl's error rules.

Shared by CgroupFS (``tierctl.kernel.cgroupfs``), its writers and CgroupTree, so that every cgroup
file is read, parsed and written the same way:

- a cgroup path with "." / ".." / "//" parts, or naming no directory, is InputError;
- EACCES/EPERM is PermissionDeniedError; a file that does not parse is KernelError with
  ``where`` = ``file:line``; other failures are KernelError naming the file;
- a missing file (or EOPNOTSUPP) is "absent": ``read_opt`` answers None, ``read`` UnavailableError.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from tierctl.errors import (
    InputError,
    KernelError,
    NoSuchProcessError,
    PermissionDeniedError,
    TierctlError,
    UnavailableError,
)


def norm(path: str) -> str:
    """A cgroup path without leading/trailing "/" ("" = the root); InputError for ".", "..", "//"."""
    if not isinstance(path, str):
        raise InputError(f"not a cgroup path: {path!r}", "cgroup")
    rel = path.strip("/")
    if rel and any(p in ("", ".", "..") for p in rel.split("/")):
        raise InputError("cgroup paths may not contain '.', '..' or '//'", path)
    return rel


def cgroup_dir(base: Path, path: str) -> Path:
    """The directory of cgroup ``path`` below hierarchy root ``base``; InputError naming the
    directory when there is none."""
    rel = norm(path)
    d = base.joinpath(*rel.split("/")) if rel else base
    try:
        is_dir = d.is_dir()
    except OSError as e:  # ENAMETOOLONG, EACCES on a parent
        raise InputError(f"no such cgroup ({e.strerror or e})", str(d)[:300]) from None
    if not is_dir:
        raise InputError("no such cgroup", str(d))
    return d


def lines(text: str) -> list[tuple[int, str]]:
    """(1-based line number, stripped line) of every non-blank line."""
    return [(no, line.strip()) for no, line in enumerate(text.splitlines(), start=1) if line.strip()]


def is_int(s: str) -> bool:
    return s.isdigit() or (s[:1] == "-" and s[1:].isdigit())


def read_opt(f: Path) -> str | None:
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


def read(f: Path) -> str:
    """The file's text; UnavailableError when it is absent."""
    text = read_opt(f)
    if text is None:
        raise UnavailableError("not provided (controller not enabled for this cgroup?)", str(f))
    return text


def one_line(f: Path) -> str:
    """The file's single value (stripped); KernelError when it is empty or has more lines."""
    text = read(f).strip()
    if not text:
        raise KernelError("empty file", str(f))
    if "\n" in text:
        raise KernelError(f"expected one value, got {len(text.splitlines())} lines", f"{f}:2")
    return text


def read_int(f: Path, text: str | None = None) -> int:
    """The file's single byte count (or ``text``, already read from it)."""
    text = one_line(f) if text is None else text
    if not text.isdigit():
        raise KernelError(f"not a byte count: {text!r}", f"{f}:1")
    return int(text)


def procs(f: Path, *, strict: bool = False) -> list[int]:
    """The pids of a cgroup.procs file ``f``, in file order.

    ``strict``: the error rules above (absent: UnavailableError; a line that is no pid: KernelError
    ``f:line``). Lenient (the default, for walks over cgroups that may vanish meanwhile): [] when
    the file cannot be read, and lines that are no pid are skipped.
    """
    try:
        text = read(f)
    except TierctlError:
        if strict:
            raise
        return []
    out = []
    for no, line in lines(text):
        if line.isdigit():
            out.append(int(line))
        elif strict:
            raise KernelError(f"not a pid: {line!r}", f"{f}:{no}")
    return out


def write_raw(f: Path, text: str) -> None:
    """One write(2) of ``text``; OSError (of open or write) is the caller's to map."""
    fd = os.open(f, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def write(f: Path, text: str, *, pid: int | None = None) -> None:
    """write_raw with the error rules; ESRCH is NoSuchProcessError when ``pid`` is being written."""
    try:
        write_raw(f, text)
    except OSError as e:
        if e.errno == errno.ESRCH and pid is not None:
            raise NoSuchProcessError(f"no process {pid}", str(pid)) from None
        raise write_error(e, f, f"writing {text.strip()!r} to {f.name}") from None


def write_error(e: OSError, f: Path, what: str) -> TierctlError:
    """The tierctl error for a failed write (or mkdir/rmdir) of ``f``."""
    if e.errno in (errno.EACCES, errno.EPERM):
        return PermissionDeniedError(
            f"permission denied: {what} needs root (or write access to a delegated cgroup)", str(f)
        )
    if e.errno == errno.ENOENT:
        return UnavailableError(f"{what}: no such file (controller not enabled?)", str(f))
    if e.errno == errno.EBUSY:
        return KernelError(f"{what}: busy (cgroup has processes or children)", str(f))
    return KernelError(f"{what}: {e.strerror or e}", str(f))
