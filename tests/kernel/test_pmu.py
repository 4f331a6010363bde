"""EventSources on fake sysfs trees: found below a sysfs root, PEBS terms, AMD IBS."""

from __future__ import annotations

from pathlib import Path

from tierctl.kernel.pmu import EVENT_SOURCES, EventSources, PebsEvent
from tierctl.kernel.roots import LIVE_SYS


def put(base: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = base / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text + "\n")


def test_the_devices_are_below_the_sys_root(tmp_path: Path) -> None:
    assert EVENT_SOURCES == LIVE_SYS / "bus" / "event_source" / "devices"
    assert EventSources().root == EVENT_SOURCES
    assert EventSources(sys_root=tmp_path).root == tmp_path / "bus" / "event_source" / "devices"
    assert EventSources(tmp_path / "devs").root == tmp_path / "devs"


def test_pebs_mem_loads_of_a_fake_intel_pmu(tmp_path: Path) -> None:
    devs = tmp_path / "bus" / "event_source" / "devices"
    put(
        devs / "cpu",
        {
            "type": "4",
            "events/mem-loads": "event=0xcd,umask=0x1,ldlat=3",
            "format/event": "config:0-7",
            "format/umask": "config:8-15",
            "format/ldlat": "config1:0-15",
        },
    )
    src = EventSources(sys_root=tmp_path)
    assert src.pebs() == PebsEvent("cpu", 4, 0x01CD, 3)
    assert src.data_address_sampling() == "Intel PEBS cpu/mem-loads/"
    assert isinstance(src.ibs_op_type(), str)


def test_amd_ibs_and_nothing(tmp_path: Path) -> None:
    put(tmp_path / "bus" / "event_source" / "devices" / "ibs_op", {"type": "11"})
    src = EventSources(sys_root=tmp_path)
    assert src.ibs_op_type() == 11 and src.data_address_sampling() == "AMD IBS op"
    none = EventSources(sys_root=tmp_path / "empty")
    assert none.data_address_sampling() is None
    assert isinstance(none.pebs(), str) and "mem-loads missing" in str(none.pebs())
