"""NUMA nodes and memory tiers as the kernel reports them in sysfs and procfs.

``SysfsTopology(sys_root, proc_root).read()`` builds a ``tierctl.core.topology.Topology``
(one ``Node`` per online node, tier rank 0 = fastest) plus what the command line shows:
distances, the kernel's memory tiers, where the tier ranks came from, HMAT figures and
the kernel's tiering knobs.  The roots let tests point it at captured fake trees.

What is read (paths below the roots; see docs/kernel-topology.md):

- ``devices/system/node/online`` and ``nodeN/{cpulist,distance,meminfo}``;
- ``nodeN/access1/initiators/*`` (CPU initiators), else ``access0`` (HMAT: ns, MiB/s);
- ``devices/virtual/memory_tiering/memory_tierN/nodelist`` (N grows with abstract
  distance: smaller = faster);
- ``kernel/mm/numa/demotion_enabled``, ``/proc/sys/kernel/numa_balancing`` and
  ``numa_balancing_promote_rate_limit_MBps``.

Tier ranks come from the kernel's memory tiers when they list the nodes; otherwise from a
distance heuristic (nodes with CPUs are rank 0, CPU-less nodes rank by their distance
from the CPU nodes), and ``tier_source`` says why.  Demotion targets follow the kernel's
``establish_demotion_targets()``: a node not in the last tier demotes to the nodes of the
next lower tier at the smallest distance.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tierctl.core.topology import Node, Topology
from tierctl.errors import KernelError
from tierctl.kernel.idlist import parse_list
from tierctl.kernel.roots import LIVE_PROC, LIVE_SYS

NODE_DIR = "devices/system/node"
TIERING_DIR = "devices/virtual/memory_tiering"
NUMA_MM_DIR = "kernel/mm/numa"

#: /proc/sys/kernel/numa_balancing: bit 0 = NUMA_BALANCING_NORMAL, bit 1 = NUMA_BALANCING_MEMORY_TIERING
NUMA_BALANCING_MODES = {0: "off", 1: "normal", 2: "tiering", 3: "normal+tiering"}

HMAT_ATTRS = ("read_latency", "write_latency", "read_bandwidth", "write_bandwidth")

_TIER_DIR = re.compile(r"memory_tier(\d+)")
_NODE_DIR = re.compile(r"node(\d+)")
_MEMINFO = re.compile(r"Node\s+(\d+)\s+(\S+):\s+(\d+)(?:\s+(kB))?")


# ---------------------------------------------------------------------------------------------
# parsers of kernel text formats


def parse_meminfo_line(line: str, where: str = "meminfo") -> tuple[int, str, int]:
    """``"Node 0 MemTotal:  1025024 kB"`` -> ``(0, "MemTotal", 1049624576)`` (bytes when in kB).

    Lines without a unit (``HugePages_Total``) give the bare count.
    """
    m = _MEMINFO.fullmatch(line.strip())
    if not m:
        raise KernelError(f"not a 'Node N Key: value [kB]' line: {line.strip()!r}", where)
    node, key, value, unit = int(m.group(1)), m.group(2), int(m.group(3)), m.group(4)
    return node, key, value * 1024 if unit else value


def parse_meminfo(text: str, path: str, node: int | None = None) -> dict[str, int]:
    """A node's meminfo file -> {key: value}; every line must parse and name ``node``."""
    out: dict[str, int] = {}
    for no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        n, key, value = parse_meminfo_line(line, f"{path}:{no}")
        if node is not None and n != node:
            raise KernelError(f"line is about node {n}, expected node {node}", f"{path}:{no}")
        out[key] = value
    return out


# ---------------------------------------------------------------------------------------------
# the result


