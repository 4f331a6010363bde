"""Parsers of /proc text files: the text of maps, numa_maps, status, cgroup, stat, mountinfo, vmstat
and meminfo in, records or values out. No I/O: :class:`tierctl.kernel.procfs.ProcFS` reads the files.

``where`` / ``path`` name the file for errors: a line that does not parse is :class:`KernelError`
with ``where`` = ``file:line``. Field meanings: Documentation/filesystems/proc.rst.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

from tierctl.errors import KernelError
from tierctl.kernel.proc_records import Meminfo, Mount, NumaMap, Vma

_MAPS_RE = re.compile(
    r"^(?P<start>[0-9a-f]+)-(?P<end>[0-9a-f]+) (?P<perms>[r-][w-][x-][ps]) (?P<offset>[0-9a-f]+) "
    r"(?P<dev>[0-9a-f]+:[0-9a-f]+) (?P<inode>\d+)(?: +(?P<path>.*))?$"
)
# policy names from mm/mempolicy.c policy_modes[]: two contain a space
_NUMA_MAPS_RE = re.compile(
    r"^(?P<start>[0-9a-f]+) "
    r"(?P<policy>(?:weighted interleave|prefer \(many\)|[a-z]+)(?:=[a-z|]+)?(?::[0-9,-]*)?)"
    r"(?: (?P<rest>.*))?$"
)
_NUMA_COUNTERS = ("anon", "dirty", "mapped", "mapmax", "swapcache", "active", "writeback")


def nonblank_lines(text: str) -> list[tuple[int, str]]:
    """(line number from 1, line) of each line of ``text`` that is not blank."""
    return [(no, line) for no, line in enumerate(text.splitlines(), start=1) if line.strip()]


def _is_int(s: str) -> bool:
    return s.isdigit() or (s[:1] == "-" and s[1:].isdigit())


def parse_maps(text: str, path: Path) -> list[Vma]:
    """The mappings of a /proc/PID/maps file."""
    out = []
    for no, line in nonblank_lines(text):
        m = _MAPS_RE.match(line)
        if m is None:
            raise KernelError(f"not a maps line: {line!r}", f"{path}:{no}")
        out.append(
            Vma(
                start=int(m["start"], 16),
                end=int(m["end"], 16),
                perms=m["perms"],
                offset=int(m["offset"], 16),
                dev=m["dev"],
                inode=int(m["inode"]),
                path=m["path"] or "",
            )
        )
    return out


def parse_numa_maps(text: str, path: Path) -> list[NumaMap]:
    """The lines of a /proc/PID/numa_maps file."""
    return [parse_numa_line(line, f"{path}:{no}") for no, line in nonblank_lines(text)]


def parse_numa_line(line: str, where: str) -> NumaMap:
    """One line of /proc/PID/numa_maps; ``where`` (``file:line``) names it in errors."""
    m = _NUMA_MAPS_RE.match(line)
    if m is None:
        raise KernelError(f"not a numa_maps line: {line!r}", where)
    nodes: dict[int, int] = {}
    counters: dict[str, int] = {}
    other: list[tuple[str, int]] = []
    tags: list[str] = []
    file: str | None = None
    kpsize: int | None = None
    for tok in (m["rest"] or "").split():
        key, eq, value = tok.partition("=")
        if not eq:
            tags.append(tok)
        elif key == "file":
            file = value
        elif not value.isdigit():
            raise KernelError(f"{key}={value!r} is not a count", where)
        elif key[:1] == "N" and key[1:].isdigit():
            nodes[int(key[1:])] = int(value)
        elif key == "kernelpagesize_kB":
            kpsize = int(value)
        elif key in _NUMA_COUNTERS:
            counters[key] = int(value)
        else:
            other.append((key, int(value)))
    pages = sum(nodes.values())
    counters.setdefault("active", pages)
    if pages and kpsize is None:
        raise KernelError("pages per node without kernelpagesize_kB", where)
    return NumaMap(
        start=int(m["start"], 16),
        policy=m["policy"],
        pages_per_node=nodes,
        kernelpagesize_kb=kpsize,
        file=file,
        tags=tuple(tags),
        other=tuple(other),
        **counters,
    )


def parse_uid(text: str, path: Path) -> int:
    """The real uid (first field of ``Uid:``) of a /proc/PID/status file."""
    for no, line in nonblank_lines(text):
        if line.startswith("Uid:"):
            fields = line.split()
            if len(fields) < 2 or not fields[1].isdigit():
                raise KernelError(f"not a Uid line: {line!r}", f"{path}:{no}")
            return int(fields[1])
    raise KernelError("no Uid: line", str(path))


def parse_groups(text: str) -> frozenset[int]:
    """The supplementary groups (``Groups:``) of a /proc/PID/status file; empty when absent."""
    for _no, line in nonblank_lines(text):
        if line.startswith("Groups:"):
            return frozenset(int(g) for g in line.split()[1:] if g.isdigit())
    return frozenset()


def status_caps(status: str, field: str = "CapEff") -> int | None:
    """A capability mask (``CapEff``, ``CapPrm`` ...) from the text of /proc/PID/status; None when
    the line is missing or malformed."""
    for line in status.splitlines():
        if line.startswith(field + ":"):
            with contextlib.suppress(ValueError):
                return int(line.split()[1], 16)
    return None


def status_value(status: str, field: str) -> str | None:
    """The value of one ``Field:`` line of /proc/PID/status text, stripped; None when absent."""
    for line in status.splitlines():
        if line.startswith(field + ":"):
            return line[len(field) + 1 :].strip()
    return None


def parse_cgroups(text: str, path: Path) -> tuple[str | None, str | None]:
    """(memory controller's cgroup, v2 cgroup) from a /proc/PID/cgroup file, each None when absent."""
    memory: str | None = None
    v2: str | None = None
    for no, line in nonblank_lines(text):
        parts = line.split(":", 2)
        if len(parts) != 3 or not parts[0].isdigit() or not parts[2].startswith("/"):
            raise KernelError(f"not a cgroup line: {line!r}", f"{path}:{no}")
        hier, controllers, cg = parts
        if memory is None and "memory" in controllers.split(","):
            memory = cg.strip().strip("/")
        if hier == "0" and controllers == "":
            v2 = cg.strip().strip("/")
    return memory, v2


def parse_cpu_ticks(text: str, path: Path) -> int:
    """utime + stime (clock ticks) of a /proc/PID/stat file."""
    try:
        fields = text.rsplit(")", 1)[1].split()  # the comm in parentheses may hold spaces
        return int(fields[11]) + int(fields[12])
    except (IndexError, ValueError):
        raise KernelError(f"not a stat line: {text[:80]!r}", f"{path}:1") from None


def _unescape(field: str) -> str:
    """mountinfo's octal escapes of space, tab, newline and backslash."""
    for code, ch in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, ch)
    return field


