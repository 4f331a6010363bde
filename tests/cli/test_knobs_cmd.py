"""`tierctl knobs [--state-dir DIR] [--json] [--restore]` on fake trees: the daemon's knobs.json and the
samplers' bpf-knobs.PID.json records, fake procfs/sysfs knobs below --root, a fake daemon socket."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.test_api import FAST, FakeService
from tierctl.api import ApiServer
from tierctl.cli import build_parser, docgen, knobs_cmd, knobs_restore, knobs_survey, main
from tierctl.errors import PermissionDeniedError
from tierctl.kernel.knobs import KnobGuard

NB = "/proc/sys/kernel/numa_balancing"
RL = "/proc/sys/kernel/numa_balancing_promote_rate_limit_MBps"
SCAN = "/sys/kernel/debug/sched/numa_balancing/scan_size_mb"
STATS = "/proc/sys/kernel/bpf_stats_enabled"
TRACING = "/sys/kernel/tracing"
BOOT = "0f0e-boot"


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(done.stdout)


@pytest.fixture
def sockdir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="tierctl-knobs-"))  # short: sun_path holds 107 bytes
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def tree(tmp_path: Path, sockdir: Path) -> dict[str, Path]:
    root = tmp_path / "root"
    for knob, value in (
        (NB, "2"),
        (RL, "0"),
        (SCAN, "64"),
        (STATS, "1"),
        ("/proc/sys/kernel/random/boot_id", BOOT),
    ):
        p = root / knob.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(value + "\n")
    (root / "proc/self").mkdir(parents=True)
    (root / "proc/self/mountinfo").write_text("")  # nothing mounted (LibcMounts reads root/proc)
    return {"root": root, "state": tmp_path / "state", "run": tmp_path / "run", "sock": sockdir / "t.sock"}


def record(path: Path, knobs: list[dict[str, str]], *, pid: int, boot: str = BOOT) -> Path:
    """A record as KnobGuard writes it (json.dumps(indent=1): one line per key, entries over lines)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"version": 1, "pid": pid, "time": 1700000000.0, "boot_id": boot, "knobs": knobs}
    path.write_text(json.dumps(data, indent=1) + "\n")
    return path


def daemon_record(tree: dict[str, Path], pid: int) -> Path:
    return record(
        tree["state"] / "knobs.json",
        [
            {"knob": NB, "original": "0", "expected": "2"},
            {"knob": RL, "original": "65536", "expected": "0"},
            {"knob": SCAN, "original": "256", "expected": "64"},
        ],
        pid=pid,
    )


def sampler_record(tree: dict[str, Path], pid: int) -> Path:
    return record(
        tree["run"] / f"bpf-knobs.{pid}.json", [{"knob": STATS, "original": "0", "expected": "1"}], pid=pid
    )


def knobs(tree: dict[str, Path], *extra: str) -> list[str]:
    return [
        "knobs",
        "--state-dir",
        str(tree["state"]),
        "--root",
        str(tree["root"]),
        "--run-dir",
        str(tree["run"]),
        "--socket",
        str(tree["sock"]),
        *extra,
    ]


def value(tree: dict[str, Path], knob: str) -> str:
    return (tree["root"] / knob.lstrip("/")).read_text().strip()


def snapshot(*folders: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for f in folders if f.exists() for p in sorted(f.iterdir())}


