"""`tierctl sample` reads the kernel below the (hidden) root flags, like the other kernel commands: the
target process and cgroup are looked up there and the samplers made there."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from tierctl.cli import samplers_cmd
from tierctl.errors import InputError, NoSuchProcessError
from tierctl.kernel.roots import Roots


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    samplers_cmd.register(parser.add_subparsers())
    return parser.parse_args(list(argv))


def roots_args(r: Roots) -> tuple[str, ...]:
    return ("--sys-root", str(r.sys), "--proc-root", str(r.proc), "--cgroup-root", str(r.cgroup))


def test_the_flags_give_the_roots_and_default_to_the_live_places(tmp_path: Path) -> None:
    r = Roots.under(tmp_path)
    args = parse("sample", "--pid", "1", *roots_args(r))
    assert samplers_cmd._roots(args) == Roots(proc=r.proc, sys=r.sys, cgroup=r.cgroup)
    assert samplers_cmd._roots(parse("sample", "--pid", "1")) == Roots()


def test_the_samplers_are_made_below_the_roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No sampler can start on the empty fake tree: the reasons name its paths."""
    r = Roots.under(tmp_path)
    (r.cgroup / "job").mkdir(parents=True)
    (r.cgroup / "cgroup.controllers").write_text("memory\n")
    (r.cgroup / "job" / "cgroup.procs").write_text(f"{os.getpid()}\n")
    args = parse("sample", "--cgroup", "job", "--seconds", "1", "--source", "idle", *roots_args(r))
    with pytest.raises(InputError, match=str(r.sys / "kernel/mm/page_idle/bitmap")):
        args.func(args)


def test_the_target_process_is_looked_up_in_the_proc_root(tmp_path: Path) -> None:
    (tmp_path / "proc").mkdir()
    args = parse("sample", "--pid", str(os.getpid()), "--seconds", "1", "--proc-root", str(tmp_path / "proc"))
    with pytest.raises(NoSuchProcessError, match=f"no process {os.getpid()}"):
        args.func(args)
