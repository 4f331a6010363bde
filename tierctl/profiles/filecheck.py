"""Checking one profile file's values: each problem is recorded with its file, line and dotted key,
and the check raises ``Bad`` so the caller can go on with the next key (every problem at once)."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

from tierctl import values
from tierctl.errors import InputError
from tierctl.profiles.schema import ProfileProblem

KeyPath = tuple[str | int, ...]


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    for t, name in ((int, "integer"), (float, "float"), (str, "string"), (list, "array"), (dict, "table")):
        if isinstance(value, t):
            return name
    if isinstance(value, datetime | date | time):
        return "datetime"
    return type(value).__name__


def got(value: Any) -> str:
    if isinstance(value, dict | list):
        return _type_name(value)
    return f"{_type_name(value)} {value!r}"


def hint(name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known)})"


def key_text(path: KeyPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "-"


class Bad(Exception):
    """A value failed its check; the problem is already recorded."""


@dataclass
class FileCheck:
    file: str
    lines: dict[KeyPath, int]
    problems: list[ProfileProblem] = field(default_factory=list)

    def line(self, path: KeyPath) -> int:
        for n in range(len(path), 0, -1):
            if path[:n] in self.lines:
                return self.lines[path[:n]]
        return 1

    def add(self, path: KeyPath, message: str) -> None:
        self.problems.append(ProfileProblem(self.file, self.line(path), key_text(path), message))

    def bad(self, path: KeyPath, message: str) -> Bad:
        self.add(path, message)
        return Bad()

    def unknown_keys(self, table: dict[str, Any], known: Sequence[str], path: KeyPath) -> None:
        for k in table:
            if k not in known:
                self.add((*path, k), f"unknown key {k!r}{hint(k, known)}")

    def get(
        self, table: dict[str, Any], key: str, path: KeyPath, check: Callable[..., Any], default: Any
    ) -> Any:
        """``check(value, path)`` of ``table[key]`` if present, else ``default``; on a problem, ``Bad``."""
        if key not in table:
            return default
        return check(table[key], (*path, key))

    def table(self, value: Any, path: KeyPath, known: Sequence[str]) -> dict[str, Any]:
        """``value`` as a table whose keys are all ``known`` (unknown ones are recorded, not raised)."""
        if not isinstance(value, dict):
            raise self.bad(path, f"expected a table ([{key_text(path)}]), got {got(value)}")
        self.unknown_keys(value, known, path)
        return value

    def fields(
        self, table: dict[str, Any], path: KeyPath, checks: dict[str, tuple[Callable[..., Any], Any]]
    ) -> dict[str, Any]:
        """Each ``checks[key] = (check, default)`` applied to ``table``: the checked values, and the
        class ``Bad`` for each that failed (its problem recorded), so the others are still checked."""
        out: dict[str, Any] = {}
        for key, (check, default) in checks.items():
            try:
                out[key] = self.get(table, key, path, check, default)
            except Bad:
                out[key] = Bad
        return out

    # value checks: each returns the checked value or raises Bad ------------------------------------

    def string(self, value: Any, path: KeyPath, *, empty_ok: bool = False) -> str:
        if not isinstance(value, str):
            raise self.bad(path, f"expected a string, got {got(value)}")
        if not empty_ok and not value.strip():
            raise self.bad(path, "must not be empty")
        return value

    def integer(self, value: Any, path: KeyPath) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.bad(path, f"expected an integer, got {got(value)}")
        try:
            return values.integer(value, key_text(path))
        except InputError as e:
            raise self.bad(path, e.message) from None

    def number(self, value: Any, path: KeyPath, *, minimum: float, strict: bool, maximum: float) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.bad(path, f"expected a number, got {got(value)}")
        try:
            return values.number(value, key_text(path), lo=minimum, hi=maximum, lo_open=strict)
        except InputError as e:
            raise self.bad(path, e.message) from None

    def choice(self, value: Any, path: KeyPath, choices: Sequence[str]) -> str:
        if not isinstance(value, str):
            raise self.bad(path, f"expected one of {', '.join(map(repr, choices))}, got {got(value)}")
        if value not in choices:
            close = difflib.get_close_matches(value, list(choices), n=1)
            extra = f" (did you mean {close[0]!r}?)" if close else ""
            raise self.bad(path, f"must be one of {', '.join(map(repr, choices))}, got {value!r}{extra}")
        return value

    def amount(self, value: Any, path: KeyPath, *, max_share: float = 1.0) -> int | float | str:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise self.bad(path, f"expected bytes (e.g. 512M, 2G) or a share (e.g. 30%), got {got(value)}")
        try:
            values.amount(value, key_text(path), max_share=max_share)
        except InputError as e:
            raise self.bad(path, e.message) from None
        return value
