"""KnobGuard on fake trees: record first (atomically), restore in reverse, verify, recover after a crash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tierctl.errors import InputError, KernelError, UnavailableError
from tierctl.kernel.knobs import Drift, KnobGuard, KnobRecord, Restored

NB = "/proc/sys/kernel/numa_balancing"
RL = "/proc/sys/kernel/numa_balancing_promote_rate_limit_MBps"
SCAN = "/sys/kernel/debug/sched/numa_balancing/scan_size_mb"
THP = "/sys/kernel/mm/transparent_hugepage/enabled"
HIGH = "/sys/fs/cgroup/work/memory.high"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    for knob, value in (
        (NB, "1"),
        (RL, "65536"),
        (SCAN, "256"),
        (THP, "always [madvise] never"),
        (HIGH, "max"),
    ):
        p = r / knob.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(value + "\n")
    return r


def value(root: Path, knob: str) -> str:
    return (root / knob.lstrip("/")).read_text().strip()


class LoggingGuard(KnobGuard):
    def __init__(self, *a, **kw) -> None:
        self.log: list[tuple[str, str, bool]] = []  # (knob, value, state file existed at write time)
        super().__init__(*a, **kw)

    def _write(self, knob: str, text: str) -> None:
        self.log.append((knob, text, self.state_file.exists()))
        super()._write(knob, text)


def test_set_records_the_original_before_writing_and_persists_it(tmp_path: Path, root: Path) -> None:
    state = tmp_path / "state" / "knobs.json"
    g = LoggingGuard(state, root)
    assert g.set(NB, 2) == "2"
    assert value(root, NB) == "2"
    assert g.log == [(NB, "2", True)]  # the record was on disk before the knob changed
    data = json.loads(state.read_text())
    assert data["version"] == 1
    assert data["knobs"] == [{"knob": NB, "original": "1", "expected": "2"}]
    assert [p.name for p in state.parent.iterdir()] == ["knobs.json"]  # no temporary left behind


def test_second_set_keeps_the_first_original(tmp_path: Path, root: Path) -> None:
    g = KnobGuard(tmp_path / "k.json", root)
    g.set(NB, 2)
    g.set(NB, 3)
    assert g.records == [KnobRecord(NB, "1", "3")]
    g.restore_all()
    assert value(root, NB) == "1"


def test_restore_all_in_reverse_order_and_clears_the_record(tmp_path: Path, root: Path) -> None:
    state = tmp_path / "k.json"
    g = LoggingGuard(state, root)
    g.set(NB, 2)
    g.set(RL, 0)
    g.set(SCAN, 16)
    g.log.clear()
    out = g.restore_all()
    assert [(k, v) for k, v, _ in g.log] == [(SCAN, "256"), (RL, "65536"), (NB, "1")]
    assert out == [
        Restored(SCAN, "256", "restored"),
        Restored(RL, "65536", "restored"),
        Restored(NB, "1", "restored"),
    ]
    assert (value(root, NB), value(root, RL), value(root, SCAN)) == ("1", "65536", "256")
    assert not state.exists() and g.pending() == [] and g.verify() == []


def test_verify_reports_drift_and_a_vanished_knob(tmp_path: Path, root: Path) -> None:
    g = KnobGuard(tmp_path / "k.json", root)
    g.set(NB, 2)
    g.set(RL, 0)
    g.set(HIGH, 1 << 30)
    assert g.verify() == []
    (root / NB.lstrip("/")).write_text("1\n")  # someone else put it back
    (root / HIGH.lstrip("/")).unlink()  # the cgroup went away
    assert g.verify() == [Drift(NB, "2", "1"), Drift(HIGH, str(1 << 30), None)]


def test_restore_after_a_simulated_crash(tmp_path: Path, root: Path) -> None:
    state = tmp_path / "k.json"
    crashed = KnobGuard(state, root)
    crashed.set(NB, 2)
    crashed.set(RL, 0)
    del crashed  # killed: nothing restored
    assert (value(root, NB), value(root, RL)) == ("2", "0")

    fresh = KnobGuard(state, root)
    assert fresh.pending() == [KnobRecord(NB, "1", "2"), KnobRecord(RL, "65536", "0")]
    # setting an adopted knob again keeps the pre-crash original, not tierctl's own leftover
    fresh.set(NB, 3)
    assert fresh.records[0] == KnobRecord(NB, "1", "3")
    out = fresh.restore_all()
    assert [r.outcome for r in out] == ["restored", "restored"]
    assert (value(root, NB), value(root, RL)) == ("1", "65536")
    assert not state.exists()
    assert KnobGuard(state, root).pending() == []


def test_a_knob_that_disappeared_is_reported_gone_and_the_rest_restored(tmp_path: Path, root: Path) -> None:
    state = tmp_path / "k.json"
    g = KnobGuard(state, root)
    g.set(NB, 2)
    g.set(HIGH, "1G")
    (root / HIGH.lstrip("/")).unlink()
    out = g.restore_all()
    assert out[0].knob == HIGH and out[0].outcome == "gone" and "disappeared" in out[0].error
    assert out[1] == Restored(NB, "1", "restored")
    assert not (root / HIGH.lstrip("/")).exists()  # not re-created as a regular file
    assert not state.exists()


def test_a_knob_that_cannot_be_written_back_stays_recorded(tmp_path: Path, root: Path) -> None:
    state = tmp_path / "k.json"

    class Refusing(KnobGuard):
        refuse = False

        def _write(self, knob: str, text: str) -> None:
            if self.refuse and knob == RL:
                raise KernelError("cannot write the knob: Invalid argument", knob)
            super()._write(knob, text)

    g = Refusing(state, root)
    g.set(NB, 2)
    g.set(RL, 0)
    g.refuse = True
    out = g.restore_all()
    assert [(r.knob, r.outcome) for r in out] == [(RL, "failed"), (NB, "restored")]
    assert KnobGuard(state, root).pending() == [KnobRecord(RL, "65536", "0")]


def test_selection_lists_record_the_selected_word(tmp_path: Path, root: Path) -> None:
    g = KnobGuard(tmp_path / "k.json", root)
    assert g.get(THP) == "madvise"
    g.set(THP, "never")
    assert g.records == [KnobRecord(THP, "madvise", "never")]
    g.restore_all()
    assert value(root, THP) == "madvise"


def test_expected_value_is_what_the_kernel_reads_back(tmp_path: Path, root: Path) -> None:
    knob = "/sys/kernel/mm/numa/demotion_enabled"
    p = root / knob.lstrip("/")
    p.parent.mkdir(parents=True)
    p.write_text("false\n")

    class Sysfs(KnobGuard):  # the kernel takes 1 and prints true
        def _write(self, k: str, text: str) -> None:
            super()._write(k, {"1": "true", "0": "false"}.get(text, text))

    g = Sysfs(tmp_path / "k.json", root)
    assert g.set(knob, 1) == "true"
    assert g.verify() == []


def test_missing_knob_is_unavailable_naming_it_and_nothing_is_recorded(tmp_path: Path, root: Path) -> None:
    state = tmp_path / "k.json"
    g = KnobGuard(state, root)
    with pytest.raises(UnavailableError) as ei:
        g.set("/sys/kernel/debug/sched/numa_balancing/hot_threshold_ms", 1000)
    assert ei.value.where == "/sys/kernel/debug/sched/numa_balancing/hot_threshold_ms"
    assert g.records == [] and not state.exists()


def test_a_rejected_first_write_leaves_no_record(tmp_path: Path, root: Path) -> None:
    class Rejecting(KnobGuard):
        def _write(self, knob: str, text: str) -> None:
            raise KernelError("cannot write the knob: Invalid argument", knob)

    state = tmp_path / "k.json"
    g = Rejecting(state, root)
    with pytest.raises(KernelError) as ei:
        g.set(NB, 7)
    assert ei.value.where == NB
    assert g.records == [] and not state.exists()


def test_bad_state_file_and_bad_knob_paths(tmp_path: Path, root: Path) -> None:
    state = tmp_path / "k.json"
    aside = tmp_path / "k.json.corrupt"
    bad_records = (
        ("{not json", "Expecting property name"),
        (json.dumps({"version": 99, "knobs": []}), "version 99"),
        (b"\xff\xfe{}", "can't decode"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ("[" * 200_000, ""),
        (
            json.dumps(
                {"version": 1, "knobs": [{"knob": "/proc/../etc/passwd", "original": "x", "expected": "x"}]}
            ),
            "",
        ),
        ("x" * ((1 << 20) + 1), "larger than"),
    )
    for text, why in bad_records:
        (state.write_bytes if isinstance(text, bytes) else state.write_text)(text)  # type: ignore[operator]
        g = KnobGuard(state, root)  # set aside, reported, never fatal
        assert g.records == [] and not state.exists() and aside.exists()
        assert g.problem is not None and str(aside) in g.problem and why in g.problem
        aside.unlink()
    g = KnobGuard(state, root)
    for bad in ("proc/sys/kernel/numa_balancing", "/proc/../etc/passwd"):
        with pytest.raises(InputError, match="absolute path"):
            g.set(bad, 1)


class TableMounts:
    def __init__(self) -> None:
        self.mounted: set[Path] = set()

    def mount(self, source: str, target: Path, fstype: str) -> None:
        self.mounted.add(target)

    def umount(self, target: Path) -> None:
        if target not in self.mounted:
            raise UnavailableError("not mounted", str(target))
        self.mounted.discard(target)

    def is_mounted(self, target: Path) -> bool:
        return target in self.mounted


def test_a_mount_is_a_knob_recorded_first_and_unmounted_on_restore(tmp_path: Path, root: Path) -> None:
    state, mounts = tmp_path / "k.json", TableMounts()
    g = KnobGuard(state, root, mounts=mounts)
    tracing = "/sys/kernel/tracing"
    assert g.mount(tracing, "tracefs") is True
    assert root / "sys/kernel/tracing" in mounts.mounted
    assert g.recorded(tracing) == KnobRecord(tracing, "", "tracefs", "mount")
    assert g.verify() == []
    g.set(NB, 2)
    with pytest.raises(InputError):
        g.set(tracing, 1)  # a mount is not a value
    assert g.restore(NB) == Restored(NB, "1", "restored")  # one knob, the rest stays recorded
    assert [r.knob for r in KnobGuard(state, root, mounts=mounts).records] == [tracing]
    mounts.mounted.clear()  # someone unmounted it
    assert g.verify() == [Drift(tracing, "tracefs", None)]
    assert g.restore_all() == [Restored(tracing, "", "gone", "not mounted")]
    assert not state.exists() and g.restore(tracing) is None
    mounts.mounted.add(root / "sys/kernel/tracing")
    assert g.mount(tracing, "tracefs") is False and g.records == []  # mounted already: not ours


def test_a_record_of_an_unknown_kind_is_set_aside(tmp_path: Path, root: Path) -> None:
    state = tmp_path / "k.json"
    state.write_text(
        json.dumps({"version": 1, "knobs": [{"knob": NB, "original": "1", "expected": "2", "kind": "x"}]})
    )
    g = KnobGuard(state, root)
    assert g.records == [] and g.problem is not None and "unknown kind" in g.problem


def test_a_record_from_an_earlier_boot_is_not_restored(tmp_path: Path, root: Path) -> None:
    """The knobs came back to the kernel's defaults at the reboot (or to what the administrator's
    sysctl.conf sets): writing a crashed run's originals then would undo settings made since."""
    boot = root / "proc/sys/kernel/random/boot_id"
    boot.parent.mkdir(parents=True, exist_ok=True)
    boot.write_text("1111-aaaa\n")
    state = tmp_path / "k.json"
    crashed = KnobGuard(state, root)
    crashed.set(NB, 2)
    assert json.loads(state.read_text())["boot_id"] == "1111-aaaa"
    del crashed
    # the same boot: the record is adopted and restored
    same = KnobGuard(state, root)
    assert same.pending() == [KnobRecord(NB, "1", "2")] and same.problem is None
    (root / NB.lstrip("/")).write_text("0\n")  # the reboot's value, then the administrator's
    boot.write_text("2222-bbbb\n")  # rebooted
    later = KnobGuard(state, root)
    assert later.pending() == [] and not state.exists()
    assert later.problem is not None and "earlier boot" in later.problem
    assert later.restore_all() == [] and value(root, NB) == "0"  # left as the machine has it
