"""``bpf-perf``: sampled data addresses per (cgroup, process, page), from a perf event with a BPF handler.

tierctl/data/bpf/addr_sampler.c runs on every sample of one perf event per online CPU and counts
``ctx->addr`` (the sample's data address) into the same bounded hash layout as bpf-fault, with
flag SAMPLE_PERF. The event is chosen at run time, best first:

1. Intel PEBS ``mem-loads`` (``/sys/bus/event_source/devices/cpu[_core]/events/mem-loads``,
   precise_ip=2, PERF_SAMPLE_ADDR) — sampled loads with their data address, also re-accesses;
2. AMD IBS op (``/sys/bus/event_source/devices/ibs_op``, PERF_SAMPLE_ADDR: Linux 6.1 and later
   fill the data address for IBS);
3. the software page-fault event (PERF_TYPE_SOFTWARE / PERF_COUNT_SW_PAGE_FAULTS), whose sample
   address is the faulting address — no PMU needed (VMs, this CI host, the test guest), the same
   BPF program and maps, but it sees faults, like bpf-fault, not accesses.

Each candidate is tried with a real perf_event_open (then closed) so a PMU that is listed but
refused ("PMU not available due to virtualization") falls through with its errno in the reason.
"""

from __future__ import annotations

import ctypes
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from tierctl.errors import InputError, UnavailableError
from tierctl.kernel.pmu import EVENT_SOURCES, EventSources
from tierctl.samplers.bpf_bcc import captured_output
from tierctl.samplers.bpf_compile import load_function
from tierctl.samplers.bpf_sampler import BccSampler

PERF_TYPE_SOFTWARE = 1
PERF_COUNT_SW_PAGE_FAULTS = 2
PERF_SAMPLE_IP = 1 << 0
PERF_SAMPLE_ADDR = 1 << 3
PERF_FLAG_FD_CLOEXEC = 1 << 3
NR_PERF_EVENT_OPEN = 298  # x86-64
FN_NAME = b"tierctl_on_sample"

DEFAULT_PERIODS = {"pebs": 10007, "ibs": 0x10000, "software": 1}


@dataclass
class PerfEvent:
    kind: str  # pebs | ibs | software
    type: int
    config: int
    config1: int = 0
    precise_ip: int = 0
    exclude_kernel: bool = False
    label: str = ""
    notes: list[str] = field(default_factory=list)  # why better kinds were not used


def _try_open(bcc: ModuleType, ev: PerfEvent, period: int) -> str | None:
    """perf_event_open the event on CPU 0 for all tasks, close it; None = works, else the reason."""
    attr = make_attr(bcc, ev, period)
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.syscall(NR_PERF_EVENT_OPEN, ctypes.byref(attr), -1, 0, -1, PERF_FLAG_FD_CLOEXEC)
    if fd < 0:
        e = ctypes.get_errno()
        return f"perf_event_open: {os.strerror(e)}"
    os.close(fd)
    return None


def make_attr(bcc: ModuleType, ev: PerfEvent, period: int) -> object:
    from bcc.perf import Perf  # type: ignore[import-not-found]

    attr = Perf.perf_event_attr()
    attr.type = ev.type
    attr.config = ev.config
    attr.config1 = ev.config1
    attr.sample_period = period
    attr.sample_type = PERF_SAMPLE_ADDR | PERF_SAMPLE_IP
    attr.precise_ip = ev.precise_ip
    attr.exclude_kernel = 1 if ev.exclude_kernel else 0
    attr.disabled = 0
    return attr


def hardware_sampling(event_sources: Path = EVENT_SOURCES) -> str | None:
    """The PMU with data-address sampling this machine lists (Intel PEBS mem-loads, AMD IBS op), or
    None: then ``bpf-perf`` can only fall back to software page faults, which see no re-accesses."""
    return EventSources(event_sources).data_address_sampling()


