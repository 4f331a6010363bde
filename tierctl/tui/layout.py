"""The cgroups table's column layout: which columns a width can hold and how wide each is (pure).

Columns grow to their content (the profile and pod columns show whole names when there is room; the
cgroup column is never wider than its longest path, so no run of blanks sits beside a cut name) and
give way, least wanted first, when the width is short — the cgroup column keeps PATH_WANT characters.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

COLUMNS: tuple[tuple[str, str], ...] = (
    ("path", "cgroup"),
    ("pod", "pod"),
    ("profile", "profile"),
    ("override", "pin"),
    ("fast", "fast"),
    ("slow", "slow"),
    ("hot", "hot"),
    ("hit", "hit"),
)
# shown while the pressure ladder runs and reports cgroups (tierctl.tui.pressure_model.has_columns)
PRESSURE_COLUMNS: tuple[tuple[str, str], ...] = (("psi", "PSI"), ("wset", "wset"), ("state", "state"))
ALL_COLUMNS = COLUMNS + PRESSURE_COLUMNS  # in the order they are shown
LABELS: Mapping[str, str] = MappingProxyType(dict(ALL_COLUMNS))
BASE_KEYS = tuple(k for k, _ in COLUMNS if k != "pod")  # without pods and pressure
SORTS = ("fast", "slow", "hot", "hit", "psi", "wset", "state", "path", "pod", "profile")  # `s` cycles
TEXT_SORTS = frozenset({"path", "pod", "profile", "state"})  # A to Z; the others: largest first
# fixed widths; "profile" and "pod" are their least, they grow to their longest name up to GROW_MAX
WIDTHS: Mapping[str, int] = MappingProxyType(
    {
        "pod": 10,
        "profile": 8,
        "override": 5,
        "fast": 7,
        "slow": 7,
        "hot": 7,
        "hit": 6,
        "psi": 5,
        "wset": 7,
        "state": 5,
    }
)
GROW_MAX: Mapping[str, int] = MappingProxyType({"profile": 24, "pod": 40})
MIN_PATH = 12
PATH_WANT = 20  # columns give way rather than the path get narrower than this
# which columns stay when the width is short, most wanted first
PRIORITY = ("override", "pod", "fast", "slow", "psi", "wset", "profile", "hit", "state", "hot")
CHROME = 3  # the table's border and scroll bar


def plan_columns(
    width: int,
    pressure: bool,
    padding: int = 1,
    *,
    natural: Mapping[str, int] | None = None,
    pods: bool = False,
) -> dict[str, int]:
    """{column: width} of the columns shown, in order, for a table ``width`` wide. ``natural``: the
    longest text of the "path", "profile" and "pod" columns (unknown: as wide as it may be)."""
    nat = natural or {}
    pad = 2 * padding
    offered = {k for k, _ in COLUMNS if k != "pod" or pods} | (
        {k for k, _ in PRESSURE_COLUMNS} if pressure else set()
    )
    used = pad + CHROME
    chosen: set[str] = set()
    for k in PRIORITY:
        if k in offered and width - used - WIDTHS[k] - pad >= PATH_WANT:
            chosen.add(k)
            used += WIDTHS[k] + pad
    room = max(MIN_PATH, width - used)
    path_nat = max(nat.get("path", room), len(LABELS["path"]) + 2)
    spare = max(room - path_nat, 0)  # what the path does not need goes to the names first
    widths = {k: WIDTHS[k] for k, _ in ALL_COLUMNS if k in chosen}
    for k in ("profile", "pod"):
        if k in widths:
            grow = min(max(nat.get(k, GROW_MAX[k]), widths[k]), GROW_MAX[k]) - widths[k]
            # at a short width the names may also take from the path down to PATH_WANT
            take = min(grow, spare + max(room - spare - PATH_WANT, 0))
            take = max(take, 0)
            widths[k] += take
            room -= take
            spare = max(spare - take, 0)
    return {"path": max(MIN_PATH, min(room, path_nat)), **widths}


def table_layout(
    width: int,
    pressure: bool,
    padding: int = 1,
    *,
    natural: Mapping[str, int] | None = None,
    pods: bool = False,
) -> tuple[tuple[str, ...], int]:
    """(the columns shown, in order, and the path column's width): see plan_columns."""
    plan = plan_columns(width, pressure, padding, natural=natural, pods=pods)
    return tuple(plan), plan["path"]
