"""Which profile applies to a workload: OR-of-AND match rules, first matching profile wins.

A profile matches when ANY of its ``[[match]]`` tables matches (a profile with none matches every
workload); a table matches when ALL of its fields match:

- ``cgroup``: fnmatch glob on the cgroup path as /proc/PID/cgroup shows it (``/system.slice/x.service``);
  ``*`` also matches ``/``;
- ``unit``: fnmatch glob on the systemd unit, the path's last ``*.service`` / ``*.scope`` component;
- ``comm``: regex matched against the WHOLE process name (``re.fullmatch``; the kernel keeps 15 chars);
- ``user``: a user name or a uid; a name and a uid are compared through the password database;
- ``namespace``: fnmatch glob on the pod's namespace;
- ``pod_label``: label -> fnmatch glob on its value; the pod must have every label, each matching;
- ``qos``: the pod's QoS class (``guaranteed``, ``burstable``, ``besteffort``).

A field the workload does not have (no process name for a bare cgroup, a cgroup outside any unit, a
pod whose namespace and labels are unknown without the API server) does not match; a rule with a pod
field never matches a cgroup that is not a pod's (docs/pods.md).
"""

from __future__ import annotations

import fnmatch
import pwd
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import PurePath
from types import MappingProxyType
from typing import Any

from tierctl.profiles.schema import MatchRule, Profile


def normalize_cgroup(path: str) -> str:
    """``system.slice/x`` and ``/system.slice/x/`` both become ``/system.slice/x``."""
    return "/" + path.strip().strip("/")


def unit_of(cgroup: str) -> str | None:
    """The systemd unit a cgroup path belongs to: its last ``*.service`` or ``*.scope`` component."""
    for part in reversed(normalize_cgroup(cgroup).split("/")):
        if part.endswith((".service", ".scope")):
            return part
    return None


@dataclass(frozen=True)
class Pod:
    """What is known of the Kubernetes pod a cgroup belongs to: UID, QoS class and container from the
    kubelet's cgroup names (``tierctl.kernel.kubelet``); namespace, name and labels only from the API
    server (``tierctl.k8s``), None while unknown."""

    uid: str
    qos: str | None = None  # guaranteed, burstable, besteffort
    container: str | None = None  # the container runtime's id; None for the pod's own cgroup
    namespace: str | None = None
    name: str | None = None
    labels: tuple[tuple[str, str], ...] | None = None  # sorted (key, value); None: unknown

    def label(self, key: str) -> str | None:
        return None if self.labels is None else dict(self.labels).get(key)

    def to_json(self) -> dict[str, Any]:
        """The ``"pod"`` of a ``Service.cgroups()`` row (service/contract.py)."""
        return {
            "namespace": self.namespace,
            "name": self.name,
            "uid": self.uid,
            "qos": self.qos,
            "container": self.container,
        }


@dataclass(frozen=True)
class Workload:
    """What the matcher knows about a workload (a cgroup, optionally one of its processes, and the pod
    it belongs to, if any)."""

    cgroup: str
    comm: str | None = None
    user: str | int | None = None  # user name or uid
    pod: Pod | None = None

    @property
    def path(self) -> str:
        return normalize_cgroup(self.cgroup)

    @property
    def unit(self) -> str | None:
        return unit_of(self.cgroup)


def _user_name(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):
        return None


def _user_id(name: str) -> int | None:
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        return None


def user_matches(rule: str | int, user: str | int | None) -> bool:
    if user is None:
        return False
    if isinstance(rule, int):
        return rule == (user if isinstance(user, int) else _user_id(user))
    return rule == (user if isinstance(user, str) else _user_name(user))


