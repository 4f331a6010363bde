"""Placement policies, by name.

``POLICIES`` maps a name to a factory taking keyword options; it is an immutable
mapping built once here, not a registry that modules mutate at import time.

Options arrive as text or loosely typed values (``--policy-option KEY=VALUE``, a config); ``make_policy``
checks and converts each against its factory parameter's annotation (int, float, bool, str, a Literal,
an Enum, ``X | None``) through ``tierctl.values``, so a wrong type is an ``InputError`` naming the
option, never a ``TypeError`` inside a policy. Ranges beyond "finite, and an integer within 32 bits"
are each policy's own checks.
"""

from __future__ import annotations

import enum
import inspect
import sys
import types
import typing
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from tierctl import values
from tierctl.core.census import default_workers
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
THREADS_OPTION = "threads"  # the option of a policy whose block passes may run on several threads


def policy_options(name: str) -> dict[str, inspect.Parameter]:
    """The keyword options policy ``name`` takes, by option name (its factory's parameters, their
    annotations evaluated)."""
    factory = pick(POLICIES, name, kind="policy", where="--policy")
    return {k: p for k, p in inspect.signature(factory, eval_str=True).parameters.items() if k != "self"}


def with_threads(name: str, options: Mapping[str, Any], cpus: int | None) -> dict[str, Any]:
    """``options``, plus ``threads`` (``census.default_workers(cpus)``: up to 4, one per CPU) when policy
    ``name`` takes it and ``options`` do not set it. The caller counts the CPUs (the core never asks
    the host); threads change a policy's speed, never its decisions."""
    out = dict(options)
    if THREADS_OPTION in policy_options(name) and THREADS_OPTION not in out:
        out[THREADS_OPTION] = default_workers(cpus)
    return out


def make_policy(name: str, **options: Any) -> Policy:
    """Policy ``name`` with keyword ``options``, each converted to its parameter's type; an option it
    does not take, or a value of the wrong type, is an InputError naming ``--policy-option KEY``."""
    factory = pick(POLICIES, name, kind="policy", where="--policy")
    params = policy_options(name)
    unknown = sorted(set(options) - set(params))
    if unknown:
        raise InputError(
            f"policy {name!r} has no option {', '.join(map(repr, unknown))}; its options: "
            f"{', '.join(params) or 'none'}",
            "--policy-option",
        )
    checked = {k: _convert(v, params[k].annotation, f"--policy-option {k}") for k, v in options.items()}
    return factory(**checked)


_FLOAT_LIMIT = sys.float_info.max


def _convert(value: Any, hint: Any, where: str) -> Any:
    """``value`` as the type ``hint`` names, or an InputError at ``where`` saying what was expected."""
    if hint is Any or hint is inspect.Parameter.empty:
        return value
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        members = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None and len(members) < len(typing.get_args(hint)):
            return None
        errors: list[str] = []
        for member in members:
            try:
                return _convert(value, member, where)
            except InputError as e:
                errors.append(e.message)
        raise InputError(errors[0] if len(errors) == 1 else "; or ".join(errors), where)
    if origin is typing.Literal:
        choices = typing.get_args(hint)
        for c in choices:
            if value == c or (isinstance(value, str) and value.strip() == str(c)):
                return c
        raise InputError(f"expected one of {', '.join(map(str, choices))}, got {value!r}", where)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        for member in hint:
            if value in (member, member.value) or (isinstance(value, str) and value.strip() == member.name):
                return member
        raise InputError(f"expected one of {', '.join(m.name for m in hint)}, got {value!r}", where)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise InputError(f"expected true or false, got {value!r}", where)
    if hint is int:
        return values.integer(value, where, text_ok=True)
    if hint is float:
        return values.number(value, where, lo=-_FLOAT_LIMIT, hi=_FLOAT_LIMIT, text_ok=True)
    if hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, bool):
            return str(value).lower()  # KEY=VALUE parsed true/false out of text meant as text
        if isinstance(value, int | float):
            return str(value)  # or a number
        raise InputError(f"expected text, got {value!r}", where)
    raise InputError(f"cannot take a value for this option (type {hint!r})", where)
