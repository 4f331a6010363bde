"""Load profile files: TOML -> checked, frozen ``Profile`` objects, or every problem at once.

``load_profiles(paths)`` reads every file (a directory means its ``*.toml`` files, not recursive),
checks every key of every file, then the set as a whole (unique names, a catch-all exists, no
profile hidden behind a catch-all), and either returns a ``ProfileSet`` or raises one
``ProfileError`` listing ALL problems as ``file:line: key: message``.

Line numbers: tomllib does not keep them, so ``key_lines`` scans the source text for table headers
(``[placement]``, ``[[match]]``) and ``key = value`` lines.  Limits: a key inside an inline table
(``placement = { fast_min = "1G" }``) or inside a multi-line array gets the line of the enclosing
key; a problem with a value inside an array (one bad sampler name) gets the line of the array's key.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tierctl import values
from tierctl.profiles.filecheck import Bad, FileCheck, KeyPath, got, hint
from tierctl.profiles.match import ProfileSet
from tierctl.profiles.match_check import match_rules
from tierctl.profiles.pressure_check import check_pressure
from tierctl.profiles.schema import (
    DEFAULT_HYSTERESIS,
    PINS,
    THP_MODES,
    Placement,
    PressurePolicy,
    Profile,
    ProfileError,
    ProfileProblem,
    amount_kind,
)
from tierctl.samplers.registry import SAMPLERS

TOP_KEYS = ("name", "description", "priority", "match", "placement", "pressure")
PLACEMENT_KEYS = (
    "fast_min",
    "fast_max",
    "priority",
    "pin",
    "hot_threshold",
    "headroom",
    "promote_rate_mbps",
    "demote_rate_mbps",
    "hysteresis",
    "thp",
    "samplers",
)
MAX_HEADROOM_SHARE = 0.5
MAX_RATE = values.MAX_RATE_MBPS
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


# ---------------------------------------------------------------------------------------------------
# line numbers


_BARE = r"[A-Za-z0-9_-]+"
_QUOTED = r'"(?:[^"\\]|\\.)*"|\'[^\']*\''
_KEY = rf"(?:{_BARE}|{_QUOTED})(?:\s*\.\s*(?:{_BARE}|{_QUOTED}))*"
_AOT_RE = re.compile(rf"\[\[\s*({_KEY})\s*\]\]")
_TABLE_RE = re.compile(rf"\[\s*({_KEY})\s*\]")
_ASSIGN_RE = re.compile(rf"({_KEY})\s*=(.*)")
_PART_RE = re.compile(rf"\s*({_BARE}|{_QUOTED})\s*(?:\.|$)")
# a dotted key of more than two parts at the start of a line or of a table header
_DOTTED_RE = re.compile(
    rf"^[ \t]*(?:\[[ \t]*)*((?:{_BARE}|{_QUOTED})(?:[ \t]*\.[ \t]*(?:{_BARE}|{_QUOTED})){{2,}})", re.M
)
MAX_KEY_PARTS = 8
MAX_PROFILE_BYTES = 64 * 1024
MAX_PROFILE_FILES = 512  # x 64 KiB: a bound on what one reload reads


def _split_key(text: str) -> tuple[str, ...]:
    parts = []
    for m in _PART_RE.finditer(text):
        p = m.group(1)
        parts.append(p[1:-1] if p[:1] in "\"'" else p)
    return tuple(parts)


def _in_array(path: KeyPath, aot_count: dict[KeyPath, int]) -> KeyPath:
    """``[match.pod_label]`` after ``[[match]]`` is a table of the latest ``match`` table:
    ``("match", n, "pod_label")``."""
    for k in range(len(path) - 1, 0, -1):
        if (n := aot_count.get(path[:k])) is not None:
            return (*path[:k], n - 1, *path[k:])
    return path


def key_lines(text: str) -> dict[KeyPath, int]:
    """Line (1-based) of every table header and ``key =`` line, by key path; ``[[t]]`` tables are
    numbered (``("match", 0)``, ``("match", 1)`` ...).  Skips comments and multi-line strings."""
    lines: dict[KeyPath, int] = {}
    table: KeyPath = ()
    aot_count: dict[KeyPath, int] = {}
    closing: str | None = None  # the delimiter of an open multi-line string
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if closing is not None:
            if line.count(closing) % 2 == 1:
                closing = None
            continue
        if not line or line.startswith("#"):
            continue
        if m := _AOT_RE.match(line):
            path = _split_key(m.group(1))
            idx = aot_count.get(path, 0)
            aot_count[path] = idx + 1
            table = (*path, idx)
            lines.setdefault(table, no)
        elif m := _TABLE_RE.match(line):
            table = _in_array(_split_key(m.group(1)), aot_count)
            lines.setdefault(table, no)
        elif m := _ASSIGN_RE.match(line):
            lines.setdefault((*table, *_split_key(m.group(1))), no)
            value = m.group(2)
            for delim in ('"""', "'''"):
                if value.count(delim) % 2 == 1:
                    closing = delim
                    break
    return lines