def parse_mountinfo(text: str) -> list[Mount]:
    """The mount points of a /proc/PID/mountinfo file, in mount order; lines without both halves skipped."""
    out = []
    for _no, line in nonblank_lines(text):
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) > 4 and right:
            out.append(Mount(Path(_unescape(fields[4])), right.split(" ", 1)[0]))
    return out


def parse_vmstat(text: str, path: Path) -> dict[str, int]:
    """Every counter of a /proc/vmstat file; KernelError for a bad line or an empty file."""
    out: dict[str, int] = {}
    for no, line in nonblank_lines(text):
        parts = line.split()
        if len(parts) != 2 or not _is_int(parts[1]):
            raise KernelError(f"not a 'name value' line: {line!r}", f"{path}:{no}")
        out[parts[0]] = int(parts[1])
    if not out:
        raise KernelError("empty file", str(path))
    return out


def parse_meminfo(text: str, path: Path) -> Meminfo:
    """A /proc/meminfo file. KernelError naming file:line for a line that does not parse, or naming the
    file when MemTotal, MemAvailable (3.14+), SwapTotal or SwapFree is missing."""
    out: dict[str, int] = {}
    for no, line in nonblank_lines(text):
        name, sep, rest = line.partition(":")
        parts = rest.split()
        if not sep or not parts or not parts[0].isdigit() or parts[1:] not in ([], ["kB"]):
            raise KernelError(f"not a 'Name: value [kB]' line: {line!r}", f"{path}:{no}")
        out[name.strip()] = int(parts[0]) * (1024 if parts[1:] else 1)
    missing = [k for k in ("MemTotal", "MemAvailable", "SwapTotal", "SwapFree") if k not in out]
    if missing:
        raise KernelError(f"no {', '.join(missing)} line(s)", str(path))
    return Meminfo(out["MemTotal"], out["MemAvailable"], out["SwapTotal"], out["SwapFree"], out)
