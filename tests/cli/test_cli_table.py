"""Tables that fit the terminal: ``render(..., max_width=N)`` wraps the widest text column, and
``tierctl samplers`` wraps its reasons to the terminal's width (``--json`` keeps them whole)."""

from __future__ import annotations

import json

import pytest

from tierctl.cli import main, samplers_cmd
from tierctl.cli.table import MIN_WRAP, render
from tierctl.samplers.base import Availability

LONG = (
    "bcc 0.26.0; event: software page-faults (PERF_TYPE_SOFTWARE/PERF_COUNT_SW_PAGE_FAULTS), sample "
    "period 1 because no PEBS (/sys/bus/event_source/devices/cpu/events/mem-loads missing); no AMD IBS "
    "(/sys/bus/event_source/devices/ibs_op missing); tierctl's minimal header tree at "
    "/usr/lib/python3/dist-packages/tierctl/data/bpf/include"
)
PROBES = [
    ("bpf-perf", Availability(True, LONG)),
    ("bpf-fault", Availability(True, "tracepoint exceptions:page_fault_user")),
    ("damon", Availability(False, "no DAMON sysfs interface (CONFIG_DAMON_SYSFS off) " * 4)),
    ("idle", Availability(False, "")),
]


def words(text: str) -> list[str]:
    return text.split()


def test_a_table_that_fits_is_unchanged() -> None:
    rows = [("a", "yes", "short"), ("bb", "no", "also short")]
    assert render(("x", "y", "z"), rows, max_width=200) == render(("x", "y", "z"), rows)


def test_the_widest_text_column_wraps_to_the_width_and_keeps_every_word() -> None:
    rows = [("a", 1, LONG), ("b", 22, "short")]
    text = render(("name", "n", "reason"), rows, right=[False, True, False], max_width=80)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    whole = render(("name", "n", "reason"), rows, right=[False, True, False]).splitlines()
    assert words("\n".join(lines[:1] + lines[2:])) == words("\n".join(whole[:1] + whole[2:]))
    indent = len("name") + 2 + len("22") + 2  # continuation lines start under the reason column
    assert lines[2].split()[:3] == ["a", "1", "bcc"] and lines[2].index("bcc") == indent
    assert lines[3][:indent] == " " * indent and lines[3][indent] != " "
    assert lines[-1].split() == ["b", "22", "short"]  # the next row starts on its own line


def test_a_terminal_too_narrow_keeps_the_column_at_its_minimum() -> None:
    text = render(("name", "reason"), [("x" * 30, LONG)], right=[False, False], max_width=20)
    assert all(len(line) <= 30 + 2 + MIN_WRAP for line in text.splitlines())


def test_numbers_only_tables_are_not_wrapped() -> None:
    rows = [(10**40, 10**40)]
    assert render(("a", "b"), rows, right=[True, True], max_width=10) == render(
        ("a", "b"), rows, right=[True, True]
    )


def test_samplers_wraps_reasons_at_80_columns(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(samplers_cmd, "_probe_all", lambda: PROBES)
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["samplers"]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 80
    assert words(LONG)[0] in out and "mem-loads" in out and out.count("bpf-perf") == 1
    first = out.splitlines()[2]
    assert first.split()[:3] == ["bpf-perf", "yes", "bcc"]


def test_samplers_json_keeps_each_reason_whole(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(samplers_cmd, "_probe_all", lambda: PROBES)
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["samplers", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got[0] == {"name": "bpf-perf", "available": True, "reason": LONG}