# --------------------------------------------------------------------------------------- listing
def test_nothing_pending_exits_0(tree: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(knobs(tree)) == 0
    out = capsys.readouterr().out
    assert "no kernel knobs pending restore" in out and str(tree["state"] / "knobs.json") in out
    assert main(knobs(tree, "--json")) == 0
    assert json.loads(capsys.readouterr().out) == {
        "pending": 0,
        "records": [],
        "problems": [],
        "set_aside": [],
    }


def test_pending_and_drifted_knobs_exit_1_and_the_table_says_so(
    tree: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    gone = dead_pid()
    daemon_record(tree, gone)
    sampler_record(tree, gone)
    (tree["root"] / RL.lstrip("/")).write_text("500\n")  # someone changed it after tierctl set it
    (tree["root"] / STATS.lstrip("/")).write_text("0\n")  # back at its original
    assert main(knobs(tree)) == 1
    out = capsys.readouterr().out
    assert f"knobs.json: left by PID {gone} (gone), 3 knobs" in out
    assert f"bpf-knobs.{gone}.json: left by PID {gone} (gone), 1 knob" in out
    rows = {line.split()[2]: line for line in out.splitlines() if line.startswith(("daemon ", "bpf."))}
    assert rows[NB].split()[:7] == ["daemon", "sysctl", NB, "0", "2", "2", "set"]
    assert rows[RL].split()[:7] == ["daemon", "sysctl", RL, "65536", "0", "500", "drifted"]
    assert rows[SCAN].split()[1] == "debugfs"
    assert rows[STATS].split()[-2:] == ["drifted", "(original)"]
    assert "4 knobs pending restore, 2 drifted" in out
    assert "tierctl knobs --restore" in out


def test_json_lists_every_record_and_knob(tree: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    gone = dead_pid()
    daemon_record(tree, gone)
    (tree["root"] / SCAN.lstrip("/")).unlink()  # debugfs unmounted meanwhile
    assert main(knobs(tree, "--json")) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["pending"] == 3 and data["problems"] == []
    (rec,) = data["records"]
    assert rec["file"] == str(tree["state"] / "knobs.json")
    assert (rec["label"], rec["pid"], rec["alive"]) == ("daemon", gone, False)
    assert rec["owner"] == f"left by PID {gone} (gone)"
    by_knob = {k["knob"]: k for k in rec["knobs"]}
    assert by_knob[NB] == {
        "kind": "sysctl",
        "knob": NB,
        "original": "0",
        "expected": "2",
        "current": "2",
        "drifted": False,
        "state": "set by tierctl",
    }
    assert by_knob[SCAN]["current"] is None and by_knob[SCAN]["drifted"] and by_knob[SCAN]["state"] == "gone"


def test_a_live_recorder_is_in_use(tree: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    sampler_record(tree, os.getpid())
    assert main(knobs(tree)) == 1
    assert f"in use by PID {os.getpid()} (alive)" in capsys.readouterr().out


def test_a_record_from_an_earlier_boot_is_not_pending(
    tree: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    state = record(
        tree["state"] / "knobs.json", [{"knob": NB, "original": "0", "expected": "2"}], pid=1, boot="old"
    )
    assert main(knobs(tree)) == 0
    out = capsys.readouterr().out
    assert "from an earlier boot (boot id old)" in out and "no kernel knobs pending restore" in out
    assert state.exists()  # listing changes nothing
    assert main(knobs(tree, "--restore")) == 0
    out = capsys.readouterr().out
    assert "earlier boot" in out and not state.exists()
    assert value(tree, NB) == "2"  # the reboot's value stays


# --------------------------------------------------------------------------------------- restore
def test_restore_writes_the_originals_back_and_clears_the_records(
    tree: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    gone = dead_pid()
    state = daemon_record(tree, gone)
    bpf = sampler_record(tree, gone)
    (tree["root"] / RL.lstrip("/")).write_text("65536\n")  # at its original already
    assert main(knobs(tree, "--restore")) == 0
    out = capsys.readouterr().out
    assert (value(tree, NB), value(tree, RL), value(tree, SCAN), value(tree, STATS)) == (
        "0",
        "65536",
        "256",
        "0",
    )
    assert not state.exists() and not bpf.exists()
    assert f"{NB}: restored to 0" in out
    assert f"{RL}: already at its original value 65536" in out
    assert f"{STATS}: restored to 0" in out
    lines = out.splitlines()
    assert lines.index(f"  {SCAN}: restored to 256") < lines.index(f"  {NB}: restored to 0")  # last first
    assert main(knobs(tree)) == 0  # nothing left
    capsys.readouterr()


def test_restore_json_and_a_drifted_knob(tree: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    sampler_record(tree, dead_pid())
    (tree["root"] / STATS.lstrip("/")).write_text("7\n")
    assert main(knobs(tree, "--restore", "--json")) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is True
    (o,) = data["outcomes"]
    assert (o["knob"], o["kind"], o["original"], o["outcome"]) == (STATS, "sysctl", "0", "restored")
    assert o["detail"] == "it had drifted to 7"


def test_restore_unmounts_a_recorded_mount(tree: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    from tests.kernel.test_kernel_bpfhost import FakeMounts

    mounts = FakeMounts()
    target = tree["root"] / TRACING.lstrip("/")
    target.mkdir(parents=True)
    mounts.mount("tracefs", target, "tracefs")
    pid = dead_pid()
    record(
        tree["run"] / f"bpf-knobs.{pid}.json",
        [{"knob": TRACING, "original": "", "expected": "tracefs", "kind": "mount"}],
        pid=pid,
    )
    places = knobs_cmd.Places(tree["state"], tree["run"], tree["root"], tree["sock"], mounts)
    (rec,) = knobs_cmd.survey(places).records
    assert [(k.kind, k.current, k.drifted) for k in rec.knobs] == [("mount", "tracefs", False)]
    assert knobs_cmd.run_with(places, do_restore=True) == 0
    assert f"{TRACING}: unmounted" in capsys.readouterr().out
    assert not mounts.is_mounted(target) and ("umount", target) in mounts.calls


def test_a_knob_that_cannot_be_written_back_fails_and_stays_recorded(
    tree: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state = daemon_record(tree, dead_pid())
    real = KnobGuard._write

    def write(self: KnobGuard, knob: str, text: str) -> None:
        if knob == RL:  # as KnobGuard reports EACCES (the tests run as root: chmod would not stop them)
            raise PermissionDeniedError(
                "permission denied: cannot write '65536' to the knob (root needed)", knob
            )
        real(self, knob, text)

    monkeypatch.setattr(KnobGuard, "_write", write)
    assert main(knobs(tree, "--restore")) == 1
    out = capsys.readouterr().out
    assert f"{RL}: failed: permission denied" in out and f"{NB}: restored to 0" in out
    assert [k["knob"] for k in json.loads(state.read_text())["knobs"]] == [RL]  # kept for a later try


def test_restore_without_permission_to_rewrite_a_record_names_it(
    tree: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state = daemon_record(tree, dead_pid())
    monkeypatch.setattr(knobs_restore, "_writable", lambda path: False)
    before = snapshot(tree["state"])
    assert main(knobs(tree, "--restore")) == 4
    err = capsys.readouterr().err
    assert err.startswith(f"tierctl: error: {state}: permission denied") and "root needed" in err
    assert "Traceback" not in err and snapshot(tree["state"]) == before and value(tree, NB) == "2"


def test_an_unreadable_record_is_permission_denied_naming_it(
    tree: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state = daemon_record(tree, dead_pid())

    def denied(path: Path, limit: int) -> bytes | None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(knobs_survey, "read_capped", denied)
    assert main(knobs(tree)) == 4
    err = capsys.readouterr().err
    assert err == f"tierctl: error: {state}: permission denied: cannot read the knob record (root needed)\n"


# -------------------------------------------------------------------------------------- refusals
def test_restore_is_refused_while_a_daemon_answers(
    tree: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    daemon_record(tree, dead_pid())
    before = snapshot(tree["state"])
    with ApiServer(FakeService(), tree["sock"], limits=FAST):
        assert main(knobs(tree, "--restore")) == 2
    err = capsys.readouterr().err
    assert f"a tierctl daemon answers on {tree['sock']}" in err and "stop it first" in err
    assert snapshot(tree["state"]) == before and value(tree, NB) == "2"
    # the daemon gone (its socket file may stay behind): restoring goes ahead
    assert main(knobs(tree, "--restore")) == 0
    assert value(tree, NB) == "0"
    capsys.readouterr()


def test_restore_is_refused_while_something_listens_without_answering(
    tree: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(knobs_restore, "SOCKET_TIMEOUT_S", 0.2)
    daemon_record(tree, dead_pid())
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(tree["sock"]))
        listener.listen(4)
        assert main(knobs(tree, "--restore")) == 2
    err = capsys.readouterr().err
    assert f"something listens on the daemon's socket {tree['sock']}" in err
    assert value(tree, NB) == "2"


@pytest.mark.parametrize("which", ["sampler", "daemon"])
def test_restore_is_refused_while_the_recording_process_is_alive(
    tree: dict[str, Path], capsys: pytest.CaptureFixture[str], which: str
) -> None:
    path = sampler_record(tree, os.getpid()) if which == "sampler" else daemon_record(tree, os.getpid())
    knob = STATS if which == "sampler" else NB
    before = snapshot(tree["state"], tree["run"])
    assert main(knobs(tree, "--restore")) == 2
    err = capsys.readouterr().err
    assert f"{path} is in use by PID {os.getpid()} (alive)" in err
    assert snapshot(tree["state"], tree["run"]) == before
    assert value(tree, knob) in ("1", "2")  # untouched


# --------------------------------------------------------------------------------------- corrupt
@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ('{\n "version": 1,\n "knobs": [\n  {"knob": "/proc/sys/kernel/numa_balancing",\n', 5, "not JSON"),
        (
            '{\n "version": 1,\n "knobs": [\n  {"knob": "/proc/sys/x", "original": "0", "expected": "1"},\n'
            '  {"knob": "/proc/sys/y", "expected": "1"}\n ]\n}\n',
            5,
            "entry 2: no 'original'",
        ),
        ('{\n "version": 7,\n "knobs": []\n}\n', 2, "version 7"),
        (
            '{\n "version": 1,\n "knobs": [\n'
            '  {"knob": "relative", "original": "0", "expected": "1"}\n ]\n}\n',
            4,
            "entry 1",
        ),
        ('{\n "version": 1,\n "version": 1,\n "knobs": []\n}\n', 3, "duplicate key"),
        (
            '{\n "version": 1,\n "knobs": [\n'
            '  {"knob": "/x", "original": "", "expected": "", "kind": "link"}]}',
            4,
            "kind",
        ),
    ],
)
def test_a_corrupt_record_is_an_error_naming_file_and_line_and_nothing_is_lost(
    tree: dict[str, Path], capsys: pytest.CaptureFixture[str], text: str, line: int, fragment: str
) -> None:
    sampler_record(tree, dead_pid())  # a good record beside it
    bad = tree["state"] / "knobs.json"
    bad.parent.mkdir(parents=True)
    bad.write_text(text)
    before = snapshot(tree["state"], tree["run"])
    assert main(knobs(tree)) == 2
    out, err = capsys.readouterr()
    assert err.startswith(f"tierctl: error: {bad}:{line}: not a tierctl knob record (") and fragment in err
    assert "nothing was changed" in err and "Traceback" not in err
    assert STATS in out  # the readable record is still listed
    assert "no kernel knobs pending" not in out
    assert main(knobs(tree, "--restore")) == 2
    assert f"{bad}:{line}:" in capsys.readouterr().err
    assert snapshot(tree["state"], tree["run"]) == before  # not set aside, not restored, not removed
    assert value(tree, STATS) == "1"


def test_a_set_aside_record_is_mentioned(tree: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    (tree["state"]).mkdir()
    (tree["state"] / "knobs.json.corrupt").write_text("{")
    assert main(knobs(tree)) == 0
    assert "knobs.json.corrupt: an unreadable record tierctl set aside" in capsys.readouterr().out


# ------------------------------------------------------------------------------------ plumbing
def test_bad_state_dir_is_bad_input(tree: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    tree["state"].write_text("a file")
    assert main(knobs(tree)) == 2
    assert capsys.readouterr().err == "tierctl: error: --state-dir: not a directory\n"


def test_the_default_state_dir_is_the_daemons() -> None:
    tree = {" ".join(c.path): c for c in docgen.command_tree(build_parser())}
    daemon_help = next(o.help for o in tree["daemon"].options if "--state-dir" in o.flags)
    assert f"default {knobs_cmd.DAEMON_STATE_DIR}" in daemon_help
    assert {"--state-dir", "--json", "--restore", "--socket"} <= {
        f for o in tree["knobs"].options for f in o.flags
    }


def test_the_record_names_are_the_ones_the_bpf_host_writes(tmp_path: Path) -> None:
    from tierctl.kernel.bpfhost import BpfHost

    host = BpfHost(root=tmp_path, run_dir=tmp_path / "run")
    guard = host.knobs()
    assert knobs_survey.sampler_records(tmp_path / "run") == []
    guard.state_file.parent.mkdir()
    guard.state_file.write_text("{}")
    assert knobs_survey.sampler_records(tmp_path / "run") == [(guard.state_file, "bpf", os.getpid())]


def test_a_damon_samplers_record_is_listed_and_a_bad_one_refused(
    tree: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """A one-shot command's DAMON sampler keeps ``damon-knobs.PID.json`` (kind ``damon``: the kdamonds
    it started); ``tierctl knobs`` lists it beside the BPF records, and refuses a damon record whose
    kdamonds do not parse, naming the file and line."""
    from tierctl.kernel.knobs import DAMON_KDAMONDS
    from tierctl.samplers.damon import RECORD_PREFIX

    gone = dead_pid()
    entry = {"knob": DAMON_KDAMONDS, "original": "0", "expected": "1: vaddr 4242", "kind": "damon"}
    record(tree["run"] / f"{RECORD_PREFIX}{gone}.json", [entry], pid=gone)
    assert main(knobs(tree, "--json")) == 1
    data = json.loads(capsys.readouterr().out)
    (rec,) = data["records"]
    assert (rec["label"], rec["pid"]) == (f"damon.{gone}", gone)
    (k,) = rec["knobs"]
    # no DAMON below this root: the kdamonds it records are gone
    assert (k["knob"], k["expected"], k["state"]) == (DAMON_KDAMONDS, "1: vaddr 4242", "gone")
    bad = record(tree["run"] / f"{RECORD_PREFIX}{gone}.json", [{**entry, "expected": "2: vaddr"}], pid=gone)
    assert main(knobs(tree)) == 2
    err = capsys.readouterr().err
    assert f"{bad}:" in err and "entry 1" in err and "kdamonds" in err