# ---------------------------------------------------------------------------------------------------
# checking one file


def _magnitude(value: int | float | str) -> float:
    return values.amount(value, "").magnitude()


@dataclass
class _Parsed:
    """What one file gave: its profile when it had no problem, and what the set checks need."""

    file: str
    profile: Profile | None
    name: str | None
    name_line: int
    catch_all: bool | None  # None: the file could not be read or parsed
    problems: list[ProfileProblem]
    lines: dict[KeyPath, int] = field(default_factory=dict)


def _samplers(fc: FileCheck, value: Any, path: KeyPath) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise fc.bad(path, f"expected an array of sampler names, got {got(value)}")
    ok = True
    for s in value:
        if s not in SAMPLERS:
            fc.add(path, f"unknown sampler {s!r}{hint(s, list(SAMPLERS))}")
            ok = False
    for s in sorted({s for s in value if value.count(s) > 1}):
        fc.add(path, f"sampler {s!r} is listed twice")
        ok = False
    if not ok:
        raise Bad()
    return tuple(value)


def _hot_threshold(fc: FileCheck, value: Any, path: KeyPath) -> float | str:
    if value == "auto":
        return "auto"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise fc.bad(path, f'expected "auto" or a number > 0, got {got(value)}')
    return fc.number(value, path, minimum=0, strict=True, maximum=values.MAX_HOT_THRESHOLD)


def _headroom(fc: FileCheck, value: Any, path: KeyPath) -> int | float | str:
    if value == "auto":
        return "auto"
    return fc.amount(value, path, max_share=MAX_HEADROOM_SHARE)


def _placement(fc: FileCheck, value: Any) -> Placement:
    path: KeyPath = ("placement",)
    n_before = len(fc.problems)
    value = fc.table(value, path, PLACEMENT_KEYS)
    checks: dict[str, tuple[Callable[..., Any], Any]] = {
        "fast_min": (fc.amount, 0),
        "fast_max": (fc.amount, None),
        "priority": (fc.integer, 0),
        "pin": (lambda v, p: fc.choice(v, p, PINS), "auto"),
        "hot_threshold": (lambda v, p: _hot_threshold(fc, v, p), "auto"),
        "headroom": (lambda v, p: _headroom(fc, v, p), "auto"),
        "promote_rate_mbps": (lambda v, p: fc.number(v, p, minimum=0, strict=True, maximum=MAX_RATE), None),
        "demote_rate_mbps": (lambda v, p: fc.number(v, p, minimum=0, strict=True, maximum=MAX_RATE), None),
        "hysteresis": (
            lambda v, p: fc.number(v, p, minimum=0, strict=False, maximum=values.MAX_HYSTERESIS),
            DEFAULT_HYSTERESIS,
        ),
        "thp": (lambda v, p: fc.choice(v, p, THP_MODES), "keep"),
        "samplers": (lambda v, p: _samplers(fc, v, p), None),
    }
    out = fc.fields(value, path, checks)
    lo, hi = out["fast_min"], out["fast_max"]
    same_kind = lo is not Bad and hi not in (Bad, None) and amount_kind(lo) == amount_kind(hi)
    if same_kind and _magnitude(lo) > _magnitude(hi):
        fc.add((*path, "fast_min"), f"fast_min ({lo}) is above fast_max ({hi})")
    if out["pin"] == "slow" and lo is not Bad and _magnitude(lo) > 0:
        fc.add((*path, "fast_min"), f"pin = 'slow' keeps nothing in the fast tier; fast_min ({lo}) conflicts")
    if len(fc.problems) != n_before:
        raise Bad()
    return Placement(**out)


_TOML_POS_RE = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
_TOML_END_RE = re.compile(r"\s*\(at end of document\)\s*$")


