"""Placement policies, by name.

``POLICIES`` maps a name to a factory taking keyword options; it is an immutable
mapping built once here, not a registry that modules mutate at import time.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from tierctl.core.policies.ewma import EwmaPolicy
from tierctl.core.policies.nb2 import Nb2Policy
from tierctl.core.policies.static import StaticPolicy
from tierctl.core.policies.tierctl import TierctlPolicy
from tierctl.core.policy import Policy
from tierctl.errors import InputError
from tierctl.registry import pick

POLICIES: Mapping[str, Callable[..., Policy]] = MappingProxyType(
    {
        "tierctl": TierctlPolicy,
        "static": StaticPolicy,
        "nb2": Nb2Policy,
        "ewma": EwmaPolicy,
    }
)
DEFAULT_POLICY = "tierctl"


def make_policy(name: str, **options: Any) -> Policy:
    """Policy ``name`` with keyword ``options``; an option it does not take is an InputError naming
    the ones it does."""
    factory = pick(POLICIES, name, kind="policy", where="--policy")
    known = [p for p in inspect.signature(factory).parameters if p != "self"]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise InputError(
            f"policy {name!r} has no option {', '.join(map(repr, unknown))}; its options: "
            f"{', '.join(known) or 'none'}",
            "--policy-option",
        )
    return factory(**options)
