"""Per-workload placement profiles: TOML files -> checked, frozen ``Profile`` objects.

``load_profiles(paths)`` gives a ``ProfileSet`` (match order: priority, then file name) or raises one
``ProfileError`` with every problem of every file; ``ProfileSet.match(Workload(...))`` says which
profile applies and why (a ``Workload`` may carry the ``Pod`` its cgroup belongs to: docs/pods.md).
Format and rules: docs/profiles.md.
"""

from __future__ import annotations

from pathlib import Path

from tierctl import data
from tierctl.profiles.loader import check_profiles, load_profiles, parse_profile
from tierctl.profiles.match import MatchResult, Pod, ProfileSet, Workload, unit_of
from tierctl.profiles.schema import MatchRule, Placement, Profile, ProfileError, ProfileProblem

INSTALLED_PROFILES = Path("/etc/tierctl/profiles")


def default_profiles_dir() -> Path:
    """The administrator's /etc/tierctl/profiles when it exists, else the profiles tierctl ships
    (package data: the same in a source checkout and an installed wheel)."""
    if INSTALLED_PROFILES.is_dir():
        return INSTALLED_PROFILES
    return data.profiles_dir()


__all__ = [
    "INSTALLED_PROFILES",
    "MatchResult",
    "MatchRule",
    "Placement",
    "Pod",
    "Profile",
    "ProfileError",
    "ProfileProblem",
    "ProfileSet",
    "Workload",
    "check_profiles",
    "default_profiles_dir",
    "load_profiles",
    "parse_profile",
    "unit_of",
]
