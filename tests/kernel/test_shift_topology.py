"""Free memory as the mover can use it: above the zones' high watermarks (proc zoneinfo)."""

from __future__ import annotations

from pathlib import Path

from tierctl.kernel.topology import SysfsTopology

ZONEINFO = """Node 0, zone      DMA
  pages free     3000
        min      128
        low      160
        high     192
Node 0, zone    DMA32
        min      8521
        low      10651
        high     12781
Node 1, zone    DMA32
        min      8245
        low      10306
        high     12367
Node 1, zone  Movable
        high     32
"""


def tree(tmp_path: Path, zoneinfo: str | None) -> SysfsTopology:
    for nid, free_kb in ((0, 100_000), (1, 40_000)):
        d = tmp_path / "sys/devices/system/node" / f"node{nid}"
        d.mkdir(parents=True)
        (d / "meminfo").write_text(f"Node {nid} MemTotal: 1000000 kB\nNode {nid} MemFree: {free_kb} kB\n")
    (tmp_path / "proc").mkdir()
    if zoneinfo is not None:
        (tmp_path / "proc/zoneinfo").write_text(zoneinfo)
    return SysfsTopology(tmp_path / "sys", tmp_path / "proc", page_size=4096)


def test_free_pages_are_counted_above_the_high_watermarks(tmp_path: Path) -> None:
    t = tree(tmp_path, ZONEINFO)
    assert t.free_pages([0, 1]) == {0: 25_000 - 192 - 12781, 1: max(0, 10_000 - 12367 - 32)}


def test_without_zoneinfo_free_pages_are_memfree(tmp_path: Path) -> None:
    assert tree(tmp_path, None).free_pages([0]) == {0: 25_000}
