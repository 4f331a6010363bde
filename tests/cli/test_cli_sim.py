"""`tierctl sim` end to end: outputs, file formats, and one-line errors with exit code 2."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tierctl.cli import main
from tierctl.core.census import default_workers
from tierctl.core.policies import POLICIES
from tierctl.sim.trace import from_epochs, load_trace
from tierctl.sim.workloads import WORKLOADS

SMALL = ["--scale", "0.0625", "--epochs", "24"]


def small_trace(tmp_path: Path, **overrides: object) -> Path:
    rng = np.random.default_rng(1)
    rows = []
    for _ in range(12):
        page = np.sort(rng.choice(256, size=100, replace=False))
        rows.append((page, rng.integers(1, 40, size=100)))
    trace = from_epochs(rows, n_pages=256)
    arrays: dict[str, object] = {
        "page_size": 4096,
        "n_pages": 256,
        "epoch_s": 1.0,
        "offsets": trace.offsets,
        "page": trace.page,
        "count": trace.count,
    }
    arrays.update(overrides)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    path = tmp_path / "t.npz"
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert main(["sim", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_workload_json_has_the_documented_fields(capsys: pytest.CaptureFixture[str]) -> None:
    out = run_json(capsys, "--workload", "zipf-shift", *SMALL)
    for key in ("fast_hit_ratio", "oracle_hit_ratio", "promoted", "demoted", "epochs", "policy"):
        assert key in out
    assert out["epochs"] == 24 and out["policy"] == "tierctl"
    assert 0 < out["fast_hit_ratio"] <= out["oracle_hit_ratio"] <= 1


def test_residency_file_reproduces_the_reported_hit_ratio(tmp_path: Path, capsys) -> None:
    path = small_trace(tmp_path)
    res_path = tmp_path / "res.npz"
    out = run_json(
        capsys,
        "--trace",
        str(path),
        "--fast-pages",
        "40",
        "--migrate-limit",
        "8",
        "--sample-rate",
        "0.2",
        "--residency-out",
        str(res_path),
    )
    trace = load_trace(path)
    with np.load(res_path) as z:
        assert set(z.files) == {"residency"}
        res = z["residency"]
    assert res.dtype == np.uint8 and res.shape == (trace.n_epochs, (trace.n_pages + 7) // 8)
    fast = np.unpackbits(res, axis=1)[:, : trace.n_pages].astype(bool)
    hits = sum(int(c[fast[e][p]].sum()) for e, (p, c) in ((e, trace.epoch(e)) for e in range(trace.n_epochs)))
    assert hits / int(trace.count.sum()) == out["fast_hit_ratio"]
    assert out["promoted"] + out["demoted"] > 0  # the policy did act on this trace


def test_save_trace_then_replay_matches_the_workload_run(tmp_path: Path, capsys) -> None:
    path = tmp_path / "w.npz"
    assert main(["sim", "--workload", "grow", *SMALL, "--save-trace", str(path)]) == 0
    capsys.readouterr()
    direct = run_json(capsys, "--workload", "grow", *SMALL)
    replay = run_json(capsys, "--trace", str(path), "--fast-pages", str(direct["fast_pages"]))
    assert replay["fast_hit_ratio"] == direct["fast_hit_ratio"]
    assert replay["oracle_hit_ratio"] == direct["oracle_hit_ratio"]


def test_compare_runs_every_policy_on_every_workload(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--compare", *SMALL]) == 0
    text = capsys.readouterr().out
    for name in ("zipf-shift", "multi-cgroup", "scan", "grow", "tierctl", "static", "nb2", "x oracle"):
        assert name in text
    out = run_json(capsys, "--compare", *SMALL)
    pairs = {(r["workload"], r["policy"]) for r in out["runs"]}
    assert len(pairs) == len(WORKLOADS) * len(POLICIES)


def test_text_output_names_policy_and_oracle(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--workload", "multi-cgroup", *SMALL, "--policy", "nb2"]) == 0
    text = capsys.readouterr().out
    assert "nb2" in text and "oracle" in text and "cgroup cache" in text


@pytest.mark.parametrize(
    ("overrides", "argv", "expect"),
    [
        ({"count": None}, [], "missing array 'count'"),
        ({"page": np.zeros(1200, np.float64)}, [], "array 'page' must be an integer array"),
        ({"offsets": np.array([0, 50, 20, *range(100, 1300, 100)])}, [], "array 'offsets' is not monotonic"),
        ({"page": np.full(1200, 999)}, [], "page id 999 out of range"),
        ({}, ["--fast-pages", "0"], "--fast-pages: must be >= 1, got 0"),
        (
            {},
            ["--fast-pages", "8", "--sample-rate", "nan"],
            "--sample-rate: must be a finite number, got 'nan'",
        ),
        ({}, ["--fast-pages", "8", "--seed", "-1"], "--seed: must be >= 0, got -1"),
        ({}, ["--fast-pages", "8", "--half-life", "inf"], "--half-life: must be a finite number"),
        ({}, ["--fast-pages", "257"], "--fast-pages: must be within 1..n_pages=256, got 257"),
        ({}, ["--fast-pages", "8", "--policy", "tierclt"], "did you mean 'tierctl'"),
        ({}, ["--fast-pages", "8", "--sample-rate", "0"], "--sample-rate"),
        (
            {},
            ["--fast-pages", "8", "--sample-mode", "scan", "--scan-period", "0"],
            "--scan-period: must be >= 1",
        ),
        ({}, ["--fast-pages", "8", "--density", "sparse"], "--density: --density goes with --workload"),
        ({}, ["--fast-pages", "8", "--rates", "/nonexistent/r.npz"], "rates file not found"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, overrides, argv, expect) -> None:
    path = small_trace(tmp_path, **overrides)
    if "--fast-pages" not in argv:
        argv = [*argv, "--fast-pages", "8"]
    assert main(["sim", "--trace", str(path), *argv]) == 2
    err = capsys.readouterr().err
    assert expect in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_missing_trace_file_names_the_path(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "nope.npz"
    assert main(["sim", "--trace", str(missing), "--fast-pages", "4"]) == 2
    assert str(missing) in capsys.readouterr().err


def test_console_script_exits_2_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run(
        [sys.executable, "-m", "tierctl", "sim", "--trace", str(bad), "--fast-pages", "4"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("tierctl: error: ") and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("value", "pages"),
    [("30%", 300), (0.5, 500), ("2M", 512), ("4 KiB", 1), (8192, 2), ("1.5G", 393216), ("0", 0)],
)
def test_quota_amounts_in_bytes_or_shares(value: object, pages: int) -> None:
    from tierctl.core.policy import amount_to_pages

    assert amount_to_pages(value, page_size=4096, fast_capacity=1000, where="q") == pages  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["lots", "120%", -1, 1.5, True, "-2G"])
def test_bad_quota_amounts_name_the_field(value: object) -> None:
    from tierctl.core.policy import amount_to_pages
    from tierctl.errors import InputError

    with pytest.raises(InputError) as err:
        amount_to_pages(value, page_size=4096, fast_capacity=1000, where="cache.min")  # type: ignore[arg-type]
    assert str(err.value).startswith("cache.min: ")


def test_quota_max_below_min_is_refused() -> None:
    from tierctl.core.policy import quota_from
    from tierctl.errors import InputError

    with pytest.raises(InputError, match="below min"):
        quota_from(min="50%", max="10%", page_size=4096, fast_capacity=1000, where="db")


def test_shape_with_density_reports_the_ceiling(capsys: pytest.CaptureFixture[str]) -> None:
    out = run_json(capsys, "--workload", "sliding", "--density", "sparse", *SMALL)
    assert out["workload"] == "sliding/sparse" and out["ceiling_from"] == "rates"
    assert out["vs_ceiling"] == pytest.approx(out["fast_hit_ratio"] / out["ceiling_hit_ratio"])
    assert 0 < out["ceiling_hit_ratio"] <= out["oracle_hit_ratio"] <= 1
    assert main(["sim", "--workload", "burst", *SMALL]) == 0  # default density: medium
    text = capsys.readouterr().out
    assert "burst/medium" in text and "x ceiling" in text and "cgroup bursty" in text


def test_original_workloads_have_no_density(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--workload", "grow", "--density", "dense", *SMALL]) == 2
    assert "--density" in capsys.readouterr().err


def test_scan_sample_mode(capsys: pytest.CaptureFixture[str]) -> None:
    out = run_json(capsys, "--workload", "jump", *SMALL, "--sample-mode", "scan", "--scan-period", "2")
    assert out["sample_mode"] == "scan" and out["promoted"] > 0


def test_trace_ceiling_from_counts_or_rates_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = small_trace(tmp_path)
    out = run_json(capsys, "--trace", str(path), "--fast-pages", "64")
    assert out["ceiling_from"] == "counts"
    t = load_trace(path)
    rates = tmp_path / "rates.npz"
    np.savez(
        rates, page_size=4096, n_pages=256, epoch_s=1.0, offsets=t.offsets, page=t.page, count=t.count * 0.5
    )
    out2 = run_json(capsys, "--trace", str(path), "--fast-pages", "64", "--rates", str(rates))
    assert out2["ceiling_from"] == "rates"
    assert out2["fast_hit_ratio"] == out["fast_hit_ratio"]


def test_list_shows_shapes_and_densities(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--list"]) == 0
    text = capsys.readouterr().out
    for name in ("zipf-shift", "sliding", "fast-cycle", "sparse ~5", "dense ~128", "ewma"):
        assert name in text
    assert main(["sim", "--list", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "periodic-scan" in out["shapes"] and out["densities"]["medium"] == 30


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_compare_progress_on_a_terminal_and_the_best_policy_per_workload(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _Tty()
    monkeypatch.setattr(sys, "stderr", err)
    assert main(["sim", "--compare", *SMALL]) == 0
    out = capsys.readouterr().out
    n = len(WORKLOADS) * len(POLICIES)
    steps = re.findall(
        r"\r\x1b\[K(sim --compare: \[(\d+)/(\d+)\] (\S+) x (\S+), [\d.]+ s elapsed)", err.getvalue()
    )
    assert [int(s[1]) for s in steps] == list(range(1, n + 1)) and {s[2] for s in steps} == {str(n)}
    assert [(s[3], s[4]) for s in steps] == [(w, p) for w in WORKLOADS for p in POLICIES]
    assert re.search(rf"\r\x1b\[Ksim --compare: {n} runs in [\d.]+ s\n$", err.getvalue())
    # the closing line names, per workload, the policy with the highest ratio to the causal ceiling
    last = out.rstrip("\n").splitlines()[-1]
    assert last.startswith("best policy per workload (x ceiling): ")
    table = [line.split() for line in out.splitlines()[2 : 2 + n]]
    for w in WORKLOADS:
        rows = [r for r in table if r[0] == w]
        best = max(rows, key=lambda r: float(r[5]))
        assert f"{w} {best[1]}" in last and f"({best[5]})" in last


def test_compare_progress_only_on_a_terminal_unless_asked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sim", "--compare", *SMALL]) == 0
    assert capsys.readouterr().err == ""  # stderr is not a terminal here
    assert main(["sim", "--compare", *SMALL, "--progress", "--json"]) == 0
    cap = capsys.readouterr()
    lines = cap.err.splitlines()
    assert len(lines) == len(WORKLOADS) * len(POLICIES) + 1 and "\r" not in cap.err
    assert lines[0].startswith(
        f"sim --compare: [1/{len(lines) - 1}] {next(iter(WORKLOADS))} x {next(iter(POLICIES))}, "
    )
    best = json.loads(cap.out)["best"]
    assert set(best) == set(WORKLOADS) and all(set(p) <= set(POLICIES) for p in best.values())


def test_policy_options_reach_the_policy_and_change_what_it_does(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tierctl.sim import runner

    base = run_json(capsys, "--workload", "zipf-shift", *SMALL)
    lazy = run_json(capsys, "--workload", "zipf-shift", *SMALL, "--policy-option", "hysteresis=100")
    assert lazy["promoted"] < base["promoted"] / 2  # swaps need a 100x better page: few happen
    made: list[object] = []
    real = runner.make_policy
    monkeypatch.setattr(runner, "make_policy", lambda *a, **k: made.append(k) or real(*a, **k))
    run_json(
        capsys, "--workload", "zipf-shift", *SMALL, "--policy", "nb2", "--policy-option", "low_wmark=0.02"
    )
    assert made == [{"low_wmark": 0.02}]  # nb2 takes no threads: none added
    run_json(capsys, "--workload", "zipf-shift", *SMALL, "--policy-option", "threads=1")
    assert made[-1] == {"threads": 1}
    run_json(capsys, "--workload", "zipf-shift", *SMALL)  # the default: one thread per CPU, up to 4
    assert made[-1] == {"threads": default_workers(os.cpu_count())}


@pytest.mark.parametrize(
    ("argv", "expect"),
    [
        (["--policy-option", "hysteresis=abc"], "--policy-option hysteresis: expected a number, got 'abc'"),
        (["--policy-option", "threads=2.5"], "--policy-option threads: expected an integer, got float 2.5"),
        (
            ["--policy", "nb2", "--policy-option", "hot_threshold_cycles=x"],
            "--policy-option hot_threshold_cycles",
        ),
        (["--policy-option", "hysteris=1"], "policy 'tierctl' has no option 'hysteris'"),
        (["--policy-option", "noise_z=nan"], "noise_z: must be a finite number"),
        (["--policy-option", "novalue"], "expected KEY=VALUE"),
        (["--compare", "--policy-option", "hysteresis=1"], "--compare: --compare runs every policy with its"),
    ],
)
def test_bad_policy_options_exit_2_naming_the_option(capsys, argv: list[str], expect: str) -> None:
    source = [] if "--compare" in argv else ["--workload", "zipf-shift", *SMALL]
    assert main(["sim", *source, *argv]) == 2
    err = capsys.readouterr().err
    assert expect in err and err.count("\n") == 1 and "Traceback" not in err
