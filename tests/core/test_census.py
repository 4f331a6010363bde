"""``census.map_blocks``: the caller decides the threads (the core never counts CPUs)."""

from __future__ import annotations

import ast
import inspect
import threading

from tierctl.core import census


def _run(workers: int | None) -> tuple[list[tuple[int, int]], set[str]]:
    names: set[str] = set()

    def fn(lo: int, hi: int) -> tuple[int, int]:
        names.add(threading.current_thread().name)
        return lo, hi

    return census.map_blocks(fn, 10, 2, workers, start=1), names


def test_no_thread_count_means_this_thread_and_results_keep_block_order() -> None:
    spans, names = _run(None)
    assert spans == [(1, 3), (3, 5), (5, 7), (7, 9), (9, 10)]
    assert names == {threading.current_thread().name}
    assert _run(1) == (spans, names)
    threaded, names = _run(3)
    assert threaded == spans and all(n.startswith("tierctl-block") for n in names)


def test_census_asks_the_host_nothing() -> None:
    tree = ast.parse(inspect.getsource(census))
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not imported & {"os", "subprocess", "socket", "pathlib", "shutil"}, imported
