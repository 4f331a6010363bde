"""Soak (bounded, loopback only): unprivileged readers hoard connections while root mutates.

Real uids: forked children drop to uids 65532..65534 and keep as many connections open as the server
lets them, re-opening any it closes, for a few seconds. Meanwhile root pauses and resumes through fresh
connections. Root must never be refused, no uid may hold more than its share, and the server must keep
answering. Needs root (to change uid); CI runs as root.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.api.test_api import FakeService
from tierctl.api.client import ApiClient
from tierctl.api.server import ApiServer, Limits

HOARDERS = (65532, 65533, 65534)
SOAK_S = 4.0
WANT = 40  # connections each hoarder tries to keep


def _hoard(path: str, uid: int, seconds: float, report: int) -> None:
    """In a forked child: become ``uid`` and keep up to WANT connections open; write what happened."""
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    held: list[socket.socket] = []
    refused = opened = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        alive = []
        for s in held:  # drop the ones the server closed (reaped when idle)
            try:
                s.setblocking(False)
                gone = s.recv(4096, socket.MSG_PEEK) == b""
            except BlockingIOError:
                gone = False
            except OSError:
                gone = True
            if gone or b"too many" in _peek(s):
                s.close()
            else:
                alive.append(s)
        held = alive
        while len(held) < WANT and time.monotonic() < end:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(2)
            try:
                s.connect(path)
            except OSError:
                s.close()
                refused += 1
                break
            time.sleep(0.01)
            if b"too many" in _peek(s):
                s.close()
                refused += 1
                break
            opened += 1
            held.append(s)
        time.sleep(0.05)
    os.write(report, f"{opened} {refused}\n".encode())
    for s in held:
        s.close()


def _peek(s: socket.socket) -> bytes:
    try:
        s.setblocking(False)
        return s.recv(4096, socket.MSG_PEEK)
    except (BlockingIOError, OSError):
        return b""


@pytest.mark.skipif(os.geteuid() != 0, reason="changing uid needs root")
def test_readers_hoarding_connections_never_lock_root_out() -> None:
    sockdir = Path(tempfile.mkdtemp(prefix="tierctl-soak-"))
    os.chmod(sockdir, 0o755)
    fake = FakeService()
    limits = Limits(busy_idle_timeout=1.0, line_timeout=2.0)
    srv = ApiServer(fake, sockdir / "s.sock", socket_group=None, limits=limits).start()
    os.chmod(srv.socket_path, 0o666)  # any local user may read: the worst case for hoarding
    peak: Counter[int] = Counter()
    stop = threading.Event()

    def watch() -> None:  # the server's own view of who holds what
        while not stop.is_set():
            with srv._state_lock:
                now = Counter(c.uid for c in srv._conns.values() if not c.privileged)
            for uid, n in now.items():
                peak[uid] = max(peak[uid], n)
            peak[-1] = max(peak[-1], sum(now.values()))
            time.sleep(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    r, w = os.pipe()
    kids = []
    try:
        for uid in HOARDERS:
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child
                code = 0
                try:
                    _hoard(str(srv.socket_path), uid, SOAK_S, w)
                except BaseException:
                    code = 1
                os._exit(code)
            kids.append(pid)
        time.sleep(0.5)  # let them fill up
        failures: list[str] = []
        done = 0
        end = time.monotonic() + SOAK_S - 1.0
        while time.monotonic() < end:
            for op in ("pause", "resume"):
                try:
                    with ApiClient(srv.socket_path, timeout=5) as c:
                        c.call(op)
                    done += 1
                except Exception as e:  # recorded, asserted below
                    failures.append(f"{op}: {e}")
            time.sleep(0.01)
        codes = [os.waitpid(pid, 0)[1] for pid in kids]
        os.close(w)
        reports = os.read(r, 4096).decode().split()
    finally:
        stop.set()
        watcher.join(5)
        srv.stop()
        os.close(r)
        with contextlib.suppress(OSError):
            os.close(w)
        shutil.rmtree(sockdir, ignore_errors=True)
    assert codes == [0, 0, 0]
    assert failures == [] and done > 20
    assert [n for n in (fake.mutations or [])], "root's mutations reached the service"
    lim = srv.limits
    for uid in HOARDERS:
        assert 0 < peak[uid] <= lim.per_uid, peak
    assert peak[-1] <= lim.max_connections - lim.reserved_privileged
    opened_refused = [int(x) for x in reports]
    assert sum(opened_refused[1::2]) > 0  # the hoarders were refused past their share
