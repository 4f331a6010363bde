"""Sample batches: what every sampler hands the heat model.

A batch is a numpy structured array with one row per (cgroup, pid, page)
observation.  ``page`` is an index into the controller's tracked page space
(0..n_pages-1); ``weight`` is the estimated number of accesses the row stands for
(observed count divided by the sampling probability).
"""

from __future__ import annotations

import numpy as np

SAMPLE_DTYPE = np.dtype(
    [
        ("cgroup", np.uint64),  # cgroup id (inode number on the real kernel, index in the sim)
        ("pid", np.int32),
        ("page", np.int64),  # tracked page index
        ("node", np.int16),  # node the page was on when sampled, -1 unknown
        ("weight", np.float32),
    ]
)


def empty_batch() -> np.ndarray:
    return np.zeros(0, dtype=SAMPLE_DTYPE)


def make_batch(
    page: np.ndarray,
    weight: np.ndarray | float = 1.0,
    *,
    cgroup: np.ndarray | int = 0,
    pid: np.ndarray | int = 0,
    node: np.ndarray | int = -1,
) -> np.ndarray:
    """Build a batch from column arrays (scalars broadcast)."""
    page = np.asarray(page, dtype=np.int64)
    batch = np.empty(page.shape[0], dtype=SAMPLE_DTYPE)
    batch["page"] = page
    batch["weight"] = weight
    batch["cgroup"] = cgroup
    batch["pid"] = pid
    batch["node"] = node
    return batch
