"""Checking a profile's ``[pressure]`` table (docs/profiles.md, docs/pressure.md)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import Any

from tierctl import values
from tierctl.profiles.filecheck import Bad, FileCheck, KeyPath, got
from tierctl.profiles.schema import HOOKS, KILL_POLICIES, PressurePolicy

PRESSURE_KEYS = ("priority", "protect", "trim", "trim_rate_mbps", "notify", "grace_s", "kill", "hooks")
MAX_GRACE_S = 3600.0
MAX_ARGV = 64
MAX_ARG_LEN = 4096


def _boolean(fc: FileCheck, value: Any, path: KeyPath) -> bool:
    if not isinstance(value, bool):
        raise fc.bad(path, f"expected true or false, got {got(value)}")
    return value


def _argv(fc: FileCheck, value: Any, path: KeyPath) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(a, str) for a in value):
        raise fc.bad(
            path, f'expected an array of strings, the program first (["/usr/bin/x", "--y"]), got {got(value)}'
        )
    if len(value) > MAX_ARGV or any(len(a) > MAX_ARG_LEN or "\0" in a for a in value):
        raise fc.bad(path, f"at most {MAX_ARGV} arguments of at most {MAX_ARG_LEN} characters, without NUL")
    if not os.path.isabs(value[0]):
        raise fc.bad(
            path, f"the program must be an absolute path (no $PATH lookup as root), got {value[0]!r}"
        )
    return tuple(value)


def _hooks(fc: FileCheck, value: Any, path: KeyPath) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if not isinstance(value, dict):
        raise fc.bad(path, f"expected a table ([pressure.hooks]), got {got(value)}")
    n_before = len(fc.problems)
    fc.unknown_keys(value, HOOKS, path)
    out = []
    for event in HOOKS:
        with contextlib.suppress(Bad):
            argv = fc.get(value, event, path, lambda v, p: _argv(fc, v, p), None)
            if argv is not None:
                out.append((event, argv))
    if len(fc.problems) != n_before:
        raise Bad()
    return tuple(out)


def check_pressure(fc: FileCheck, value: Any) -> PressurePolicy:
    path: KeyPath = ("pressure",)
    n_before = len(fc.problems)
    value = fc.table(value, path, PRESSURE_KEYS)
    d = PressurePolicy()
    checks: dict[str, tuple[Callable[..., Any], Any]] = {
        "priority": (fc.integer, d.priority),
        "protect": (fc.amount, d.protect),
        "trim": (lambda v, p: _boolean(fc, v, p), d.trim),
        "trim_rate_mbps": (
            lambda v, p: fc.number(v, p, minimum=0, strict=True, maximum=values.MAX_RATE_MBPS),
            d.trim_rate_mbps,
        ),
        "notify": (lambda v, p: _boolean(fc, v, p), d.notify),
        "grace_s": (lambda v, p: fc.number(v, p, minimum=0, strict=False, maximum=MAX_GRACE_S), d.grace_s),
        "kill": (lambda v, p: fc.choice(v, p, KILL_POLICIES), d.kill),
        "hooks": (lambda v, p: _hooks(fc, v, p), d.hooks),
    }
    out = fc.fields(value, path, checks)
    hooks = dict(out["hooks"]) if out["hooks"] is not Bad else {}
    if "prekill" in hooks and out["kill"] == "never":
        fc.add(
            (*path, "hooks", "prekill"), "a prekill hook with kill = 'never' never runs; set kill = 'cgroup'"
        )
    if len(fc.problems) != n_before:
        raise Bad()
    return PressurePolicy(**out)
