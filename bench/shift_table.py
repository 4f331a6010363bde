"""Summaries and tables of the shift and daemon-cost runs (bench/results/shift.json, daemon_cost.json)."""

from __future__ import annotations

from typing import Any

from tierctl.cli.table import render

TARGET_TW = 0.95  # time-weighted share of the hot set in DRAM, each phase
TARGET_T80_S = 5.0  # seconds from a phase start to 80 %
TARGET_MOVES = 1.1  # pages moved / minimum


def _fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per contender: every round's figures and whether the daemon's targets were met in each."""
    by: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        by.setdefault(r["contender"], []).append(r)
    rows = []
    for name, rs in by.items():
        for r in rs:
            ph = r["phases"]
            t80 = [p["t80_s"] for p in ph]
            rows.append(
                {
                    "contender": name,
                    "round": r.get("round", 0),
                    "time_weighted_fast": [p["time_weighted_fast"] for p in ph],
                    "t80_s": t80,
                    "moved_pages": r["moved_pages"],
                    "minimum_pages": r["minimum_pages"],
                    "moved_over_minimum": r["moved_over_minimum"],
                    "contender_cpu_share": r["contender_cpu_share"],
                    "kswapd_cpu_s": r["kswapd_cpu_s"],
                    "workload_sys_cpu_s": r["workload_sys_cpu_s"],
                    "workload_passes_per_s": r["workload_passes_per_s"],
                    "meets": {
                        "time_weighted_0.95": all(p["time_weighted_fast"] >= TARGET_TW for p in ph),
                        "t80_within_5s": all(t is not None and t <= TARGET_T80_S for t in t80),
                        "moves_within_1.1x": (r["moved_over_minimum"] or 0) <= TARGET_MOVES
                        and r["moved_pages"] > 0,
                    },
                }
            )
    return {"summary": rows}


def render_shift(out: dict[str, Any]) -> str:
    rows = [
        (
            r["contender"],
            r["round"],
            " / ".join(f"{v:.2f}" for v in r["time_weighted_fast"]),
            " / ".join(_fmt(v, ".1f") for v in r["t80_s"]),
            f"{r['moved_pages']} / {r['minimum_pages']}",
            _fmt(r["moved_over_minimum"], ".2f"),
            f"{r['contender_cpu_share']:.1%}",
            f"{r['workload_sys_cpu_s']:.1f}",
            " / ".join(f"{v:.0f}" for v in r["workload_passes_per_s"]),
        )
        for r in out["summary"]
    ]
    table = render(
        (
            "contender",
            "round",
            "DRAM share (tw) p1 / p2",
            "t80 s p1 / p2",
            "moved / min pages",
            "x min",
            "own CPU",
            "wl sys s",
            "passes/s p1 / p2",
        ),
        rows,
    )
    notes = (
        "\nDRAM share: time-weighted share of the active 192 MiB hot set on node 0 over each phase; "
        "t80: seconds to 80 %;\nmin pages: hot pages off DRAM at each phase start + the demotions "
        "needed to make room for them; moved: pgmigrate_success delta (all migrations);\n"
        "own CPU: the contender's processes (tierctl daemon, kdamonds; the kernel's NUMA balancing "
        "runs in the workload's time: wl sys s).\n"
        f"daemon targets: >= {TARGET_TW} each phase, t80 <= {TARGET_T80_S} s, moves <= {TARGET_MOVES} x min"
    )
    return table + notes


def render_cost(runs: list[dict[str, Any]]) -> str:
    rows = []
    for r in runs:
        for row in r["rows"]:
            rows.append(
                (
                    r["contender"],
                    r.get("round", 0),
                    row["workload"],
                    f"{row['tracked_pages'] or 0} ({(row['tracked_pages'] or 0) * 4096 / 2**30:.2f} GiB)",
                    f"{row['seconds']:.0f}",
                    f"{row['cpu_share']:.2%}",
                )
            )
    table = render(("daemon", "round", "workload", "tracked pages", "s", "CPU (share of a core)"), rows)
    return table + "\ntarget: < 2 % of one core at the default settings, 1 GiB tracked"