def _syntax_problem(file: str, text: str, err: tomllib.TOMLDecodeError) -> ProfileProblem:
    msg = str(err)
    lineno = getattr(err, "lineno", None)
    colno = getattr(err, "colno", None)
    if m := _TOML_POS_RE.search(msg):
        lineno, colno = int(m.group(1)), int(m.group(2))
        msg = msg[: m.start()]
    elif m := _TOML_END_RE.search(msg):
        lineno, colno = max(1, len(text.splitlines())), None
        msg = msg[: m.start()] + " (at end of file)"
    else:
        msg = getattr(err, "msg", msg)
    where = f" (column {colno})" if colno else ""
    return ProfileProblem(file, int(lineno or 1), "toml", f"invalid TOML: {msg}{where}")


def _shape_problem(file: str, text: str) -> ProfileProblem | None:
    """What would make the TOML parser slow or recurse without end, found before it runs: a key of
    more than ``MAX_KEY_PARTS`` dotted parts (tomllib's time grows with the cube of their number)."""
    for m in _DOTTED_RE.finditer(text):
        parts = len(_split_key(m.group(1)))
        if parts > MAX_KEY_PARTS:
            line = text.count("\n", 0, m.start()) + 1
            return ProfileProblem(
                file, line, "toml", f"a key of {parts} dotted parts (at most {MAX_KEY_PARTS} here)"
            )
    return None


def parse_profile(file: str, text: str) -> _Parsed:
    """Check one file's text; never raises for a problem in the file."""
    if (shape := _shape_problem(file, text)) is not None:
        return _Parsed(file, None, None, 0, None, [shape])
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        return _Parsed(file, None, None, 0, None, [_syntax_problem(file, text, e)])
    except RecursionError:
        problem = ProfileProblem(file, 1, "toml", "invalid TOML: arrays or tables nested too deeply")
        return _Parsed(file, None, None, 0, None, [problem])
    fc = FileCheck(file, key_lines(text))
    fc.unknown_keys(data, TOP_KEYS, ())
    stem = Path(file).stem
    name: str | None = None
    try:
        name = fc.get(data, "name", (), fc.string, stem)
        if not _NAME_RE.fullmatch(name or ""):
            what = "name" if "name" in data else f"file name {stem!r} (no 'name' key)"
            raise fc.bad(("name",), f"{what} must be letters, digits, '.', '_' or '-', got {name!r}")
    except Bad:
        name = None
    parts: dict[str, Any] = {}
    for key, check, default in (
        ("description", lambda v, p: fc.string(v, p, empty_ok=True), ""),
        ("priority", fc.integer, 0),
        ("match", lambda v, p: match_rules(fc, v), ()),
        ("placement", lambda v, p: _placement(fc, v), Placement()),
        ("pressure", lambda v, p: check_pressure(fc, v), PressurePolicy()),
    ):
        with contextlib.suppress(Bad):
            parts[key] = fc.get(data, key, (), check, default)
    profile = None
    if not fc.problems and name is not None:
        profile = Profile(name=name, file=file, **parts)
    fc.problems.sort(key=lambda p: p.line)  # stable: same-line problems keep their order
    name_line = fc.lines.get(("name",), 1)
    return _Parsed(file, profile, name, name_line, "match" not in data, fc.problems, fc.lines)


def read_profile(path: Path) -> _Parsed:
    """Read and check one file; every failure (unreadable, too big, not UTF-8, not a regular file,
    anything unforeseen) is a problem of that file, never an exception."""
    file = str(path)

    def problem(message: str) -> _Parsed:
        return _Parsed(file, None, None, 0, None, [ProfileProblem(file, 0, "file", message)])

    try:
        # O_NONBLOCK: a FIFO named x.toml must not hang the reader; it is refused below
        fd = _open_ro(path)
    except OSError as e:
        return problem(f"cannot read: {_oserror(e, path)}")
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return problem(f"cannot read: not a regular file ({_file_kind(st.st_mode)})")
        if st.st_size > MAX_PROFILE_BYTES:
            return problem(f"{st.st_size} bytes; a profile is at most {MAX_PROFILE_BYTES} bytes")
        raw = os.read(fd, MAX_PROFILE_BYTES + 1)
    except OSError as e:
        return problem(f"cannot read: {_oserror(e, path)}")
    finally:
        os.close(fd)
    if len(raw) > MAX_PROFILE_BYTES:
        return problem(f"more than {MAX_PROFILE_BYTES} bytes; a profile is at most {MAX_PROFILE_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return problem(f"cannot read: not UTF-8 ({e.reason} at byte {e.start})")
    try:
        return parse_profile(file, text)
    except RecursionError:
        return problem("nested too deeply to check")
    except Exception as e:  # a checker bug must not take the daemon down: report it as this file's problem
        return problem(f"cannot check ({type(e).__name__}: {e}); please report this as a tierctl bug")


def _toml_entries(d: Path) -> list[Path]:
    """Every ``*.toml`` entry of ``d`` whatever its type (a directory, FIFO or broken link named so
    is reported by ``read_profile``), sorted; an unreadable directory raises (pathlib's glob would
    quietly find nothing)."""
    with os.scandir(d) as it:
        return sorted(d / e.name for e in it if e.name.endswith(".toml") and not e.name.startswith("."))


def _open_ro(path: Path) -> int:
    return os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)


