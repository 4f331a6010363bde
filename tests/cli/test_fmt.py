"""One byte formatter (tierctl/fmt.py) for every command: its rules, the round trip through the parser
every input uses, and the commands that print sizes printing them its way."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tierctl.cli import main
from tierctl.errors import InputError
from tierctl.fmt import fmt_amount, fmt_bytes, fmt_share, parse_amount, parse_bytes
from tierctl.values import MAX_BYTES

FIX = Path(__file__).resolve().parents[1] / "fixtures"
SIZE = r"(?:\d+B|\d+\.\d[KMGT])"  # what fmt_bytes prints, and nothing else


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0B"),
        (1, "1B"),
        (1023, "1023B"),
        (1024, "1.0K"),
        (4096, "4.0K"),
        (int(38.1 * 2**20), "38.1M"),
        (2 * 2**30, "2.0G"),
        (int(1.5 * 2**40), "1.5T"),
        (1023 * 1024 + 1000, "1.0M"),  # 1023.98K rounds to 1024.0: the next unit, never "1024.0K"
        (2**50, "1024.0T"),  # the largest unit is T, as the parser's
        (-1536, "-1.5K"),
    ],
)
def test_fmt_bytes_rules(n: int, text: str) -> None:
    assert fmt_bytes(n) == text


@pytest.mark.parametrize("bad", [None, "12", True, float("nan"), float("inf"), [1]])
def test_fmt_bytes_prints_a_dash_for_what_is_not_a_number(bad: object) -> None:
    assert fmt_bytes(bad) == "-"


@given(st.integers(min_value=0, max_value=MAX_BYTES))
def test_parse_takes_back_what_fmt_prints(n: int) -> None:
    text = fmt_bytes(n)
    assert re.fullmatch(SIZE, text)
    back = parse_bytes(text)
    if n < 1024:
        assert back == n
    else:  # one decimal: within half a tenth of the unit, and printing it again gives the same text
        assert abs(back - n) <= 0.05 * n
        assert fmt_bytes(back) == text


@pytest.mark.parametrize(
    ("typed", "n"),
    [("4G", 4 << 30), ("4GiB", 4 << 30), ("4 GiB", 4 << 30), ("4096M", 4 << 30), ("512", 512), ("0B", 0)],
)
def test_parse_bytes_takes_what_people_type(typed: str, n: int) -> None:
    assert parse_bytes(typed) == n


def test_parse_bytes_refuses_a_share_naming_the_field() -> None:
    with pytest.raises(InputError, match="fast_min"):
        parse_bytes("60%", "fast_min")


@pytest.mark.parametrize(
    ("value", "text"),
    [("4G", "4.0G"), (4 << 30, "4.0G"), ("60%", "60%"), (0.4, "40%"), ("12.5%", "12.5%"), (0, "0B")],
)
def test_amounts_print_as_bytes_or_shares_and_parse_back(value: object, text: str) -> None:
    assert fmt_amount(value) == text
    assert fmt_amount(parse_amount(text)) == text


def test_amounts_that_are_not_amounts() -> None:
    assert fmt_amount(None) == "-" and fmt_amount("lots") == "-" and fmt_share("x") == "-"


# ---- every command that prints sizes prints them this way ------------------------------------------


def test_cgroups_prints_sizes_with_the_formatter(capsys: pytest.CaptureFixture[str]) -> None:
    cg = FIX / "cgroupfs" / "guest-v2"
    assert main(["cgroups", "--cgroup-root", str(cg), "--proc-root", str(FIX / "procfs" / "guest")]) == 0
    rows = capsys.readouterr().out.splitlines()[3:]
    assert rows and all(re.fullmatch(SIZE, w) for r in rows for w in r.split()[1:-2])


def test_topology_prints_sizes_and_bandwidth_with_the_formatter(capsys: pytest.CaptureFixture[str]) -> None:
    root = FIX / "topology" / "guest-two-tier"
    assert main(["topology", "--sys-root", str(root / "sys"), "--proc-root", str(root / "proc")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[5:7] == ["size", "free"] and "bandwidth" in lines[0]
    for line in lines[2:4]:
        words = line.split()
        assert re.fullmatch(SIZE, words[4]) and re.fullmatch(SIZE, words[5])
        assert re.fullmatch(SIZE + "/s", words[7])


def test_pages_prints_sizes_with_the_formatter(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pages", str(os.getpid()), "--maps"]) == 0
    out = capsys.readouterr().out
    assert re.match(rf"pid {os.getpid()} \(.*\): {SIZE} resident\n", out)
    node_row = out.splitlines()[3].split()
    assert re.fullmatch(SIZE, node_row[2])
    maps = out.split("\n\n")[1].splitlines()
    assert maps[0].split()[-3:] == ["page", "policy", "mapping"]
    assert all(re.fullmatch(SIZE, w) for w in maps[2].split()[1:-2])


def test_profile_show_prints_amounts_with_the_formatter(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", "show", "database"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"fast_min\s+4\.0G\n", out) and re.search(r"fast_max\s+60%\n", out)


def test_sim_prints_the_page_size_with_the_formatter(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--workload", "zipf-shift", "--scale", "0.0625", "--epochs", "4"]) == 0
    assert "pages of 4.0K," in capsys.readouterr().out
