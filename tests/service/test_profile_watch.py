"""The profiles directory followed: a Kubernetes ConfigMap swap and a plain directory edited in place
reload the profiles exactly as SIGHUP does (transactionally: a broken update keeps the running set and
says so in an event and in the metrics).

``ConfigMapDir`` lays files out as the kubelet's AtomicWriter does (pkg/volume/util/atomic_writer.go):
the data in a timestamped directory ``..2026_12_05_01_02_03.<n>``, a ``..data`` symlink to it, and per
key a symlink ``<key> -> ..data/<key>``; an update writes a new timestamped directory, points a new
``..data_tmp`` symlink at it, renames that over ``..data`` (the atomic swap), adds or removes the
per-key symlinks and deletes the old directory.

The watcher's own tests use a fake clock (inotify queues events within the syscall that caused them,
so nothing needs to wait); the daemon tests run ``run_daemon`` in a thread on the simulated machine
and wait for each outcome with a deadline, polling every 10 ms.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tierctl.data import profiles_dir
from tierctl.errors import UnavailableError
from tierctl.kernel import inotify
from tierctl.service import metrics as m
from tierctl.service.daemon import run_daemon
from tierctl.service.profile_watch import ProfileWatch, fingerprint
from tierctl.sim.live import sim_service

SHIPPED = {p.name: p.read_text() for p in sorted(profiles_dir().glob("*.toml"))}
ETL = """name = "{name}"
priority = 95

[[match]]
unit = "nightly-etl.service"

[placement]
fast_max = "10%"
"""
BROKEN = 'name = "etl"\n[placement\nfast_max = "10%"\n'  # a TOML syntax error


class ConfigMapDir:
    """A directory laid out as a mounted ConfigMap volume, updated as the kubelet updates it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.path.mkdir()
        self.n = 0

    def publish(self, files: dict[str, str]) -> None:
        self.n += 1
        ts = f"..2026_12_05_01_02_{self.n:02d}.{123456789 + self.n}"
        (self.path / ts).mkdir()
        for key, text in files.items():
            (self.path / ts / key).write_text(text)
        old = os.readlink(self.path / "..data") if (self.path / "..data").is_symlink() else None
        os.symlink(ts, self.path / "..data_tmp")
        os.rename(self.path / "..data_tmp", self.path / "..data")  # the atomic swap
        for key in files:
            if not (self.path / key).is_symlink():
                os.symlink(f"..data/{key}", self.path / key)
        for e in os.listdir(self.path):
            if not e.startswith(".") and e not in files:
                os.unlink(self.path / e)
        if old is not None:
            shutil.rmtree(self.path / old)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


# ---- the watcher -----------------------------------------------------------------------------------
def test_a_configmap_swap_is_due_once_after_the_debounce(tmp_path: Path) -> None:
    cm = ConfigMapDir(tmp_path / "profiles")
    cm.publish(SHIPPED)
    clock = Clock()
    w = ProfileWatch(cm.path, clock=clock, debounce_s=0.3)
    assert "by inotify" in w.start() and w.mode == "inotify"
    try:
        assert w.due() is None  # nothing happened
        cm.publish({**SHIPPED, "etl.toml": ETL.format(name="etl")})
        assert w.due() is None  # within the debounce: a swap is several events
        clock.t += 0.31
        assert w.due() == "..data was swapped (a ConfigMap update)"
        clock.t += 10
        assert w.due() is None and w.changes == 1  # once
        cm.publish({**SHIPPED, "etl.toml": ETL.format(name="etl")})  # same text, new files: reload
        assert w.due() is None  # events are timed when read: the daemon reads them every 0.1 s at most
        clock.t += 0.31
        assert w.due() is not None
    finally:
        w.close()


def test_a_burst_that_never_settles_is_due_after_max_delay(tmp_path: Path) -> None:
    d = tmp_path / "profiles"
    d.mkdir()
    (d / "default.toml").write_text(SHIPPED["default.toml"])
    clock = Clock()
    w = ProfileWatch(d, clock=clock, debounce_s=0.3, max_delay_s=1.0)
    w.start()
    try:
        for i in range(4):  # a write every 0.25 s: never quiet for 0.3 s
            (d / "default.toml").write_text(SHIPPED["default.toml"] + f"# {i}\n")
            assert w.due() is None
            clock.t += 0.25
        (d / "default.toml").write_text(SHIPPED["default.toml"] + "# last\n")
        assert w.due() == "changed: default.toml"  # 1 s after the first write, still writing
    finally:
        w.close()


def test_events_that_leave_the_profile_files_as_they_were_are_not_due(tmp_path: Path) -> None:
    d = tmp_path / "profiles"
    d.mkdir()
    (d / "default.toml").write_text(SHIPPED["default.toml"])
    clock = Clock()
    w = ProfileWatch(d, clock=clock, debounce_s=0.1)
    w.start()
    try:
        (d / ".default.toml.swp").write_text("x")  # an editor's swap file, not a profile
        (d / ".default.toml.swp").unlink()
        (d / "notes.txt").write_text("not a profile either")
        assert w.due() is None
        clock.t += 0.2
        assert w.due() is None and w.changes == 0
    finally:
        w.close()


