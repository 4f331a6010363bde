"""``tierctl daemon`` options (the sampler chain, the simulated machine, the metrics address, the profile
watch): checked before anything runs, and what the daemon says about them when it starts."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tierctl.cli.daemon_cmd import sampler_names
from tierctl.errors import InputError


def test_sampler_names_are_checked_against_the_registry() -> None:
    assert sampler_names("damon, bpf-fault") == ("damon", "bpf-fault")
    with pytest.raises(InputError, match="unknown sampler 'pebs'; known: bpf-perf, bpf-fault, damon, idle"):
        sampler_names("damon,pebs")
    with pytest.raises(InputError, match="named twice"):
        sampler_names("damon,damon")
    with pytest.raises(InputError, match="at least one"):
        sampler_names(" , ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--samplers", "nope"], "--samplers: unknown sampler 'nope'"),
        (["--max-samplers", "0"], "--max-samplers: must be >= 1, got 0"),
    ],
)
def test_bad_options_exit_2_naming_the_option(tmp_path, args: list[str], message: str) -> None:
    cmd = [sys.executable, "-m", "tierctl", "daemon", "--state-dir", str(tmp_path), "--no-socket", "--once"]
    r = subprocess.run(cmd + args, capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 2 and message in r.stderr


def _daemon(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "tierctl", "daemon", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


SIM = ["--sim", "multi-cgroup"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([*SIM, "--scope", "/x"], "--sim: not with --sim (it applies to the kernel only), got --scope"),
        ([*SIM, "--samplers", "idle"], "got --samplers"),
        ([*SIM, "--pressure", "off"], "--sim: the simulated machine runs its own pressure model"),
        (["--sim-pod", "/a=b/c"], "--sim-pod: only with --sim"),
        ([*SIM, "--sim-pod", "/a"], "--sim-pod: expected CGROUP=NAMESPACE/POD[/QOS], got '/a'"),
        ([*SIM, "--sim-pod", "/a=b/c/gold"], "--sim-pod: QoS class must be one of"),
        ([*SIM, "--sim-pod", "/nope=b/c"], "--sim-pod: /nope is not a simulated cgroup; they are: /batch"),
        (["--sim", "no-such-workload"], "--sim: unknown workload"),
    ],
)
def test_sim_options_are_checked(tmp_path, args: list[str], message: str) -> None:
    r = _daemon("--no-socket", "--once", *args)
    assert r.returncode == 2 and message in r.stderr, r.stderr


def test_the_help_names_the_sim_mode_and_the_watch() -> None:
    out = " ".join(_daemon("--help").stdout.split())
    assert "With --sim WORKLOAD, a demo and test mode" in out
    assert "--watch-profiles {auto,on,off}" in out and "port 0 picks a free one" in out


def test_a_sim_daemon_logs_its_metrics_address_and_how_it_follows_the_profiles(tmp_path) -> None:
    pod = "/system.slice/redis-server.service=shop/cart/Burstable"
    r = _daemon(
        *SIM, "--seed", "3", "--cycles", "3", "--cycle-seconds", "0.05", "--no-socket",
        "--metrics-listen", "127.0.0.1:0", "--sim-pod", pod,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert re.search(r"^tierctl daemon: metrics on http://127\.0\.0\.1:[1-9][0-9]*/metrics$", r.stderr, re.M)
    assert re.search(r"^tierctl daemon: profiles: following \S+ by inotify", r.stderr, re.M), r.stderr
    r = _daemon(*SIM, "--once", "--no-socket", "--watch-profiles", "auto")
    assert r.returncode == 0 and "profiles: following" not in r.stderr  # auto: not for one cycle


def test_the_kernel_daemon_starts_and_stops_on_this_host(tmp_path) -> None:
    """The daemon on the running kernel (not --sim) builds its Service and runs: a name imported only
    for type checking once made every kernel daemon die at start, which only the guest suite saw."""
    r = subprocess.run(
        [sys.executable, "-m", "tierctl", "daemon", "--cycles", "1", "--cycle-seconds", "0.1", "--dry-run",
         "--pressure", "dry-run", "--no-socket", "--hint-faults", "off", "--state-dir", str(tmp_path / "s"),
         "--scope", "/nonexistent.slice"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    assert "internal error" not in r.stderr
    nodes = list(Path("/sys/devices/system/node").glob("node[0-9]*"))
    if len(nodes) == 1:  # this host (and CI's): loud about what keeps it from placing, not silent
        assert "tierctl daemon: warning: this machine has one memory tier (node 0)" in r.stderr, r.stderr


def test_degraded_names_a_missing_sampler_and_a_single_tier() -> None:
    from tierctl.service.daemon import degraded

    class Svc:
        def __init__(self, samplers: list[dict[str, str]], tiers: list[int]) -> None:
            self.samplers, self.tiers = samplers, tiers

        def status(self) -> dict[str, object]:
            return {"samplers": self.samplers}

        def topology(self) -> dict[str, object]:
            return {"nodes": [{"id": i, "tier": t} for i, t in enumerate(self.tiers)]}

    down = [{"name": "damon", "state": "unavailable", "reason": "EBUSY"}]
    up = [{"name": "idle", "state": "running", "reason": ""}, *down]
    both = degraded(Svc(down, [0]))  # type: ignore[arg-type]
    assert len(both) == 2 and both[0].startswith("no sampler is running (damon: unavailable, EBUSY)")
    assert "one memory tier (node 0)" in both[1]
    assert degraded(Svc(up, [0, 1])) == []  # type: ignore[arg-type]
    assert degraded(Svc([], [0, 1]))[0].startswith("no sampler is running (none configured)")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--policy-option", "hysteresis=abc"], "--policy-option hysteresis: expected a number, got 'abc'"),
        (
            ["--policy", "nb2", "--policy-option", "hot_threshold_cycles=x"],
            "--policy-option hot_threshold_cycles",
        ),
        (["--policy-option", "threads=2.5"], "--policy-option threads: expected an integer, got float 2.5"),
        (["--policy-option", "hysteresis=inf"], "hysteresis: must be a finite number"),
        (["--policy-option", "hysteris=1"], "--policy-option: policy 'tierctl' has no option 'hysteris'"),
    ],
)
def test_bad_policy_options_exit_2_naming_the_option(args: list[str], message: str) -> None:
    r = _daemon(*SIM, "--no-socket", "--once", *args)
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert "internal error" not in r.stderr


def test_policy_options_and_the_thread_count_reach_the_policy() -> None:
    import os

    from tierctl.cli import build_parser
    from tierctl.cli.daemon_cmd import _policy_options
    from tierctl.core.census import default_workers

    def options(*argv: str) -> dict[str, object]:
        return _policy_options(build_parser().parse_args(["daemon", *argv]))

    threads = default_workers(os.cpu_count())
    assert options("--policy-option", "hysteresis=0.5") == {"hysteresis": 0.5, "threads": threads}
    assert options("--policy-option", "threads=1") == {"threads": 1}
    assert options("--policy", "nb2", "--policy-option", "low_wmark=0.02") == {"low_wmark": 0.02}
    r = _daemon(
        *SIM, "--no-socket", "--cycles", "2", "--cycle-seconds", "0.05", "--policy-option", "hysteresis=0.5"
    )
    assert r.returncode == 0, r.stderr
