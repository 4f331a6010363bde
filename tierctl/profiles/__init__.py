"""Per-workload placement profiles: TOML files -> checked, frozen ``Profile`` objects.

``load_profiles(paths)`` gives a ``ProfileSet`` (match order: priority, then file name) or raises one
``ProfileError`` with every problem of every file; ``ProfileSet.match(Workload(...))`` says which
profile applies and why.  Format and rules: docs/profiles.md.
"""

from __future__ import annotations

from pathlib import Path

from tierctl.profiles.loader import check_profiles, load_profiles, parse_profile
from tierctl.profiles.match import MatchResult, ProfileSet, Workload, unit_of
from tierctl.profiles.schema import MatchRule, Placement, Profile, ProfileError, ProfileProblem

INSTALLED_PROFILES = Path("/etc/tierctl/profiles")


def default_profiles_dir() -> Path:
    """``<repo>/profiles`` in a source checkout, else /etc/tierctl/profiles."""
    repo = Path(__file__).resolve().parents[2] / "profiles"
    if (repo / "default.toml").is_file():
        return repo
    return INSTALLED_PROFILES


__all__ = [
    "INSTALLED_PROFILES",
    "MatchResult",
    "MatchRule",
    "Placement",
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