def test_a_replaced_directory_is_watched_again(tmp_path: Path) -> None:
    d = tmp_path / "profiles"
    d.mkdir()
    (d / "default.toml").write_text(SHIPPED["default.toml"])
    clock = Clock()
    w = ProfileWatch(d, clock=clock, debounce_s=0.1)
    w.start()
    try:
        d.rename(tmp_path / "old")  # the watch ends (IN_MOVE_SELF)
        d.mkdir()
        (d / "default.toml").write_text(SHIPPED["default.toml"])
        assert w.due() is None
        clock.t += 0.2
        assert w.due() is not None  # the new directory's inode, and its file's
        (d / "extra.toml").write_text(ETL.format(name="etl"))  # seen by the new watch
        assert w.due() is None
        clock.t += 0.2
        assert w.due() == "changed: extra.toml"
    finally:
        w.close()


def test_without_inotify_a_fingerprint_poll_finds_the_change_once_it_settled(tmp_path: Path) -> None:
    d = tmp_path / "profiles"
    d.mkdir()
    (d / "default.toml").write_text(SHIPPED["default.toml"])

    def no_inotify(path: Path) -> inotify.DirWatch:
        raise UnavailableError("too many inotify instances (fs.inotify.max_user_instances)", "inotify")

    clock = Clock()
    w = ProfileWatch(d, clock=clock, inotify=no_inotify, poll_s=2.0, debounce_s=0.3)
    line = w.start()
    assert w.mode == "poll" and "a check every 2 s (inotify: too many inotify instances" in line
    (d / "default.toml").write_text(SHIPPED["default.toml"] + "# 1\n")
    clock.t += 1.9
    assert w.due() is None  # not polled yet
    clock.t += 0.2
    assert w.due() is None  # seen changed: wait for it to settle
    (d / "default.toml").write_text(SHIPPED["default.toml"] + "# 12\n")  # still being written
    clock.t += 0.31
    assert w.due() is None  # it changed again since: wait again
    clock.t += 0.31
    assert w.due() == "the profile files changed (found by a check of their fingerprint)"
    clock.t += 10
    assert w.due() is None and w.changes == 1


def test_the_fingerprint_follows_symlinks_and_names_errors(tmp_path: Path) -> None:
    cm = ConfigMapDir(tmp_path / "profiles")
    cm.publish({"default.toml": SHIPPED["default.toml"]})
    before = fingerprint(cm.path)
    assert [r[0] for r in before] == ["<dir>", "default.toml"]
    assert str(before[1][1]).startswith(str(cm.path / "..2026_12_05_01_02_01"))  # the resolved file
    cm.publish({"default.toml": SHIPPED["default.toml"]})
    assert fingerprint(cm.path) != before  # same text, another file
    os.unlink(cm.path / "..data")  # every per-key link dangles
    assert fingerprint(cm.path)[1][:2] == ("default.toml", "error")
    assert fingerprint(tmp_path / "nowhere")[0][:2] == ("<dir>", "error")


def test_inotify_events_are_parsed_from_the_kernels_records(tmp_path: Path) -> None:
    with inotify.DirWatch(tmp_path) as w:
        assert w.read() == []
        (tmp_path / "a.toml").write_text("x")
        os.rename(tmp_path / "a.toml", tmp_path / "b.toml")
        (tmp_path / "b.toml").unlink()
        got = [(e.name, e.mask & ~inotify.IN_ISDIR) for e in w.read()]
        assert got == [
            ("a.toml", inotify.IN_CREATE),
            ("a.toml", inotify.IN_CLOSE_WRITE),
            ("a.toml", inotify.IN_MOVED_FROM),
            ("b.toml", inotify.IN_MOVED_TO),
            ("b.toml", inotify.IN_DELETE),
        ]
        tmp_path.rename(tmp_path.with_name("moved"))
        assert any(e.gone for e in w.read()) and not w.watching
    with pytest.raises(UnavailableError, match="no such directory"):
        inotify.DirWatch(tmp_path / "nowhere")


