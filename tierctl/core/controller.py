"""The controller: one cycle = samples -> heat -> policy -> plan -> mover."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from tierctl.core.heat import HeatModel
from tierctl.core.limits import limit_plan
from tierctl.core.mover import Mover, MoveReport, Outcome
from tierctl.core.plan import PROMOTE, Plan
from tierctl.core.policy import MemoryState, Policy, PolicyView, Quota
from tierctl.errors import InputError


class Sampler(Protocol):
    name: str

    def drain(self) -> np.ndarray:
        """Everything observed since the last drain, as a SAMPLE_DTYPE batch."""
        ...


class MemoryView(Protocol):
    def snapshot(self) -> MemoryState:
        """Where every tracked page is now (node -1 = not present) and current free memory."""
        ...


@runtime_checkable
class WeighsSamples(Protocol):
    """A sampler that knows the weight of one observation (``HeatModel.ingest``'s ``unit``)."""

    @property
    def unit(self) -> float: ...


@runtime_checkable
class HearsMoves(Protocol):
    """A memory view that keeps its own record of where pages are, told of every move."""

    def note_moved(self, pages: np.ndarray, nodes: np.ndarray) -> None: ...


@dataclass(frozen=True)
class CycleReport:
    now: int
    samples: int
    planned_promotions: int
    planned_demotions: int
    promoted: int
    demoted: int
    outcomes: dict[str, int]
    seconds: float
    cpu_s: float = 0.0  # this thread's CPU time in the cycle, the mover's excluded
    mover_cpu_s: float = 0.0
    decided: bool = True  # False: the gate skipped the policy (and so the mover) this cycle
    rate_limited: int = 0  # planned moves dropped by per-cgroup rate limits this cycle
    by_cgroup: dict[int, tuple[int, int]] = field(default_factory=dict)  # cgroup -> (promoted, demoted)
    plan: Plan | None = None  # the plan given to the mover (after rate limits and interleaving)
    moves: MoveReport | None = None  # what the mover made of each row of ``plan``


@dataclass
class Totals:
    cycles: int = 0
    samples: int = 0
    promoted: int = 0
    demoted: int = 0
    rate_limited: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)


