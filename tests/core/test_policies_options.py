"""``make_policy``'s options: each value checked and converted against its factory parameter's
annotation, a wrong one an InputError naming ``--policy-option KEY``; ``with_threads`` adds the block
passes' thread count the caller counted."""

from __future__ import annotations

import enum
import math
from types import MappingProxyType
from typing import Any, Literal

import pytest

from tierctl.core import policies
from tierctl.core.census import MAX_WORKERS, default_workers
from tierctl.core.policies import make_policy, with_threads
from tierctl.core.policies.nb2 import Nb2Policy
from tierctl.core.policies.static import StaticPolicy
from tierctl.core.policies.tierctl import TierctlPolicy
from tierctl.errors import InputError


@pytest.mark.parametrize(
    ("name", "key", "value", "message"),
    [
        ("tierctl", "hysteresis", "abc", "expected a number, got 'abc'"),
        ("nb2", "hot_threshold_cycles", "x", "expected an integer, got 'x'"),
        ("tierctl", "threads", 2.5, "expected an integer, got float 2.5"),
        ("tierctl", "threads", "2.5", "expected an integer, got '2.5'"),
        ("tierctl", "threads", True, "expected an integer, got bool True"),
        ("tierctl", "hysteresis", math.nan, "must be a finite number"),
        ("tierctl", "hysteresis", "inf", "must be a finite number"),
        ("tierctl", "noise_z", [1.0], "expected a number"),
        ("tierctl", "min_residency", 2**40, "must be <= 2147483647"),
        ("nb2", "low_wmark", "1e999", "must be a finite number"),
    ],
)
def test_a_value_of_the_wrong_type_names_the_option(name: str, key: str, value: Any, message: str) -> None:
    with pytest.raises(InputError, match=message) as exc:
        make_policy(name, **{key: value})
    assert exc.value.where == f"--policy-option {key}" and exc.value.exit_code == 2


def test_good_values_reach_the_policy_converted() -> None:
    p = make_policy("tierctl", hysteresis="0.5", min_residency="4", threads=3, noise_z=1)
    assert isinstance(p, TierctlPolicy)
    assert (p.hysteresis, p.min_residency, p.threads, p.noise_z) == (0.5, 4, 3, 1.0)
    assert type(p.hysteresis) is float and type(p.min_residency) is int and type(p.noise_z) is float
    n = make_policy("nb2", hot_threshold_cycles=" 3 ", low_wmark=0, high_wmark="0.05")
    assert isinstance(n, Nb2Policy) and (n.hot_threshold_cycles, n.low_wmark, n.high_wmark) == (3, 0.0, 0.05)
    assert isinstance(make_policy("static"), StaticPolicy)


def test_a_policy_range_check_still_applies_after_conversion() -> None:
    with pytest.raises(InputError, match="must be >= 0") as exc:
        make_policy("tierctl", hysteresis="-1")
    assert exc.value.where == "tierctl.hysteresis"
    with pytest.raises(InputError, match="must be >= 0") as exc:
        make_policy("tierctl", headroom_cycles=-1)
    assert exc.value.where == "tierctl.headroom_cycles"


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class _Typed:
    """A policy factory with every kind of annotation ``make_policy`` converts."""

    name = "typed"

    def __init__(
        self,
        *,
        flag: bool = False,
        label: str = "",
        mode: Literal["fast", "slow"] = "fast",
        colour: Colour = Colour.RED,
        limit: int | None = None,
        anything: Any = None,
        untyped=None,
    ) -> None:
        self.options = dict(
            flag=flag, label=label, mode=mode, colour=colour, limit=limit, anything=anything, untyped=untyped
        )


@pytest.fixture
def typed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(policies, "POLICIES", MappingProxyType({**policies.POLICIES, "typed": _Typed}))


def _options(**options: Any) -> dict[str, Any]:
    return make_policy("typed", **options).options  # type: ignore[attr-defined]


@pytest.mark.usefixtures("typed")
def test_bool_text_literal_enum_and_optional_values_are_converted() -> None:
    got = _options(flag="True", label=12, mode=" slow", colour="BLUE", limit="7", anything=[1], untyped=2.5)
    assert got == dict(
        flag=True, label="12", mode="slow", colour=Colour.BLUE, limit=7, anything=[1], untyped=2.5
    )
    assert _options(flag=False, label=True, colour="red", limit=None)["label"] == "true"
    assert _options(colour=Colour.BLUE)["colour"] is Colour.BLUE


@pytest.mark.usefixtures("typed")
@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("flag", 1, "expected true or false, got 1"),
        ("flag", "yes", "expected true or false, got 'yes'"),
        ("label", [1], "expected text"),
        ("mode", "medium", "expected one of fast, slow, got 'medium'"),
        ("colour", "GREEN", "expected one of RED, BLUE, got 'GREEN'"),
        ("limit", 1.5, "expected an integer"),
    ],
)
def test_bad_typed_values_name_the_option(key: str, value: Any, message: str) -> None:
    with pytest.raises(InputError, match=message) as exc:
        _options(**{key: value})
    assert exc.value.where == f"--policy-option {key}"


def test_with_threads_adds_the_callers_count_only_where_it_is_an_option() -> None:
    assert with_threads("tierctl", {"hysteresis": 0.5}, 2) == {"hysteresis": 0.5, "threads": 2}
    assert with_threads("tierctl", {}, 64) == {"threads": MAX_WORKERS}
    assert with_threads("tierctl", {"threads": 1}, 64) == {"threads": 1}  # the user's own wins
    assert with_threads("nb2", {"low_wmark": 0.1}, 8) == {"low_wmark": 0.1}  # no such option
    assert with_threads("static", {}, None) == {}
    assert [default_workers(c) for c in (None, 0, 1, 3, 4, 128)] == [1, 1, 1, 3, 4, 4]
    assert make_policy("tierctl", **with_threads("tierctl", {}, 3)).threads == 3  # type: ignore[attr-defined]
    with pytest.raises(InputError, match="unknown policy"):
        with_threads("tierclt", {}, 2)
