"""Per-cgroup rate limits on a plan: order kept, first rows of each (cgroup, kind) kept."""

from __future__ import annotations

import numpy as np
import pytest

from tierctl.core.limits import limit_plan
from tierctl.core.plan import Plan
from tierctl.core.policy import Quota
from tierctl.errors import InputError


def test_limits_keep_the_first_rows_of_each_cgroup_and_kind() -> None:
    cgroup = np.array([0, 1, 0, 1, 0, 1, 0, 1], np.uint16)
    plan = Plan.build(np.array([0, 1, 2, 3]), 0, np.array([4, 5, 6, 7]), 1)
    out, dropped = limit_plan(plan, cgroup, {0: Quota(promote_pages=1), 1: Quota(demote_pages=0)})
    assert out.demote.tolist() == [4, 6]  # cgroup 1 may not demote; cgroup 0 unlimited
    assert out.promote.tolist() == [0, 1, 3]  # cgroup 0: its first promotion only
    assert dropped == 3 and len(out) == 5
    assert (out.kind[:2] == 0).all()  # demotions still come first


def test_no_limits_is_the_same_plan() -> None:
    plan = Plan.build(np.array([0, 1]), 0, np.array([2]), 1)
    cg = np.zeros(3, np.uint16)
    assert limit_plan(plan, cg, {0: Quota(1, 5)}) == (plan, 0)
    assert limit_plan(plan, cg, {0: Quota(promote_pages=10)}) == (plan, 0)
    assert limit_plan(Plan.empty(), cg, {0: Quota(promote_pages=0)})[1] == 0


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"threshold": 0.0}, "quota.threshold"),
        ({"hysteresis": -1.0}, "quota.hysteresis"),
        ({"promote_pages": -1}, "quota.promote_pages"),
        ({"demote_pages": -5}, "quota.demote_pages"),
    ],
)
def test_bad_placement_values_name_the_field(kw: dict, field: str) -> None:
    with pytest.raises(InputError) as e:
        Quota(**kw)
    assert e.value.where == field