def rule_reasons(rule: MatchRule, w: Workload) -> list[str] | None:
    """Why ``rule`` matches ``w`` (one phrase per field), or None when it does not."""
    why: list[str] = []
    if rule.cgroup is not None:
        if not fnmatch.fnmatchcase(w.path, rule.cgroup):
            return None
        why.append(f"cgroup {w.path!r} matches {rule.cgroup!r}")
    if rule.unit is not None:
        unit = w.unit
        if unit is None or not fnmatch.fnmatchcase(unit, rule.unit):
            return None
        why.append(f"unit {unit!r} matches {rule.unit!r}")
    if rule.comm is not None:
        if w.comm is None or rule.comm_re is None or rule.comm_re.fullmatch(w.comm) is None:
            return None
        why.append(f"comm {w.comm!r} matches /{rule.comm}/")
    if rule.user is not None:
        if not user_matches(rule.user, w.user):
            return None
        why.append(f"user {w.user!r} is {rule.user!r}")
    if rule.has_pod_fields:
        pod_why = pod_reasons(rule, w.pod)
        if pod_why is None:
            return None
        why += pod_why
    return why


def pod_reasons(rule: MatchRule, pod: Pod | None) -> list[str] | None:
    """Why the pod fields of ``rule`` match ``pod`` (None: they do not, or there is no pod)."""
    if pod is None:
        return None
    why: list[str] = []
    if rule.namespace is not None:
        if pod.namespace is None or not fnmatch.fnmatchcase(pod.namespace, rule.namespace):
            return None
        why.append(f"namespace {pod.namespace!r} matches {rule.namespace!r}")
    for key, glob in rule.pod_label or ():
        value = pod.label(key)
        if value is None or not fnmatch.fnmatchcase(value, glob):
            return None
        why.append(f"pod label {key}={value!r} matches {glob!r}")
    if rule.qos is not None:
        if pod.qos != rule.qos:
            return None
        why.append(f"qos {pod.qos!r} is {rule.qos!r}")
    return why


@dataclass(frozen=True)
class MatchResult:
    profile: Profile
    rule: MatchRule | None  # None: the profile is a catch-all
    reasons: tuple[str, ...]
    tried: tuple[str, ...]  # profiles tried before, which did not match

    def explain(self) -> str:
        p = self.profile
        head = f"profile {p.name!r} ({p.file}, priority {p.priority})"
        if self.rule is None:
            why = "catch-all: it has no [[match]] tables"
        else:
            why = f"match[{self.rule.index}] (line {self.rule.line}): " + "; ".join(self.reasons)
        lines = [head, f"  because {why}"]
        if self.tried:
            lines.append(f"  tried first, no match: {', '.join(self.tried)}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, object]:
        return {
            "profile": self.profile.name,
            "file": self.profile.file,
            "priority": self.profile.priority,
            "catch_all": self.rule is None,
            "rule": None if self.rule is None else self.rule.to_json(),
            "reasons": list(self.reasons),
            "tried": list(self.tried),
        }


def match_profile(profile: Profile, w: Workload) -> tuple[MatchRule | None, tuple[str, ...]] | None:
    """(the first matching rule, reasons) when ``profile`` applies to ``w``; rule None for a catch-all."""
    if profile.is_catch_all:
        return None, ()
    for rule in profile.match:
        why = rule_reasons(rule, w)
        if why is not None:
            return rule, tuple(why)
    return None


def sort_key(p: Profile) -> tuple[int, str, str]:
    """Match order: higher ``priority`` first, then file name, then the full path."""
    return (-p.priority, PurePath(p.file).name, p.file)


class ProfileSet:
    """Checked profiles in match order (see ``sort_key``)."""

    def __init__(self, profiles: list[Profile] | tuple[Profile, ...]) -> None:
        self.profiles: tuple[Profile, ...] = tuple(sorted(profiles, key=sort_key))
        self.by_name: Mapping[str, Profile] = MappingProxyType({p.name: p for p in self.profiles})

    def __iter__(self) -> Iterator[Profile]:
        return iter(self.profiles)

    def __len__(self) -> int:
        return len(self.profiles)

    def names(self) -> list[str]:
        return [p.name for p in self.profiles]

    def match(self, w: Workload) -> MatchResult | None:
        """The first profile (in match order) that applies to ``w``; None only without a catch-all."""
        tried: list[str] = []
        for p in self.profiles:
            hit = match_profile(p, w)
            if hit is not None:
                return MatchResult(p, hit[0], hit[1], tuple(tried))
            tried.append(p.name)
        return None