def _oserror(e: OSError, path: Path) -> str:
    if e.errno == errno.ELOOP:
        return "symlink loop"
    if e.errno == errno.ENOENT and path.is_symlink():
        return f"dangling symlink (to {os.readlink(path)})"
    return e.strerror or str(e)


def _file_kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return name
    return "not a regular file"


# ---------------------------------------------------------------------------------------------------
# the set


def profile_files(paths: Iterable[Path | str]) -> tuple[list[Path], list[ProfileProblem]]:
    """The files to load: each directory's ``*.toml`` (sorted, not recursive), each file as given;
    the same file named twice is loaded once."""
    files: list[Path] = []
    problems: list[ProfileProblem] = []
    seen: set[str] = set()
    for raw in paths:
        p = Path(raw)
        try:
            is_dir = p.is_dir()
            found = _toml_entries(p) if is_dir else [p]
        except OSError as e:
            problems.append(ProfileProblem(str(p), 0, "file", f"cannot list: {_oserror(e, p)}"))
            continue
        if is_dir and not found:
            problems.append(ProfileProblem(str(p), 0, "file", "no profiles (*.toml) in this directory"))
        if len(found) > MAX_PROFILE_FILES:
            problems.append(
                ProfileProblem(
                    str(p), 0, "file", f"{len(found)} profiles; at most {MAX_PROFILE_FILES} are read"
                )
            )
            found = found[:MAX_PROFILE_FILES]
        for q in found:
            key = os.path.realpath(q)  # never raises on a symlink loop (Path.resolve does on 3.11)
            if key not in seen:
                seen.add(key)
                files.append(q)
    return files, problems


def check_profiles(paths: Iterable[Path | str]) -> tuple[ProfileSet, list[ProfileProblem]]:
    """Every profile that loaded cleanly, and every problem of every file and of the set."""
    paths = list(paths)
    files, problems = profile_files(paths)
    parsed = [read_profile(f) for f in files]
    for p in parsed:
        problems.extend(p.problems)
    # unique names
    first: dict[str, _Parsed] = {}
    dup_files: set[str] = set()
    for p in parsed:
        if p.name is None:
            continue
        if p.name in first:
            other = first[p.name]
            problems.append(
                ProfileProblem(
                    p.file, p.name_line, "name", f"duplicate profile name {p.name!r} (also in {other.file})"
                )
            )
            dup_files.add(p.file)
        else:
            first[p.name] = p
    good = ProfileSet([p.profile for p in parsed if p.profile is not None and p.file not in dup_files])
    lines = {p.file: p.lines for p in parsed}
    # a catch-all must exist (unless a file that could not be parsed might be it)
    if parsed and all(p.catch_all is False for p in parsed):
        where = str(paths[0]) if len(paths) == 1 else ", ".join(map(str, paths))
        problems.append(
            ProfileProblem(
                where,
                0,
                "match",
                "no catch-all profile (one without [[match]] tables); workloads that match nothing would "
                "have no profile — add one like profiles/default.toml",
            )
        )
    # nothing hidden behind a catch-all
    catch_all = next((p for p in good if p.is_catch_all), None)
    if catch_all is not None:
        for p in good.profiles[good.profiles.index(catch_all) + 1 :]:
            problems.append(
                ProfileProblem(
                    p.file,
                    lines[p.file].get(("priority",), 1),
                    "priority",
                    f"never used: catch-all profile {catch_all.name!r} ({catch_all.file}, priority "
                    f"{catch_all.priority}) is tried first; "
                    f"give this profile a priority above {catch_all.priority}",
                )
            )
    return good, problems


def load_profiles(paths: Iterable[Path | str]) -> ProfileSet:
    """The checked set, or a ``ProfileError`` listing every problem."""
    profiles, problems = check_profiles(paths)
    if problems:
        raise ProfileError(problems)
    return profiles
