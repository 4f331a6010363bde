"""The pressure views: table columns, the detail's pressure panel, the Pressure tab, honest off states.

The data is tests/tui/fake_pressure.py's fixed answer in the shape of docs/pressure.md, on the
synthetic service (and over a real socket once).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from tests.tui.fake_pressure import HISTORY, KINDS0, MiB, WithPressure, fake_pressure
from tests.tui.synthetic import SyntheticService
from tierctl.api.protocol import RemoteError
from tierctl.api.server import ApiServer, Limits
from tierctl.tui import pressure_model as pm
from tierctl.tui.app import TierctlApp
from tierctl.tui.layout import PATH_WANT, table_layout
from tierctl.tui.model import visible_rows
from tierctl.tui.pressure_pieces import KIND_STYLE, kind_bar
from tierctl.tui.pressure_view import cgroups_text, machine_text
from tierctl.tui.source import NO_PRESSURE_OP, LocalSource, SocketSource
from tierctl.tui.table import CgroupTable

from .conftest import WALL, drive, run_app, screen_text, settle

FIRST = "/synth.slice/app-000.service"  # the fake's first cgroup: trimming, PSI 12.5, all kinds
BAR_PARTS = {"anon": 512, "file": 256, "shmem": 64, "kernel": 128, "sock": 32, "swap": 64}  # MiB


def source(mode: str = "on", n: int = 4) -> tuple[WithPressure, LocalSource]:
    svc = WithPressure(SyntheticService(n, seed=1, wall=lambda: WALL), mode)
    return svc, LocalSource(svc, period_s=None, label="synthetic")


async def start(app: TierctlApp, pilot: Pilot[None], src: LocalSource) -> None:
    await drive(app, src, 2)
    await settle(app, pilot)


def lines_after(text: str, marker: str, n: int = 1) -> list[str]:
    """The ``n`` screen lines after the first that contains ``marker``."""
    rows = text.splitlines()
    i = next(i for i, r in enumerate(rows) if marker in r)
    return rows[i + 1 : i + 1 + n]


# ---- pure rules -------------------------------------------------------------------------------------


def test_kinds_omit_none_and_show_file_without_shmem() -> None:
    assert pm.kind_sizes(KINDS0) == [(k, v * MiB) for k, v in BAR_PARTS.items()]
    assert pm.kind_sizes({"anon": 5, "file": None, "shmem": 2}) == [("anon", 5), ("shmem", 2)]
    assert pm.kind_sizes({"file": 1, "shmem": 3}) == [("file", 0), ("shmem", 3)]  # never negative
    assert pm.kind_sizes({}) == []


@pytest.mark.parametrize("width", [10, 37, 64, 200])
def test_split_cells_is_proportional_sums_to_width_and_keeps_small_parts(width: int) -> None:
    sizes = [512, 256, 64, 128, 32, 64, 0]
    cells = pm.split_cells(sizes, width)
    assert sum(cells) == width and cells[-1] == 0
    assert all(c >= 1 for c in cells[:-1])  # a part > 0 is never invisible
    for s, c in zip(sizes, cells, strict=True):
        assert abs(c - width * s / sum(sizes)) <= 1.0
    assert pm.split_cells([0, 0], 10) == [0, 0]
    assert pm.split_cells([1, 1_000_000], 3) == [1, 2]


def test_spark_one_block_per_point_scaled_to_the_largest() -> None:
    line, top = pm.spark([0.0, 5.0, 10.0], 80)
    assert line == "▁▅█" and top == 10.0
    line, top = pm.spark([0.1, 0.2], 80)
    assert top == 1.0 and line == "▂▂"  # under 1 %: flat, not blown up
    assert len(pm.spark([1.0] * 120, 50)[0]) == 50  # the newest that fit


def test_ladder_line_never_blank() -> None:
    assert pm.ladder_line(fake_pressure(["/a"], mode="off")) == ("pressure ladder: off", "off")
    line, level = pm.ladder_line(fake_pressure(["/a"], mode="unavailable"))
    assert "unavailable on the sim platform" in line and level == "off"
    assert pm.ladder_line(fake_pressure(["/a"], mode="dry-run"))[1] == "dry"
    assert pm.ladder_line(fake_pressure(["/a"]))[0] == "pressure ladder: on"
    assert pm.ladder_line({})[1] == "missing"


@pytest.mark.parametrize("width", [80, 160, 200])
def test_layout_keeps_the_path_and_adds_pressure_columns_where_they_fit(width: int) -> None:
    base, base_path = table_layout(width - 2, False)  # the table's content is 2 narrower (border)
    keys, path = table_layout(width - 2, True)
    assert base == ("path", "profile", "override", "fast", "slow", "hot", "hit")
    assert path >= min(base_path, PATH_WANT) and {"psi", "wset"} <= set(keys)
    if width == 80:  # hot, hit and state give way; the order is kept
        assert keys == ("path", "profile", "override", "fast", "slow", "psi", "wset")
    else:
        assert keys == (*base, "psi", "wset", "state")


def test_merge_and_sort_by_psi_and_working_set() -> None:
    rows = [{"path": p, "fast_bytes": 1} for p in ("/a", "/b", "/c")]
    merged = pm.merge(rows, fake_pressure(["/a", "/b"]))
    assert [r["ladder_state"] for r in merged] == ["trimming", "ok", None]
    assert [r["path"] for r in visible_rows(merged, sort="psi", reverse=False, needle="")] == [
        "/a",
        "/b",
        "/c",
    ]
    assert [r["path"] for r in visible_rows(merged, sort="wset", reverse=True, needle="")] == [
        "/c",
        "/b",
        "/a",
    ]
    assert pm.merge(rows, fake_pressure(["/a"], mode="off")) is rows


# ---- the cgroups table ------------------------------------------------------------------------------


@pytest.mark.parametrize("size,want", [((80, 24), ("psi", "wset")), ((160, 45), ("psi", "wset", "state"))])
def test_table_shows_pressure_columns_at_80_and_all_at_160(
    size: tuple[int, int], want: tuple[str, ...]
) -> None:
    _, src = source()

    async def body(app: TierctlApp, pilot: Pilot[None]) -> None:
        await start(app, pilot, src)
        t = app.query_one(CgroupTable)
        assert t.keys[-len(want) :] == want
        assert t.get_cell(FIRST, "psi").plain == "12.5"
        assert t.get_cell(FIRST, "wset").plain == "640.0M"
        if "state" in want:
            assert t.get_cell(FIRST, "state").plain == "trim"
        assert t.path_width >= PATH_WANT and "000.service" in screen_text(app)

    run_app(src, body, size=size)


def test_pressure_columns_come_and_go_with_the_ladder_and_sort() -> None:
    svc, src = source()

    async def body(app: TierctlApp, pilot: Pilot[None]) -> None:
        await start(app, pilot, src)
        t = app.query_one(CgroupTable)
        await pilot.press("s", "s")  # fast -> slow -> PSI (hot and hit give way at 80 columns)
        assert t.sort_by == "psi" and t.selected_path is not None
        assert t.get_row_at(0)[0].plain.endswith("000.service")  # the highest PSI first
        assert "sort PSI" in str(t.border_title)
        svc.mode = "off"
        await drive(app, src, 1)
        await settle(app, pilot)
        assert "psi" not in t.keys and t.keys[-1] == "hit" and t.row_count == 4
        svc.mode = "on"
        await drive(app, src, 1)
        await settle(app, pilot)
        assert "psi" in t.keys and t.get_cell(FIRST, "psi").plain == "12.5"

    run_app(src, body)


def test_no_pressure_columns_without_the_ladder() -> None:
    svc = SyntheticService(4, seed=1, wall=lambda: WALL)  # its ladder is off: no memory model
    src = LocalSource(svc, period_s=None, label="synthetic")

    async def body(app: TierctlApp, pilot: Pilot[None]) -> None:
        await start(app, pilot, src)
        assert app.query_one(CgroupTable).keys == (
            "path",
            "profile",
            "override",
            "fast",
            "slow",
            "hot",
            "hit",
        )

    run_app(src, body)


# ---- the detail's pressure panel ----------------------------------------------------------------------


def test_detail_panel_shows_kinds_nodes_psi_working_set_events_and_actions() -> None:
    _, src = source()

    async def body(app: TierctlApp, pilot: Pilot[None]) -> None:
        await start(app, pilot, src)
        app.open_detail(FIRST)
        await settle(app, pilot)
        text = screen_text(app)
        assert "memory pressure" in text and "state trimming" in text and "priority -10" in text
        assert "protect 256.0M" in text and "killable yes" in text
        assert "640.0M = 62% of the charge" in text and "charge 1.0G" in text
        # the legend carries every reported kind with its size; zswap (None) is left out
        for kind, mib in BAR_PARTS.items():
            assert f"{kind} {mib}.0M" in text
        assert "zswap" not in text and "dirty 8.0M" in text
        # the bar: each kind's glyph in proportion to its bytes
        bar = next(r for r in text.splitlines() if "kinds" in r)
        inner = bar[bar.index("[") + 1 : bar.index("]")]
        total = sum(BAR_PARTS.values())
        for kind, mib in BAR_PARTS.items():
            assert abs(inner.count(KIND_STYLE[kind][0]) - len(inner) * mib / total) <= 1.0, kind
        assert "node 0 768.0M" in text and "node 1 256.0M" in text
        assert "some 12.5%" in text and "full 2.5%" in text and f"last {HISTORY} cycles" in text
        spark = lines_after(text, "some 12.5%")[0].strip(" │")
        assert len(spark) == HISTORY and spark[0] == "▁" and spark[-1] == "█"
        assert "oom_kill 3" in text and "refaults 1234" in text
        assert "last   trim   64.0M  down to its working set" in text

    run_app(src, body, size=(80, 40))


def test_bar_segments_carry_their_kinds_colour() -> None:
    bar = kind_bar(KINDS0, 102)
    spans = [(bar.plain[s.start : s.end], str(s.style)) for s in bar.spans]
    assert [st for _, st in spans] == [KIND_STYLE[k][1] for k in BAR_PARTS]
    # 100 cells for 1056 MiB: 48.5, 24.2, 6.1, 12.1, 3.0, 6.1; the one cell left goes to the largest remainder
    assert [len(seg) for seg, _ in spans] == [49, 24, 6, 12, 3, 6]


@pytest.mark.parametrize(
    "mode,shown",
    [
        ("off", "pressure ladder: off"),
        ("unavailable", "pressure ladder on, not running: unavailable on the sim platform"),
    ],
)
def test_ladder_off_or_unavailable_says_so_in_detail_and_tab(mode: str, shown: str) -> None:
    _, src = source(mode)

    async def body(app: TierctlApp, pilot: Pilot[None]) -> None:
        await start(app, pilot, src)
        assert "psi" not in app.query_one(CgroupTable).keys
        app.open_detail(FIRST)
        await settle(app, pilot)
        assert shown in screen_text(app)
        await pilot.press("escape", "4")
        await settle(app, pilot)
        text = screen_text(app)
        assert shown in text and "cgroups by pressure" not in text

    run_app(src, body)


def test_dry_run_is_shown() -> None:
    _, src = source("dry-run")

    async def body(app: TierctlApp, pilot: Pilot[None]) -> None:
        await start(app, pilot, src)
        app.open_detail(FIRST)
        await settle(app, pilot)
        assert "dry-run" in screen_text(app)
        await pilot.press("escape", "4")
        await settle(app, pilot)
        assert "pressure ladder: dry-run (actions are logged, not taken)" in screen_text(app)

    run_app(src, body)


def test_a_cgroup_without_a_report_says_so() -> None:
    svc, src = source()
    p = fake_pressure([FIRST])
    p["cgroups"] = {}
    svc.pressure_status = lambda: p  # type: ignore[method-assign]

    async def body(app: TierctlApp, pilot: Pilot[None]) -> None:
        await start(app, pilot, src)
        app.open_detail(FIRST)
        await settle(app, pilot)
        text = screen_text(app)
        assert "no [pressure] report for this cgroup" in text and "wset   640.0M" in text

    run_app(src, body)


# ---- the Pressure tab --------------------------------------------------------------------------------


def test_pressure_tab_shows_the_machine_target_psi_and_ladder(utc: None) -> None:
    _, src = source()

    async def body(app: TierctlApp, pilot: Pilot[None]) -> None:
        await start(app, pilot, src)
        await pilot.press("4")
        await settle(app, pilot)
        text = screen_text(app)
        assert "62.0G of 64.0G used (96.9%)" in text and "target 95% (60.8G)" in text
        assert "ABOVE the target since 22:13:08" in text  # WALL - 12 s in UTC
        assert "some 8.2%" in text and "full 1.5%" in text
        assert "actions trim 12  notify 1" in text and "kernel OOM kills 0" in text
        assert "to shed 512.0M" in text

    run_app(src, body, size=(80, 40))


def test_machine_bar_marks_the_target() -> None:
    text = machine_text(fake_pressure(["/a"]), 107).plain
    bar = next(r for r in text.splitlines() if "[" in r)
    inner = bar[bar.index("[") + 1 : bar.index("]")]
    assert len(inner) == 98 and inner.index("┃") == round(98 * 0.95)
    assert inner.count("█") == round(98 * 62 / 64) - 1  # the marker covers one used cell
    assert text.splitlines()[-1].strip() == pm.spark([10.0 * i / 29 for i in range(30)], 100)[0]


def test_cgroups_by_pressure_highest_first() -> None:
    paths = [f"/c{i}" for i in range(4)]
    text = cgroups_text(fake_pressure(paths), 80).plain.splitlines()
    assert [r.split()[0] for r in text[1:]] == ["/c0", "/c3", "/c2", "/c1"]
    assert text[1].split()[1:] == ["trimming", "12.5", "2.5", "1.0G", "640.0M", "-10"]


# ---- sources -------------------------------------------------------------------------------------------


@pytest.fixture
def sockdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="tp-", dir="/tmp") as d:  # AF_UNIX paths <= 107 bytes
        yield Path(d)


def test_socket_source_carries_pressure(sockdir: Path) -> None:
    svc = WithPressure(SyntheticService(3, wall=lambda: WALL))
    server = ApiServer(
        svc,  # type: ignore[arg-type]
        sockdir / "s",
        limits=Limits(service_timeout=5.0),
        credentials=lambda s: (os.getpid(), 0, 0),
        socket_group=None,
    )
    src = SocketSource(sockdir / "s")
    with server:
        try:
            f = src.poll()
        finally:
            src.stop()
    assert f.connected and f.pressure["active"] is True and len(f.pressure["cgroups"]) == 3


class OldDaemon:
    """A client of a daemon older than the ``pressure`` op."""

    def call(self, op: str, **args: Any) -> Any:
        if op == "pressure":
            raise RemoteError("protocol", "unknown op 'pressure'", "op")
        return {"events": {"seq": 0, "events": []}, "cgroups": []}.get(op, {})

    def close(self) -> None:
        pass


def test_socket_source_with_an_older_daemon_says_it_has_no_pressure() -> None:
    src = SocketSource("/nonexistent", client_factory=lambda p: OldDaemon())  # type: ignore[arg-type,return-value]
    f = src.poll()
    assert f.connected and f.pressure == {"mode": "?", "active": False, "reason": NO_PRESSURE_OP}
