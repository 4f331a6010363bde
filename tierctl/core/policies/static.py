"""``static``: first touch decides, nothing ever migrates (the kernel without tiering)."""

from __future__ import annotations

from tierctl.core.plan import Plan
from tierctl.core.policy import NoThresholds, PolicyView


class StaticPolicy(NoThresholds):
    """First touch decides; never migrates."""

    name = "static"

    def decide(self, view: PolicyView) -> Plan:
        return Plan.empty()