class PerfAddrSampler(BccSampler):
    name = "bpf-perf"
    program = "addr_sampler"

    def __init__(
        self,
        *,
        event: str = "auto",
        sample_period: int | None = None,
        event_sources: Path | EventSources = EVENT_SOURCES,
        **kw: object,
    ) -> None:
        """``event_sources``: the sysfs PMU list adapter (or the root of a fake one)."""
        super().__init__(**kw)  # type: ignore[arg-type]
        if event not in ("auto", "pebs", "ibs", "software"):
            raise InputError(f"event must be auto, pebs, ibs or software, not {event!r}")
        if sample_period is not None and sample_period < 1:
            raise InputError("sample_period must be at least 1")
        self.event = event
        self.sample_period_arg = sample_period
        self.sources = (
            event_sources if isinstance(event_sources, EventSources) else EventSources(event_sources)
        )
        self.chosen: PerfEvent | None = None
        self.sample_period = 0

    # -- event selection
    def _pebs(self) -> PerfEvent | str:
        ev = self.sources.pebs()
        if isinstance(ev, str):
            return ev
        return PerfEvent(
            "pebs", ev.type, ev.config, ev.config1, precise_ip=2, exclude_kernel=True,
            label=f"Intel PEBS {ev.pmu}/mem-loads/",
        )  # fmt: skip

    def _ibs(self) -> PerfEvent | str:
        typ = self.sources.ibs_op_type()
        if isinstance(typ, str):
            return typ
        return PerfEvent("ibs", typ, 0, label="AMD IBS op")

    def _software(self) -> PerfEvent:
        return PerfEvent(
            "software", PERF_TYPE_SOFTWARE, PERF_COUNT_SW_PAGE_FAULTS,
            label="software page-faults (PERF_TYPE_SOFTWARE/PERF_COUNT_SW_PAGE_FAULTS)",
        )  # fmt: skip

    def choose_event(self, bcc: ModuleType) -> PerfEvent:
        order = ["pebs", "ibs", "software"] if self.event == "auto" else [self.event]
        why_not: list[str] = []
        for kind in order:
            cand = {"pebs": self._pebs, "ibs": self._ibs, "software": self._software}[kind]()
            if isinstance(cand, str):
                why_not.append(cand)
                continue
            period = self.sample_period_arg or DEFAULT_PERIODS[kind]
            err = _try_open(bcc, cand, period)
            if err:
                why_not.append(f"{cand.label}: {err}")
                continue
            cand.notes = why_not
            return cand
        raise UnavailableError("no usable perf event: " + "; ".join(why_not))

    def _check_source(self, bcc: ModuleType) -> str:
        self.chosen = self.choose_event(bcc)
        self.sample_period = self.sample_period_arg or DEFAULT_PERIODS[self.chosen.kind]
        what = f"event: {self.chosen.label}, sample period {self.sample_period}"
        if self.chosen.notes:
            what += " because " + "; ".join(self.chosen.notes)
        return what

    def _attach(self, bcc: ModuleType) -> None:
        from bcc import BPF  # type: ignore[import-not-found]
        from bcc.utils import get_online_cpus  # type: ignore[import-not-found]

        assert self.chosen is not None
        lib = sys.modules["bcc.libbcc"].lib
        fn = load_function(self._bpf, FN_NAME, BPF.PERF_EVENT)
        attr = make_attr(bcc, self.chosen, self.sample_period)
        fds: dict[int, int] = {}
        # registered before attaching so bcc's cleanup() closes whatever got attached
        self._bpf.open_perf_events[(attr.type, attr.config)] = fds  # type: ignore[attr-defined]
        for cpu in get_online_cpus():
            with captured_output():  # libbcc prints "perf_event_open failed: ..." itself
                fd = lib.bpf_attach_perf_event_raw(fn.fd, ctypes.byref(attr), -1, cpu, -1, 0)
                e = ctypes.get_errno()
            if fd < 0:
                raise UnavailableError(
                    f"attach refused: perf_event_open({self.chosen.label}) on CPU {cpu}: {os.strerror(e)}"
                )
            fds[cpu] = fd
