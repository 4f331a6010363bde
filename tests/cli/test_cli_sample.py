"""`tierctl sample`'s aggregation: per page, per node, per region."""

from __future__ import annotations

import numpy as np

from tierctl.cli.samplers_cmd import summarize
from tierctl.errors import NoSuchProcessError
from tierctl.samplers.base import RAW_SAMPLE_DTYPE


class FakeNuma:
    def query(self, pid: int, addrs: np.ndarray) -> np.ndarray:
        if pid == 99:
            raise NoSuchProcessError("gone", "pid 99")
        return np.where((addrs >> np.uint64(12)) % 2 == 0, 0, 1).astype(np.int32)  # even pages on node 0


def rows(spec: list[tuple[int, int, int]]) -> np.ndarray:
    out = np.zeros(len(spec), dtype=RAW_SAMPLE_DTYPE)
    for i, (pid, vpn, count) in enumerate(spec):
        out[i]["pid"], out[i]["vpn"], out[i]["count"] = pid, vpn, count
    return out


def test_pages_are_aggregated_and_split_by_node() -> None:
    r = rows([(7, 10, 3), (7, 10, 2), (7, 11, 1), (8, 10, 4), (99, 5, 1)])
    out = summarize(r, top=2, regions=False, numa=FakeNuma())  # type: ignore[arg-type]
    assert out["samples"] == 11 and out["pages"] == 4
    assert out["per_node"] == {
        "unknown": {"pages": 1, "samples": 1},
        "0": {"pages": 2, "samples": 9},
        "1": {"pages": 1, "samples": 1},
    }
    assert out["top"] == [
        {"pid": 7, "address": 10 << 12, "node": 0, "samples": 5},
        {"pid": 8, "address": 10 << 12, "node": 0, "samples": 4},
    ]


def test_regions_sum_pages_of_each_2mib_region() -> None:
    r = rows([(7, 512 + 0, 1), (7, 512 + 2, 1), (7, 512 + 4, 1), (7, 1024 + 1, 5)])
    out = summarize(r, top=5, regions=True, numa=FakeNuma())  # type: ignore[arg-type]
    assert out["top"] == [
        {"pid": 7, "address": 2 << 21, "node": 1, "samples": 5},
        {"pid": 7, "address": 1 << 21, "node": 0, "samples": 3},
    ]


def test_nothing_sampled() -> None:
    assert summarize(rows([]), top=3, regions=False) == {"samples": 0, "pages": 0, "per_node": {}, "top": []}
