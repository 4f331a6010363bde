"""Placement policies, by name.

``POLICIES`` maps a name to a factory taking keyword options; it is an immutable
mapping built once here, not a registry that modules mutate at import time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from tierctl.core.policies.ewma import EwmaPolicy
from tierctl.core.policies.nb2 import Nb2Policy
from tierctl.core.policies.static import StaticPolicy
from tierctl.core.policies.tierctl import TierctlPolicy
from tierctl.core.policy import Policy
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
    return pick(POLICIES, name, kind="policy", where="--policy")(**options)
