"""Checking a profile's ``[[match]]`` tables: each field's value, every problem recorded with its file,
line and dotted key (``match[1].pod_label.app``), as ``tierctl.profiles.loader`` does for the rest.

The pod fields follow Kubernetes' own rules (what the API server accepts), so a rule that could never
match (``namespace = "Shop"``: namespaces are lowercase) is refused with the reason instead of
silently matching nothing. Globs (``*``, ``?``, ``[...]``) are allowed where fnmatch applies.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

from tierctl.kernel.kubelet import QOS_CLASSES
from tierctl.profiles.filecheck import Bad, FileCheck, KeyPath, got
from tierctl.profiles.schema import MatchRule

MATCH_KEYS = ("cgroup", "unit", "comm", "user", "namespace", "pod_label", "qos")
GLOB_CHARS = "*?[]!"
# namespaces are DNS-1123 labels; label names and values are "qualified names" (k8s.io/apimachinery
# pkg/util/validation): at most 63 characters, alphanumeric at both ends
_NAMESPACE_RE = re.compile(r"[a-z0-9*?\[\]!-]{1,63}")
_LABEL_NAME_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?")
_LABEL_PREFIX_RE = re.compile(r"[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?")
_LABEL_VALUE_RE = re.compile(r"[A-Za-z0-9_.*?\[\]!-]{0,63}")


def _comm(fc: FileCheck, value: Any, path: KeyPath) -> re.Pattern[str]:
    src = fc.string(value, path)
    try:
        return re.compile(src)
    except re.error as e:
        raise fc.bad(path, f"invalid regex {src!r}: {e}") from None


def _user(fc: FileCheck, value: Any, path: KeyPath) -> str | int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise fc.bad(path, f"expected a user name or a uid, got {got(value)}")
    if isinstance(value, int) and not 0 <= value < 2**32 - 1:
        raise fc.bad(path, f"a uid must be within 0..4294967294, got {value}")
    if isinstance(value, str) and not value.strip():
        raise fc.bad(path, "must not be empty")
    return value


def _cgroup_glob(fc: FileCheck, value: Any, path: KeyPath) -> str:
    glob = fc.string(value, path)
    if not glob.startswith(("/", "*")):
        raise fc.bad(
            path,
            "must start with '/' or '*' (a path below the cgroup root, as in /proc/PID/cgroup), "
            f"got {glob!r}",
        )
    return glob


def _namespace(fc: FileCheck, value: Any, path: KeyPath) -> str:
    glob = fc.string(value, path)
    if not _NAMESPACE_RE.fullmatch(glob):
        raise fc.bad(
            path,
            f"not a namespace or a glob of one: {glob!r} (at most 63 lowercase letters, digits and '-'; "
            f"glob characters {GLOB_CHARS} allowed)",
        )
    return glob


def label_key_ok(key: str) -> bool:
    """A Kubernetes label key: an optional DNS-subdomain prefix and ``/``, then a name."""
    prefix, slash, name = key.rpartition("/")
    if slash and not _LABEL_PREFIX_RE.fullmatch(prefix):
        return False
    return _LABEL_NAME_RE.fullmatch(name) is not None


def _pod_label(fc: FileCheck, value: Any, path: KeyPath) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        raise fc.bad(
            path, f'expected a table of label = value (pod_label = {{ app = "redis" }}), got {got(value)}'
        )
    if not value:
        raise fc.bad(path, "an empty pod_label table would match every pod; give at least one label")
    out: list[tuple[str, str]] = []
    ok = True
    for key, glob in value.items():
        kp: KeyPath = (*path, key)
        if not label_key_ok(key):
            fc.add(
                kp,
                f"not a Kubernetes label key: {key!r} (an optional DNS prefix and '/', then at most 63 "
                "letters, digits, '-', '_' or '.', beginning and ending with a letter or digit)",
            )
            ok = False
        elif not isinstance(glob, str):
            fc.add(kp, f"expected a string (the label's value, or a glob of it), got {got(glob)}")
            ok = False
        elif not _LABEL_VALUE_RE.fullmatch(glob):
            fc.add(
                kp,
                f"not a label value or a glob of one: {glob!r} (at most 63 letters, digits, '-', '_' or "
                f"'.'; glob characters {GLOB_CHARS} allowed)",
            )
            ok = False
        else:
            out.append((key, glob))
    if not ok:
        raise Bad()
    return tuple(sorted(out))


def match_rules(fc: FileCheck, value: Any) -> tuple[MatchRule, ...]:
    """The checked ``[[match]]`` tables of one file, or ``Bad`` with every problem recorded."""
    path: KeyPath = ("match",)
    if isinstance(value, dict):
        raise fc.bad(path, "expected an array of tables ([[match]]), got a table ([match])")
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise fc.bad(path, f"expected an array of tables ([[match]]), got {got(value)}")
    if not value:
        raise fc.bad(path, "an empty match list matches nothing; leave 'match' out for a catch-all")
    rules: list[MatchRule] = []
    failed = False
    for i, table in enumerate(value):
        tp: KeyPath = ("match", i)
        n_before = len(fc.problems)
        fc.unknown_keys(table, MATCH_KEYS, tp)
        if not table:
            known = ", ".join(MATCH_KEYS)
            fc.add(tp, f"empty match table (give one of {known}; no [[match]] at all = catch-all)")
        fields: dict[str, Any] = {}
        for key, check in (
            ("cgroup", lambda v, p: _cgroup_glob(fc, v, p)),
            ("unit", fc.string),
            ("comm", lambda v, p: _comm(fc, v, p)),
            ("user", lambda v, p: _user(fc, v, p)),
            ("namespace", lambda v, p: _namespace(fc, v, p)),
            ("pod_label", lambda v, p: _pod_label(fc, v, p)),
            ("qos", lambda v, p: fc.choice(v, p, QOS_CLASSES)),
        ):
            with contextlib.suppress(Bad):
                fields[key] = fc.get(table, key, tp, check, None)
        if len(fc.problems) != n_before:
            failed = True
            continue
        comm_re = fields.pop("comm")
        rules.append(
            MatchRule(
                index=i,
                line=fc.line(tp),
                comm=None if comm_re is None else comm_re.pattern,
                comm_re=comm_re,
                **fields,
            )
        )
    if failed:
        raise Bad()
    return tuple(rules)
