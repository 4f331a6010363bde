"""Test-suite wiring: `vm` tests run only inside the two-tier guest.

On the host, items marked `vm` are deselected; tests/test_guest_suite.py boots the
guest once (scripts/testbed) and runs all of them there with TIERCTL_IN_GUEST=1.
"""

from __future__ import annotations

import os

import pytest

IN_GUEST = os.environ.get("TIERCTL_IN_GUEST") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep, drop = [], []
    for item in items:
        is_vm = item.get_closest_marker("vm") is not None
        (keep if is_vm == IN_GUEST else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
