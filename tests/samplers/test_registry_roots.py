"""make_samplers below fake roots: every sampler's adapters are made below them, the BPF samplers share
one host (the one handed in, or one made below the roots / the guard's tree), and crashed runs' records
are looked for in the roots' run folder, never in the live /run/tierctl."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tierctl.errors import InputError
from tierctl.kernel.knobs import BPF_STATS_ENABLED, KnobGuard
from tierctl.kernel.roots import Roots
from tierctl.samplers.registry import SAMPLERS, bpf_host, make_samplers, sampler_options


def fake_roots(tmp_path: Path) -> Roots:
    return Roots.under(tmp_path / "root")


def test_roots_under_a_tree_and_the_live_ones() -> None:
    assert Roots.under(Path("/")) == Roots()
    r = Roots.under(Path("/t"))
    assert (r.root, r.proc, r.sys, r.cgroup, r.run) == tuple(
        map(Path, ("/t", "/t/proc", "/t/sys", "/t/sys/fs/cgroup", "/t/run/tierctl"))
    )
    assert r.in_sys(Path("/sys/kernel/mm/damon/admin")) == Path("/t/sys/kernel/mm/damon/admin")


def test_every_sampler_is_made_below_the_roots(tmp_path: Path) -> None:
    roots = fake_roots(tmp_path)
    made = {s.name: s for s in make_samplers(list(SAMPLERS), roots=roots)}
    assert list(made) == list(SAMPLERS)
    hosts = {id(made[n].host) for n in ("bpf-perf", "bpf-fault")}  # type: ignore[attr-defined]
    assert len(hosts) == 1  # one host for both
    host = made["bpf-fault"].host  # type: ignore[attr-defined]
    assert (host.root, host.proc.root, host.run_dir, host.cgroup_root) == (
        roots.root,
        roots.proc,
        roots.run,
        roots.cgroup,
    )
    assert made["idle"].bitmap_path == roots.sys / "kernel/mm/page_idle/bitmap"  # type: ignore[attr-defined]
    assert made["idle"].proc.root == roots.proc  # type: ignore[attr-defined]
    assert made["damon"].fs.root == roots.sys / "kernel/mm/damon/admin"  # type: ignore[attr-defined]
    assert made["damon"].proc.root == roots.proc  # type: ignore[attr-defined]
    assert made["damon"].knob_root == roots.root and made["damon"].run_dir == roots.run  # type: ignore[attr-defined]
    own = made["damon"].knobs()  # type: ignore[attr-defined]  # no guard given: its own record, rooted
    assert own.root == roots.root and own.state_file == roots.run / f"damon-knobs.{os.getpid()}.json"
    opts = sampler_options("bpf-perf", roots, host)
    assert opts == {"event_sources": roots.sys / "bus/event_source/devices", "host": host}


def test_the_host_handed_in_is_the_one_shared(tmp_path: Path) -> None:
    roots = fake_roots(tmp_path)
    host = bpf_host(roots)
    samplers = make_samplers(["bpf-fault", "damon", "bpf-perf"], host=host, roots=roots)
    assert [s.host is host for s in samplers if s.name.startswith("bpf-")] == [True, True]  # type: ignore[attr-defined]


def test_crashed_runs_records_are_restored_from_the_roots_run_folder(tmp_path: Path) -> None:
    roots = fake_roots(tmp_path)
    knob = roots.root / BPF_STATS_ENABLED.lstrip("/")
    knob.parent.mkdir(parents=True)
    knob.write_text("1\n")  # as a killed `tierctl sample` left it
    roots.run.mkdir(parents=True)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    record = {"version": 1, "knobs": [{"knob": BPF_STATS_ENABLED, "original": "0", "expected": "1"}]}
    (roots.run / f"bpf-knobs.{int(dead.stdout)}.json").write_text(json.dumps(record))
    samplers = make_samplers(["bpf-fault", "bpf-perf"], roots=roots)
    host = samplers[0].host  # type: ignore[attr-defined]
    assert [(r.knob, r.outcome) for r in host.restored_at_start] == [(BPF_STATS_ENABLED, "restored")]
    assert knob.read_text() == "0\n" and list(roots.run.iterdir()) == []


def test_a_guard_alone_puts_the_samplers_below_its_tree(tmp_path: Path) -> None:
    root = tmp_path / "root"
    guard = KnobGuard(tmp_path / "knobs.json", root)
    host_of, damon = make_samplers(["bpf-fault", "damon"], knobs=guard)
    host = host_of.host  # type: ignore[attr-defined]
    assert host.guard is guard and host.root == root and host.mounts is guard.mounts
    assert host.proc.root == root / "proc" and host.run_dir == root / "run/tierctl"
    assert damon.knobs() is guard  # type: ignore[attr-defined]  # the kdamonds in the same record
    assert damon.fs.root == root / "sys/kernel/mm/damon/admin"  # type: ignore[attr-defined]
    with pytest.raises(InputError, match="the knob guard writes below"):
        make_samplers(["bpf-fault"], knobs=guard, roots=Roots())  # the live tree, a fake guard