@dataclass(frozen=True)
class KernelTopology:
    """What ``SysfsTopology.read()`` found.  ``topology`` is what the core uses; the rest explains it."""

    topology: Topology
    #: node -> distances to the online nodes, in ``node_ids`` order (the kernel's ``nodeN/distance``)
    distances: dict[int, list[int]]
    #: memory tier directory name -> node ids, fastest (smallest N) first; {} without memory tiers
    memory_tiers: dict[str, list[int]]
    #: "memory_tiering" or "distance heuristic: <why>" (plus notes on nodes in no tier)
    tier_source: str
    #: demotion_enabled (bool), numa_balancing (int) and numa_balancing_mode (str),
    #: numa_balancing_promote_rate_limit_MBps (int); None where the file is absent
    knobs: dict[str, Any]
    #: node -> HMAT figures (read/write latency in ns, bandwidth in MiB/s, and "class": access1|access0)
    hmat: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: node -> every node of the next lower tier at the smallest distance (the kernel's "preferred")
    demotion_preferred: dict[int, list[int]] = field(default_factory=dict)

    @property
    def node_ids(self) -> list[int]:
        return [n.id for n in self.topology.nodes]

    def memory_tier_of(self, node: int) -> str | None:
        for name, nodes in self.memory_tiers.items():
            if node in nodes:
                return name
        return None

    def distance(self, a: int, b: int) -> int:
        return self.distances[a][self.node_ids.index(b)]

    def to_json(self) -> dict[str, Any]:
        t = self.topology
        return {
            "page_size": t.page_size,
            "nodes": [
                {
                    "id": n.id,
                    "tier": n.tier,
                    "memory_tier": self.memory_tier_of(n.id),
                    "cpus": list(n.cpus),
                    "capacity_pages": n.capacity_pages,
                    "free_pages": n.free_pages,
                    "capacity_mib": n.capacity_pages * t.page_size / 2**20,
                    "free_mib": n.free_pages * t.page_size / 2**20,
                    "latency_ns": n.latency_ns,
                    "bandwidth_mbps": n.bandwidth_mbps,
                    "hmat": self.hmat.get(n.id),
                    "demotion_target": t.demotion_targets.get(n.id),
                    "demotion_preferred": self.demotion_preferred.get(n.id, []),
                }
                for n in t.nodes
            ],
            "distances": {str(k): v for k, v in self.distances.items()},
            "memory_tiers": self.memory_tiers,
            "tier_source": self.tier_source,
            "knobs": self.knobs,
        }


# ---------------------------------------------------------------------------------------------
# the adapter


class SysfsTopology:
    """Reads the NUMA topology below ``sys_root`` and ``proc_root`` (``/sys`` and ``/proc``)."""

    def __init__(
        self, sys_root: Path = LIVE_SYS, proc_root: Path = LIVE_PROC, *, page_size: int | None = None
    ) -> None:
        self.sys_root = Path(sys_root)
        self.proc_root = Path(proc_root)
        self.page_size = page_size if page_size is not None else os.sysconf("SC_PAGE_SIZE")

    # -- files

    def _read(self, path: Path) -> str:
        try:
            return path.read_text()
        except FileNotFoundError:
            raise KernelError("missing", str(path)) from None
        except OSError as e:
            raise KernelError(f"cannot read: {e.strerror or e}", str(path)) from None

    def _read_optional(self, path: Path) -> str | None:
        try:
            return path.read_text()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as e:
            raise KernelError(f"cannot read: {e.strerror or e}", str(path)) from None

    @staticmethod
    def _int(text: str, path: Path) -> int:
        lines = text.splitlines() or [""]
        try:
            return int(lines[0].strip())
        except ValueError:
            raise KernelError(f"not an integer: {lines[0].strip()!r}", f"{path}:1") from None

    # -- the whole picture

    def read(self) -> KernelTopology:
        node_root = self.sys_root / NODE_DIR
        if not node_root.is_dir():
            raise KernelError(
                "no NUMA node directory (is this kernel built without CONFIG_NUMA?)", str(node_root)
            )
        ids = self._online(node_root)
        cpus: dict[int, tuple[int, ...]] = {}
        meminfo: dict[int, dict[str, int]] = {}
        distances: dict[int, list[int]] = {}
        hmat: dict[int, dict[str, Any]] = {}
        for nid in ids:
            d = node_root / f"node{nid}"
            if not d.is_dir():
                raise KernelError(f"node {nid} is online but has no directory", str(d))
        for nid in ids:
            d = node_root / f"node{nid}"
            p = d / "cpulist"
            cpus[nid] = tuple(parse_list(self._read(p), f"{p}:1"))
            p = d / "meminfo"
            meminfo[nid] = parse_meminfo(self._read(p), str(p), nid)
            for key in ("MemTotal", "MemFree"):
                if key not in meminfo[nid]:
                    raise KernelError(f"no {key} line", str(p))
            distances[nid] = self._distance(d / "distance", len(ids))
            fig = self._hmat(d)
            if fig:
                hmat[nid] = fig

        high = self._high_watermarks()
        memory_tiers, reason = self._memory_tiers()
        if reason is None:
            ranks, source = self._ranks_from_tiers(ids, cpus, memory_tiers)
        else:
            ranks, source = self._ranks_from_distance(ids, cpus, distances), f"distance heuristic: {reason}"

        preferred = demotion_preferred(ids, ranks, distances, cpus)
        nodes = []
        for nid in ids:
            fig = hmat.get(nid, {})
            nodes.append(
                Node(
                    id=nid,
                    tier=ranks[nid],
                    capacity_pages=meminfo[nid]["MemTotal"] // self.page_size,
                    # what an allocation (a migration) can take: free above the high watermarks
                    free_pages=max(0, meminfo[nid]["MemFree"] // self.page_size - high.get(nid, 0)),
                    cpus=cpus[nid],
                    latency_ns=_mean(fig.get("read_latency"), fig.get("write_latency")),
                    bandwidth_mbps=_mean(fig.get("read_bandwidth"), fig.get("write_bandwidth")),
                )
            )
        topo = Topology(
            nodes=tuple(nodes),
            page_size=self.page_size,
            demotion_targets={n: targets[0] for n, targets in preferred.items()},
        )
        return KernelTopology(
            topology=topo,
            distances=distances,
            memory_tiers=memory_tiers,
            tier_source=source,
            knobs=self.knobs(),
            hmat=hmat,
            demotion_preferred=preferred,
        )

    # -- pieces

    def free_pages(self, ids: Sequence[int]) -> dict[int, int]:
        """Free pages above the high watermarks of nodes ``ids``: the cheap part of ``read()``, for
        callers that re-read free memory every cycle and the rest of the topology rarely."""
        high = self._high_watermarks()
        out = {}
        for nid in ids:
            p = self.sys_root / NODE_DIR / f"node{nid}" / "meminfo"
            free = parse_meminfo(self._read(p), str(p), nid).get("MemFree", 0) // self.page_size
            out[nid] = max(0, free - high.get(nid, 0))
        return out

    def _high_watermarks(self) -> dict[int, int]:
        """Pages per node below its zones' high watermarks (``proc_root``/zoneinfo; {} without it).
        The kernel keeps them free: a move_pages into a node with less free than that fails."""
        text = self._read_optional(self.proc_root / "zoneinfo")
        out: dict[int, int] = {}
        if text is None:
            return out
        nid = -1
        for line in text.splitlines():
            f = line.split()
            if line.startswith("Node ") and len(f) > 1:
                nid = int(f[1].rstrip(","))
            elif nid >= 0 and len(f) == 2 and f[0] == "high" and f[1].isdigit():
                out[nid] = out.get(nid, 0) + int(f[1])
        return out

    def _online(self, node_root: Path) -> list[int]:
        p = node_root / "online"
        text = self._read_optional(p)
        if text is not None:
            ids = parse_list(text, f"{p}:1")
        else:  # a tree without it (hand-made fixtures): the node directories
            ids = sorted(int(m.group(1)) for c in node_root.iterdir() if (m := _NODE_DIR.fullmatch(c.name)))
        if not ids:
            raise KernelError("no online NUMA node", str(p))
        return ids

    def _distance(self, p: Path, n_online: int) -> list[int]:
        text = self._read(p)
        line = (text.splitlines() or [""])[0]
        try:
            row = [int(x) for x in line.split()]
        except ValueError:
            raise KernelError(f"not a row of distances: {line!r}", f"{p}:1") from None
        if len(row) != n_online:
            raise KernelError(f"{len(row)} distances for {n_online} online nodes: {line!r}", f"{p}:1")
        return row

    def _hmat(self, node_dir: Path) -> dict[str, Any]:
        """HMAT figures of the node as a memory target: access class 1 (CPU initiators, what the
        kernel's memory tiers use) when present, else class 0 (any initiator).  0 = not reported."""
        for cls in ("access1", "access0"):
            d = node_dir / cls / "initiators"
            if not d.is_dir():
                continue
            fig: dict[str, Any] = {}
            for attr in HMAT_ATTRS:
                p = d / attr
                text = self._read_optional(p)
                if text is not None:
                    value = self._int(text, p)
                    if value > 0:
                        fig[attr] = value
            if fig:
                fig["class"] = cls
                return fig
        return {}

    def _memory_tiers(self) -> tuple[dict[str, list[int]], str | None]:
        """({memory_tierN: nodes}, None) or ({...}, the reason the kernel's tiers cannot be used)."""
        root = self.sys_root / TIERING_DIR
        if not root.is_dir():
            return {}, f"{root} missing"
        found: list[tuple[int, str, list[int]]] = []
        for child in root.iterdir():
            m = _TIER_DIR.fullmatch(child.name)
            if not m:
                continue
            p = child / "nodelist"
            text = self._read_optional(p)
            if text is None:
                continue
            found.append((int(m.group(1)), child.name, parse_list(text, f"{p}:1")))
        tiers = {name: nodes for _, name, nodes in sorted(found)}
        if not tiers:
            return tiers, f"no memory_tier*/nodelist in {root}"
        if not any(tiers.values()):
            return tiers, f"every memory_tier*/nodelist in {root} is empty"
        return tiers, None

    def _ranks_from_tiers(
        self, ids: list[int], cpus: dict[int, tuple[int, ...]], tiers: dict[str, list[int]]
    ) -> tuple[dict[int, int], str]:
        ranks: dict[int, int] = {}
        rank = 0
        for nodes in tiers.values():
            online = [n for n in nodes if n in cpus]
            if not online:
                continue
            for n in online:
                ranks.setdefault(n, rank)
            rank += 1
        notes = []
        lowest = max(ranks.values(), default=0)
        for nid in ids:
            if nid in ranks:
                continue
            # memoryless nodes are in no memory tier: CPU-only ones sit with the fastest memory,
            # anything else unknown is treated as slow
            ranks[nid] = 0 if cpus[nid] else lowest
            notes.append(f"node {nid} in no memory tier: rank {ranks[nid]}")
        return ranks, "memory_tiering" + (f" ({'; '.join(notes)})" if notes else "")

    @staticmethod
    def _ranks_from_distance(
        ids: list[int], cpus: dict[int, tuple[int, ...]], distances: dict[int, list[int]]
    ) -> dict[int, int]:
        cpu_nodes = [n for n in ids if cpus[n]]
        if not cpu_nodes:
            return dict.fromkeys(ids, 0)
        ranks = {n: 0 for n in cpu_nodes}
        far = {n: min(distances[c][ids.index(n)] for c in cpu_nodes) for n in ids if n not in ranks}
        levels = sorted(set(far.values()))
        for n, d in far.items():
            ranks[n] = 1 + levels.index(d)
        return ranks

    def knobs(self) -> dict[str, Any]:
        """The kernel's tiering knobs; None for each file that does not exist."""
        out: dict[str, Any] = {}
        p = self.sys_root / NUMA_MM_DIR / "demotion_enabled"
        text = self._read_optional(p)
        if text is None:
            out["demotion_enabled"] = None
        else:
            word = (text.splitlines() or [""])[0].strip().lower()
            if word in ("true", "1", "y", "yes", "on"):
                out["demotion_enabled"] = True
            elif word in ("false", "0", "n", "no", "off"):
                out["demotion_enabled"] = False
            else:
                raise KernelError(f"not a boolean: {word!r}", f"{p}:1")
        p = self.proc_root / "sys/kernel/numa_balancing"
        text = self._read_optional(p)
        mode = None if text is None else self._int(text, p)
        out["numa_balancing"] = mode
        out["numa_balancing_mode"] = (
            None if mode is None else NUMA_BALANCING_MODES.get(mode, f"unknown ({mode})")
        )
        p = self.proc_root / "sys/kernel/numa_balancing_promote_rate_limit_MBps"
        text = self._read_optional(p)
        out["numa_balancing_promote_rate_limit_MBps"] = None if text is None else self._int(text, p)
        return out


def demotion_preferred(
    ids: list[int],
    ranks: dict[int, int],
    distances: dict[int, list[int]],
    cpus: dict[int, tuple[int, ...]] | None = None,
) -> dict[int, list[int]]:
    """For every node not in the lowest rank: the nodes of the next lower (non-empty) rank at the
    smallest distance from it, as mm/memory-tiers.c ``establish_demotion_targets()`` picks its
    "preferred" mask (the kernel demotes to any of them).  The first entry is the one
    ``find_next_best_node()`` tends to find first at equal distance: one penalty point each for
    having CPUs and for an id below the source's, then the lowest id (the kernel also weighs a
    per-node load counter, which user space cannot see)."""
    out: dict[int, list[int]] = {}
    levels = sorted(set(ranks.values()))
    for n in ids:
        i = levels.index(ranks[n])
        if i + 1 >= len(levels):
            continue
        lower = [m for m in ids if ranks[m] == levels[i + 1]]
        best = min(distances[n][ids.index(m)] for m in lower)
        chosen = [m for m in lower if distances[n][ids.index(m)] == best]
        has_cpu = cpus or {}
        chosen.sort(key=lambda m: (bool(has_cpu.get(m)) + (m < n), m))
        out[n] = chosen
    return out


def _mean(a: float | None, b: float | None) -> float | None:
    vals = [v for v in (a, b) if v is not None]
    return sum(vals) / len(vals) if vals else None
