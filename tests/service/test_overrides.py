"""Overrides survive restarts and crashes, and a corrupt file is kept aside, not lost."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tierctl.errors import InputError
from tierctl.service.overrides import Overrides, OverrideStore, check_tier


def test_round_trip_and_atomic_replace(tmp_path: Path) -> None:
    store = OverrideStore(tmp_path / "state" / "overrides.json")
    assert store.load() == Overrides()
    o = Overrides(pins={"/a": "fast"}, quotas={"/b": {"fast_min": "1G", "fast_max": None}}, paused=True)
    store.save(o)
    assert OverrideStore(store.path).load() == o  # a new process (restart, SIGKILL) reads the same
    assert [p.name for p in store.path.parent.iterdir()] == ["overrides.json"]  # no temp files left


def test_corrupt_file_is_kept_aside_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "overrides.json"
    path.write_text("{not json")
    store = OverrideStore(path)
    assert store.load() == Overrides()
    assert store.problem is not None and "kept as" in store.problem
    assert (tmp_path / "overrides.json.corrupt").read_text() == "{not json"
    path.write_text(json.dumps({"pins": {"/a": "medium"}}))
    assert OverrideStore(path).load() == Overrides()


def test_tiers() -> None:
    assert check_tier("auto") == "auto"
    with pytest.raises(InputError, match="must be one of fast, slow, auto"):
        check_tier("warm")
