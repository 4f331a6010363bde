"""A row's state colour from its quota: every form of a quota's maximum reads as the service reads it."""

from __future__ import annotations

import pytest

from tierctl.tui.rowinfo import row_state

GIB = 1 << 30


@pytest.mark.parametrize("fast_max", ["60%", 0.6, "614M", 614 << 20])
def test_over_the_quotas_maximum_in_every_form(fast_max: object) -> None:
    """60 % of a 1 GiB fast tier, written as a share string, a float share, a size or bytes: 700 MiB
    fast is over it, 500 MiB is not (a float share was read as 0 bytes: every row was over)."""
    quota = {"fast_max": fast_max}
    assert row_state({"fast_bytes": 700 << 20}, quota, GIB) == "over_quota"
    assert row_state({"fast_bytes": 500 << 20}, quota, GIB) is None
