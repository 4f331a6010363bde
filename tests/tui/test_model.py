"""The TUI's pure rules: formatting, rates, rows, sort and filter, node use, histogram axis."""

from __future__ import annotations

from tierctl.tui.detail import axis, histogram_text, strip_text
from tierctl.tui.model import (
    Rates,
    blocks,
    fmt_bytes,
    fmt_ratio,
    node_use,
    row_cells,
    tier_totals,
    visible_rows,
)

ROWS = [
    {
        "path": "/a",
        "profile": "db",
        "override": "auto",
        "fast_bytes": 10,
        "slow_bytes": 5,
        "hot_bytes": 1,
        "est_fast_hit_ratio": 0.5,
    },
    {
        "path": "/b",
        "profile": "batch",
        "override": "fast",
        "fast_bytes": 30,
        "slow_bytes": 0,
        "hot_bytes": 9,
        "est_fast_hit_ratio": None,
    },
    {
        "path": "/c/db",
        "profile": "-",
        "override": "auto",
        "fast_bytes": 20,
        "slow_bytes": 50,
        "hot_bytes": 3,
        "est_fast_hit_ratio": 0.9,
    },
]


def paths(rows: list[dict]) -> list[str]:
    return [r["path"] for r in rows]


def test_sort_numbers_largest_first_text_a_to_z_and_reverse() -> None:
    assert paths(visible_rows(ROWS, sort="fast", reverse=False, needle="")) == ["/b", "/c/db", "/a"]
    assert paths(visible_rows(ROWS, sort="fast", reverse=True, needle="")) == ["/a", "/c/db", "/b"]
    assert paths(visible_rows(ROWS, sort="slow", reverse=False, needle="")) == ["/c/db", "/a", "/b"]
    assert paths(visible_rows(ROWS, sort="hit", reverse=False, needle="")) == ["/c/db", "/a", "/b"]
    assert paths(visible_rows(ROWS, sort="path", reverse=False, needle="")) == ["/a", "/b", "/c/db"]
    assert paths(visible_rows(ROWS, sort="profile", reverse=False, needle="")) == ["/c/db", "/b", "/a"]


def test_filter_matches_path_profile_or_pin_case_insensitively() -> None:
    assert paths(visible_rows(ROWS, sort="path", reverse=False, needle="DB")) == ["/a", "/c/db"]
    assert paths(visible_rows(ROWS, sort="path", reverse=False, needle="fast")) == ["/b"]
    assert visible_rows(ROWS, sort="path", reverse=False, needle="nothing") == []


def test_row_cells_format_missing_values_as_dash() -> None:
    assert row_cells(ROWS[1]) == ("/b", "-", "batch", "fast", "30B", "0B", "9B", "-")
    assert row_cells({"path": "/x"}) == ("/x", "-", "-", "auto", "-", "-", "-", "-")
    assert fmt_bytes(3 * 2**30) == "3.0G" and fmt_bytes(True) == "-"
    assert fmt_ratio(0.25) == "25.0%"


def test_rates_per_second_per_cycle_and_restart() -> None:
    r = Rates(points=4)
    r.push({"moved": {"promoted": 0, "demoted": 0}, "uptime_s": 0, "cycle": 0})
    r.push({"moved": {"promoted": 100, "demoted": 40}, "uptime_s": 2, "cycle": 2})
    assert (r.promoted[-1], r.demoted[-1], r.unit) == (50.0, 20.0, "/s")
    r.push({"moved": {"promoted": 130, "demoted": 40}, "uptime_s": 2, "cycle": 5})  # frozen clock
    assert (r.promoted[-1], r.unit) == (10.0, "/cycle")
    r.push({"moved": {"promoted": 130, "demoted": 40}, "uptime_s": 2, "cycle": 5})  # nothing new
    assert list(r.promoted) == [0.0, 0.0, 50.0, 10.0]
    r.push({"moved": {"promoted": 5, "demoted": 1}, "uptime_s": 1, "cycle": 1})  # daemon restarted
    assert list(r.promoted) == [0.0, 0.0, 50.0, 10.0]
    r.push({"moved": {"promoted": 6, "demoted": 1}, "uptime_s": 2, "cycle": 2})
    assert r.promoted[-1] == 1.0


def test_node_use_from_topology_and_cgroups() -> None:
    topo = {
        "page_size": 4096,
        "nodes": [
            {"id": 0, "tier": 0, "capacity_pages": 100, "free_pages": 40},
            {"id": 1, "tier": 2, "capacity_pages": 400, "free_pages": 400},
        ],
    }
    cgs = [{"bytes_per_node": {"0": 4096 * 10, "1": 4096}}, {"bytes_per_node": {"0": 4096 * 5}}]
    n0, n1 = node_use(topo, cgs)
    assert (n0.tier, n0.capacity, n0.used, n0.managed) == ("fast", 409600, 245760, 61440)
    assert (n1.tier, n1.used, n1.managed) == ("slow", 0, 4096)
    assert tier_totals([n0, n1]) == {"fast": (245760, 409600), "slow": (0, 1638400)}
    assert node_use({}, cgs) == []


def test_blocks_and_axis() -> None:
    assert blocks([0, 1, 8, 16], 16) == " ▁▄█"
    assert blocks([1, 2], 0) == "  "
    assert axis([0.0, 1.0, 3.16, 10.0, 31.6, 100.0], 2) == "0 1   10  100"


def test_histogram_and_strip_text() -> None:
    d = {"heat_histogram": {"fast": [0, 4], "slow": [8, 0]}, "heat_edges": [0, 1, 10]}
    text = histogram_text(d, width=20).plain  # 5 for the label, 2 for the total: 6 cells a bucket
    assert "fast       ▄▄▄▄▄▄ 4" in text and "slow ██████       8" in text and "heat 0     1" in text
    wide = histogram_text(d, width=200).plain  # the buckets grow with the width
    assert "fast " + " " * 96 + "▄" * 96 + " 4" in wide
    assert histogram_text({}).plain == "n/a"
    assert strip_text(None).plain.startswith("n/a")
    strip = strip_text({"heat": [0, 1, 2], "fast_fraction": [1.0, 0.5, 0.0]}).plain
    assert "tier █▄▁" in strip_text({"heat": [0, 1, 2], "fast_fraction": [1.0, 0.5, 0.0]}, width=8).plain
    assert "tier " + "█" * 21 + "▄" * 21 + "▁" * 21 in strip  # 70 wide: 21 cells a bucket
    # the heat row is readable without colour: a glyph ramp, cold to hot, and its legend
    assert "heat " + "·" * 21 + "▓" * 21 + "█" * 21 in strip and "cold ·░▒▓▓██ hot" in strip
