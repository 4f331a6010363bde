"""The one atomic-write helper (used by the knob record and the overrides) and its stale temporaries."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tierctl.kernel.statefile import stale_temporaries, write_atomic


def test_write_atomic_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    f = tmp_path / "deep" / "state.json"
    write_atomic(f, b"one")
    write_atomic(f, b"two" * 10000, mode=0o640)
    assert f.read_bytes() == b"two" * 10000
    assert sorted(p.name for p in f.parent.iterdir()) == ["state.json"]
    assert stat.S_IMODE(os.stat(f).st_mode) & 0o077 in (0o040, 0o000)  # never wider than asked


def test_a_failed_write_keeps_the_old_content_and_removes_the_temporary(tmp_path: Path) -> None:
    f = tmp_path / "state.json"
    write_atomic(f, b"old")
    (tmp_path / "blocker").mkdir()
    with pytest.raises(OSError):
        write_atomic(tmp_path / "blocker", b"new")  # rename over a directory fails
    assert f.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker", "state.json"]


def test_stale_temporaries_are_those_of_writers_that_are_gone(tmp_path: Path) -> None:
    f = tmp_path / "state.json"
    code = "import os; print(os.getpid())"
    dead = int(
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    )
    gone = tmp_path / f".state.json.{dead}.tmp"
    mine = tmp_path / f".state.json.{os.getpid()}.tmp"
    other = tmp_path / ".state.json.x.tmp"
    for p in (gone, mine, other):
        p.write_text("")
    assert stale_temporaries(f) == [gone]