# ---- the daemon --------------------------------------------------------------------------------------
class _Lines:
    """A log that keeps what was written (the daemon's stderr)."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def write(self, text: str) -> None:
        self.lines.append(text)

    def flush(self) -> None:
        pass


class Daemon:
    """``run_daemon`` on the simulated machine in a thread, its profiles in ``directory``, watched."""

    def __init__(self, directory: Path, state: Path) -> None:
        self.watch = ProfileWatch(directory, debounce_s=0.05)
        self.watch.start()  # before the Service reads the profiles, as `tierctl daemon` does
        self.service = sim_service("multi-cgroup", state_dir=state, profiles_dir=directory, epochs=4)
        self.stop = threading.Event()
        self.log: list[str] = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        run_daemon(
            self.service,
            cycle_s=0.05,
            log=_Lines(self.log),  # type: ignore[arg-type]
            install_signals=False,
            lock=self.lock,
            watch=self.watch,
            stop=self.stop,
        )

    def wait(self, what: str, check: Callable[[], Any], timeout: float = 10.0) -> Any:
        deadline = time.monotonic() + timeout
        while not (got := check()):
            assert self.thread.is_alive(), f"the daemon stopped while waiting for {what}: {self.log}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {self.log}"
            time.sleep(0.01)
        return got

    def events(self, *kinds: str) -> list[dict[str, Any]]:
        with self.lock:
            return [e for e in self.service.events if e["kind"] in kinds]

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        snap = m.snapshot_from_service(self.service, reloads=self.service.reload_counts)
        return {
            (f.name, tuple(sorted(zip(spec_labels(f.name), labels, strict=True)))): v
            for f in [s for s in m.METRICS if s.name.startswith("tierctl_profile")]
            for labels, v in f.read(snap)
        }


def spec_labels(name: str) -> tuple[str, ...]:
    return m.TABLE[name].labels


@pytest.fixture
def daemon_in(tmp_path: Path) -> Iterator[Callable[[Path], Daemon]]:
    started: list[Daemon] = []

    def make(directory: Path) -> Daemon:
        d = Daemon(directory, tmp_path / "state")
        started.append(d)
        d.thread.start()
        return d

    yield make
    for d in started:
        d.stop.set()
        d.thread.join(timeout=10)
        assert not d.thread.is_alive()


def _reloads(d: Daemon, trigger: str, result: str) -> float:
    return d.metrics()[("tierctl_profile_reloads_total", (("result", result), ("trigger", trigger)))]


def test_configmap_updates_good_broken_fixed(tmp_path: Path, daemon_in: Callable[[Path], Daemon]) -> None:
    cm = ConfigMapDir(tmp_path / "profiles")
    cm.publish(SHIPPED)
    d = daemon_in(cm.path)
    assert "etl" not in d.service.profiles.names()
    last = lambda: ("tierctl_profile_last_reload_successful", ())  # noqa: E731

    # a good update: applied, and the events say the watch did it
    cm.publish({**SHIPPED, "etl.toml": ETL.format(name="etl")})
    d.wait("the update applied", lambda: "etl" in d.service.profiles.names())
    req, done = d.events("reload_requested", "reloaded")[-2:]
    assert req["trigger"] == "watch" and req["message"] == "..data was swapped (a ConfigMap update)"
    assert done["kind"] == "reloaded" and "etl" in done["profiles"]
    d.wait("the matches follow", lambda: d.service.matches.get("/batch.slice/nightly-etl.service") == "etl")
    assert _reloads(d, "watch", "ok") == 1 and d.metrics()[last()] == 1

    # a broken update: refused, the running set stays; an event, the failure counter, the gauge say so
    running = d.service.profiles
    cm.publish({**SHIPPED, "etl.toml": BROKEN})
    d.wait("the update refused", lambda: d.events("reload_failed"))
    req, failed = d.events("reload_requested", "reload_failed")[-2:]
    assert req["trigger"] == "watch" and failed["kind"] == "reload_failed" and "etl.toml" in failed["message"]
    assert d.service.profiles is running and d.service.reload_failures == 1
    assert _reloads(d, "watch", "failed") == 1 and d.metrics()[last()] == 0
    assert any("reload refused, running set kept (watch: ..data was swapped" in x for x in d.log)
    time.sleep(0.2)  # (a few loop waits) the same broken files are not retried
    assert d.service.reload_failures == 1

    # a fixed update: applied
    cm.publish({**SHIPPED, "etl.toml": ETL.format(name="etl-fixed")})
    d.wait("the fix applied", lambda: "etl-fixed" in d.service.profiles.names())
    assert _reloads(d, "watch", "ok") == 2 and d.metrics()[last()] == 1
    assert d.metrics()[("tierctl_profile_reload_failures_total", ())] == 1
    assert _reloads(d, "signal", "ok") == 0  # exported from 0


def test_a_plain_directory_edited_in_place(tmp_path: Path, daemon_in: Callable[[Path], Daemon]) -> None:
    pd = tmp_path / "profiles"
    pd.mkdir()
    for name, text in SHIPPED.items():
        (pd / name).write_text(text)
    (pd / "etl.toml").write_text(ETL.format(name="etl"))
    d = daemon_in(pd)
    assert "etl" in d.service.profiles.names()
    with open(pd / "etl.toml", "r+") as f:  # edited in place (IN_CLOSE_WRITE), not replaced
        f.write(ETL.format(name="nightly"))
        f.truncate()
    d.wait("the edit applied", lambda: "nightly" in d.service.profiles.names())
    assert "etl" not in d.service.profiles.names()
    assert d.events("reload_requested")[-1]["message"] == "changed: etl.toml"
    (pd / "etl.toml").unlink()  # a profile removed
    d.wait("the removal applied", lambda: "nightly" not in d.service.profiles.names())
    assert _reloads(d, "watch", "ok") == 2 and _reloads(d, "watch", "failed") == 0
