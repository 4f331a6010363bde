"""``tierctl daemon`` options that choose the sampler chain and log cycles: checked before anything runs."""

from __future__ import annotations

import subprocess
import sys

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
