"""TUI refresh cost and responsiveness with 500 cgroups updated at 1 Hz.

``python -m bench.tui_refresh`` (``--cgroups N``, ``--seconds S``) writes bench/results/tui_refresh.json:

- refresh: one service cycle, then one frame collected (``poll`` in a worker thread) and shown in every
  view — overview, cgroups table, events log, and the detail screen when it is open — until the screen
  is repainted (Pilot ``pause``). Reported as poll / apply / total milliseconds (median, p95, max).
- keys: the app runs as in production (1 Hz collection timer, the source cycling at 1 Hz in its own
  thread) while Pilot presses keys; the latency of a key is the time from sending it to the repainted
  screen (``Pilot.press`` returns after the app processed it and refreshed). ``j`` moves the cursor,
  ``s`` re-sorts all rows, ``enter``/``escape`` open and close the detail screen; ``x`` is bound to nothing
  and measures what Pilot itself adds (its waits for idle), to subtract from the others.

The headless driver renders to nothing, so terminal output time is not included; the figures are the
app's own work per frame and per key.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

from textual.pilot import Pilot

from tests.tui.synthetic import SyntheticService
from tierctl.tui.app import TierctlApp
from tierctl.tui.source import LocalSource
from tierctl.tui.table import CgroupTable

RESULTS = Path(__file__).resolve().parent / "results"
SIZE = (160, 50)


def summary(ms: list[float]) -> dict[str, float]:
    s = sorted(ms)
    return {
        "n": len(s),
        "median_ms": round(statistics.median(s), 2),
        "p95_ms": round(s[min(len(s) - 1, int(0.95 * len(s)))], 2),
        "max_ms": round(s[-1], 2),
    }


async def refresh_costs(n_cgroups: int, frames: int, *, detail: bool) -> dict[str, Any]:
    svc = SyntheticService(n_cgroups, seed=0)
    src = LocalSource(svc, period_s=None)
    app = TierctlApp(src, refresh_s=None, start_source=False)
    poll, apply, total = [], [], []
    async with app.run_test(size=SIZE) as pilot:
        await app.collect()
        await pilot.pause()
        if detail:
            await pilot.press("enter")
            await pilot.pause()
        for _ in range(frames):
            src.step()
            t0 = time.perf_counter()
            frame = await asyncio.to_thread(src.poll, app.current_path() if detail else None)
            t1 = time.perf_counter()
            app.apply(frame)
            t2 = time.perf_counter()
            await pilot.pause()
            t3 = time.perf_counter()
            poll.append(1000 * (t1 - t0))
            apply.append(1000 * (t2 - t1))
            total.append(1000 * (t3 - t0))
        assert app.query_one(CgroupTable).row_count == n_cgroups
        assert not app.problems, app.problems
    return {"poll": summary(poll), "apply": summary(apply), "total": summary(total)}


async def key_latency(n_cgroups: int, seconds: float) -> dict[str, Any]:
    svc = SyntheticService(n_cgroups, seed=0)
    src = LocalSource(svc, period_s=1.0)
    app = TierctlApp(src, refresh_s=1.0)
    lat: dict[str, list[float]] = {"x (unbound)": [], "j": [], "s": [], "enter+escape": []}

    async def timed(pilot: Pilot[None], *keys: str) -> float:
        t0 = time.perf_counter()
        await pilot.press(*keys)
        return 1000 * (time.perf_counter() - t0)

    async with app.run_test(size=SIZE) as pilot:
        while app.frames == 0:
            await pilot.pause(0.05)
        end = time.monotonic() + seconds
        i = 0
        while time.monotonic() < end:
            lat["j"].append(await timed(pilot, "j"))
            lat["x (unbound)"].append(await timed(pilot, "x"))
            if i % 10 == 5:
                lat["s"].append(await timed(pilot, "s"))
            if i % 10 == 0:
                lat["enter+escape"].append(await timed(pilot, "enter", "escape"))
            i += 1
            await pilot.pause(0.05)
        frames, cycles = app.frames, svc.cycles
        assert not app.problems, app.problems
    return {
        "frames_during_test": frames,
        "cycles_during_test": cycles,
        "keys": {k: summary(v) for k, v in lat.items() if v},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cgroups", type=int, default=500)
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--seconds", type=float, default=15.0, help="duration of the key-latency run")
    args = ap.parse_args(argv)
    load_before = os.getloadavg()[0]
    table = asyncio.run(refresh_costs(args.cgroups, args.frames, detail=False))
    with_detail = asyncio.run(refresh_costs(args.cgroups, args.frames, detail=True))
    keys = asyncio.run(key_latency(args.cgroups, args.seconds))
    payload = {
        "benchmark": "tui_refresh",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": platform.node(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "loadavg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],  # before, after: others' load
        "cgroups": args.cgroups,
        "terminal": list(SIZE),
        "update_hz": 1.0,
        "refresh_all_views": table,
        "refresh_all_views_with_detail_open": with_detail,
        "key_latency_while_updating": keys,
        "budget_share_of_1hz": round(table["total"]["median_ms"] / 1000, 4),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "tui_refresh.json"
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    tmp.replace(out)
    t, k = table["total"], keys["keys"]
    print(f"refresh of all views, {args.cgroups} cgroups: median {t['median_ms']} ms, p95 {t['p95_ms']} ms")
    for name, s in k.items():
        print(f"key {name:<36} median {s['median_ms']} ms  p95 {s['p95_ms']} ms  max {s['max_ms']} ms")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
