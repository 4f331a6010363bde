"""The PMUs sysfs lists (``/sys/bus/event_source/devices``): which can sample data addresses.

``EventSources(sys_root=...)`` (the ``bus/event_source/devices`` directory below a sysfs root; ``root``
names that directory directly) reads a PMU's event spec, its ``format/`` bit layout and its ``type``;
tests point it at a fake tree. Used by the ``bpf-perf`` sampler to build a perf event and by the daemon to
decide whether NUMA hint faults are needed at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tierctl.kernel.roots import LIVE_SYS

EVENT_SOURCES_REL = Path("bus/event_source/devices")  # below the sysfs root
EVENT_SOURCES = LIVE_SYS / EVENT_SOURCES_REL
PEBS_PMUS = ("cpu", "cpu_core")  # Intel: the core PMU (hybrid parts: cpu_core)


@dataclass(frozen=True)
class PebsEvent:
    pmu: str
    type: int
    config: int
    config1: int


def parse_event_terms(spec: str, fmt_dir: Path) -> dict[str, int]:
    """``event=0xcd,umask=0x1,ldlat=3`` + the PMU's format/ files -> {config, config1, config2} values."""
    out = {"config": 0, "config1": 0, "config2": 0}
    for term in spec.strip().split(","):
        if not term:
            continue
        name, _, value = term.partition("=")
        val = int(value, 0) if value else 1
        fmt = (fmt_dir / name.strip()).read_text().strip()  # e.g. "config:0-7" or "config1:0-15"
        target, _, bits = fmt.partition(":")
        shift = 0
        for part in bits.split(","):
            lo, _, hi = part.partition("-")
            lo_i = int(lo)
            width = (int(hi) if hi else lo_i) - lo_i + 1
            out[target] |= ((val >> shift) & ((1 << width) - 1)) << lo_i
            shift += width
    return out


class EventSources:
    """The PMUs below ``root`` (default: ``bus/event_source/devices`` below ``sys_root``)."""

    def __init__(self, root: Path | None = None, *, sys_root: Path = LIVE_SYS) -> None:
        self.root = Path(root) if root is not None else Path(sys_root) / EVENT_SOURCES_REL

    def pebs(self) -> PebsEvent | str:
        """Intel PEBS ``mem-loads`` of the first PMU that lists it, or why there is none."""
        for pmu in PEBS_PMUS:
            d = self.root / pmu
            ev = d / "events" / "mem-loads"
            if not ev.exists():
                continue
            try:
                terms = parse_event_terms(ev.read_text(), d / "format")
                typ = int((d / "type").read_text())
            except (OSError, ValueError) as e:
                return f"PEBS: cannot parse {ev}: {e}"
            return PebsEvent(pmu, typ, terms["config"], terms["config1"])
        return f"no PEBS ({self.root}/cpu/events/mem-loads missing)"

    def ibs_op_type(self) -> int | str:
        """The AMD IBS op PMU's perf type, or why there is none."""
        d = self.root / "ibs_op"
        try:
            return int((d / "type").read_text())
        except (OSError, ValueError):
            return f"no AMD IBS ({d} missing)"

    def data_address_sampling(self) -> str | None:
        """The PMU with data-address sampling this machine lists (Intel PEBS mem-loads, AMD IBS op),
        or None. Listed only: whether perf_event_open accepts it is the sampler's to find out."""
        for pmu in PEBS_PMUS:
            if (self.root / pmu / "events" / "mem-loads").exists():
                return f"Intel PEBS {pmu}/mem-loads/"
        if (self.root / "ibs_op" / "type").exists():
            return "AMD IBS op"
        return None
