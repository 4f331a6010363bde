"""From the sampler chain's raw rows to the controller's sample batches."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tierctl.core.page_index import PageIndex
from tierctl.core.samples import make_batch
from tierctl.samplers.chain import SamplerChain


class ChainSampler:
    """The controller's Sampler over a SamplerChain: rows become tracked-page samples.

    ``index`` gives the current page space (it changes as processes map and unmap
    memory); rows for untracked pages are counted in ``untracked`` and dropped.
    ``weight`` scales a row's count into estimated accesses (1 / sampling rate).
    """

    name = "chain"

    def __init__(self, chain: SamplerChain, index: Callable[[], PageIndex], *, weight: float = 1.0) -> None:
        self.chain = chain
        self.index = index
        self.weight = weight
        self.untracked = 0

    @property
    def unit(self) -> float:
        """The weight of one observation: a row's ``count`` is a number of them."""
        return self.weight

    def drain(self) -> np.ndarray:
        rows = self.chain.drain()
        idx = self.index().lookup(rows["pid"], rows["vpn"])
        ok = idx >= 0
        self.untracked += int(rows.shape[0] - np.count_nonzero(ok))
        rows = rows[ok]
        return make_batch(
            idx[ok],
            rows["count"].astype(np.float32) * np.float32(self.weight),
            cgroup=rows["cgroup"],
            pid=rows["pid"].astype(np.int32),
        )