class Controller:
    def __init__(
        self,
        *,
        sampler: Sampler,
        memory: MemoryView,
        policy: Policy,
        mover: Mover,
        heat: HeatModel,
        budget_pages: int,
        quotas: Mapping[int, Quota] | None = None,
        gate: Callable[[int, bool], bool] | None = None,
        move_chunk: int = 4096,
    ) -> None:
        """``gate(news, space_changed)``, when given, is asked each cycle after the samples are
        ingested whether to run the policy (``news``: samples of pages outside the fast tier);
        ``memory.note_moved(pages, nodes)``, when the memory view has it, hears where the mover put
        pages."""
        if budget_pages < 0:
            raise InputError(f"budget must be >= 0 pages, got {budget_pages}", "controller.budget")
        self.sampler = sampler
        self.memory = memory
        self.policy = policy
        self.mover = mover
        self.heat = heat
        self.budget_pages = budget_pages
        self.quotas: Mapping[int, Quota] = dict(quotas or {})
        self.totals = Totals()
        self.gate = gate
        self.move_chunk = move_chunk  # demotions and promotions alternate in chunks this big
        self._decided_quotas: dict[int, Quota] = {}  # the quotas of the last cycle that decided
        self._pending_decay = 0
        self._forced = False  # force_decision(): the next cycle's gate sees a changed space

    def force_decision(self) -> None:
        """The next cycle asks its gate as if the page space had changed (a placement pass on
        request: the policy decides even without news, unless the gate's CPU budget refuses)."""
        self._forced = True

    def _settle_decay(self) -> None:
        if self._pending_decay:
            self.heat.decay(self._pending_decay)
            self._pending_decay = 0

    def cycle(self, now: int) -> CycleReport:
        t0 = time.perf_counter()
        c0 = time.thread_time()
        # the page space first: samples are mapped to tracked pages as they are now
        state = self.memory.snapshot()
        if state.remap is not None:
            self.heat.remap(state.remap, state.node.shape[0])
        elif state.node.shape[0] != self.heat.n_pages:
            self.heat.resize(state.node.shape[0])
        batch = self.sampler.drain()
        # decay is multiplicative, so it can wait until the heat is read or added to: a quiet cycle
        # that decides nothing costs no pass over every tracked page
        self._pending_decay += 1
        if batch.shape[0] or self.gate is None:
            self._settle_decay()
        if state.new_pages is not None:
            self.heat.note_new(state.new_pages, now - 1)
        unit = self.sampler.unit if isinstance(self.sampler, WeighsSamples) else None
        used = self.heat.ingest(batch, now, unit=unit)
        # news for the policy: samples of pages not in the fast tier (hot pages it could bring in);
        # samples of fast pages only confirm what is placed already
        news = used and _off_fast(batch["page"], state, self.heat.n_pages)
        # news for the policy: a changed page space, or changed quotas (a pin, a reload, a profile)
        changed = state.remap is not None or state.new_pages is not None
        changed |= self.quotas != self._decided_quotas
        changed |= self._forced
        self._forced = False
        decided = self.gate is None or self.gate(news, changed)
        plan = Plan.empty()
        if decided:
            self._decided_quotas = dict(self.quotas)
            self._settle_decay()
            plan = self.policy.decide(
                PolicyView(
                    now=now, heat=self.heat, memory=state, budget=self.budget_pages, quotas=self.quotas
                )
            )
        plan, limited = limit_plan(plan, state.cgroup, self.quotas)  # per-cgroup rate limits
        plan = plan.interleaved(_room(plan, state), self.move_chunk)
        c1 = time.thread_time()
        report = self.mover.apply(plan, self.budget_pages)
        c2 = time.thread_time()
        self.heat.note_moved(report.moved, now)
        if isinstance(self.memory, HearsMoves) and report.moved.shape[0]:
            self.memory.note_moved(report.moved, plan.dest[report.outcome == Outcome.MOVED])
        self.totals.cycles += 1
        self.totals.samples += used
        for k, v in report.counts.items():
            self.totals.outcomes[k] = self.totals.outcomes.get(k, 0) + v
        is_prom = plan.kind == PROMOTE
        moved = report.outcome == Outcome.MOVED
        promoted = int(np.count_nonzero(moved & is_prom))
        demoted = int(np.count_nonzero(moved)) - promoted
        self.totals.promoted += promoted
        self.totals.demoted += demoted
        self.totals.rate_limited += limited
        n_prom = int(np.count_nonzero(is_prom))
        by_cgroup: dict[int, tuple[int, int]] = {}
        if promoted or demoted:  # moved pages per cgroup: (promoted, demoted)
            cg = state.cgroup[plan.pages[moved]].astype(np.int64)
            up = np.bincount(cg[is_prom[moved]], minlength=state.n_cgroups)
            down = np.bincount(cg[~is_prom[moved]], minlength=state.n_cgroups)
            by_cgroup = {int(i): (int(up[i]), int(down[i])) for i in np.flatnonzero(up + down)}
        return CycleReport(
            now=now,
            samples=used,
            planned_promotions=n_prom,
            planned_demotions=len(plan) - n_prom,
            promoted=promoted,
            demoted=demoted,
            outcomes=report.counts,
            seconds=time.perf_counter() - t0,
            cpu_s=(c1 - c0) + (time.thread_time() - c2),
            mover_cpu_s=c2 - c1,
            decided=decided,
            rate_limited=limited,
            by_cgroup=by_cgroup,
            plan=plan,
            moves=report,
        )


def _off_fast(page: np.ndarray, state: MemoryState, n_pages: int) -> int:
    """How many of the sampled ``page`` ids are present outside the fast tier."""
    page = page[(page >= 0) & (page < n_pages)]
    node = state.node[page]
    node = node[node >= 0]
    if node.size == 0:
        return 0
    return int(np.count_nonzero(~state.topology.fast_lut()[node + 1]))


def _room(plan: Plan, state: MemoryState) -> int:
    """Promotions the plan's target node takes before any demotion: half its free pages (free is
    counted above the high watermark; the other half keeps allocations and reclaim out of the way)."""
    prom = plan.dest[plan.kind == PROMOTE]
    if prom.shape[0] == 0:
        return 0
    target = int(prom[0])
    free = next((n.free_pages for n in state.topology.nodes if n.id == target), 0)
    return max(0, int(free) // 2)
