"""sd_notify client against real AF_UNIX datagram sockets."""

from __future__ import annotations

import os
import socket
import uuid

import pytest

from tierctl.service.sdnotify import SdNotify


@pytest.fixture
def receiver(tmp_path):
    path = tmp_path / "notify.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(path))
    s.settimeout(5)
    yield str(path), s
    s.close()


def _recv(s: socket.socket) -> list[str]:
    return s.recv(4096).decode().split("\n")


def test_messages_arrive(receiver):
    path, s = receiver
    n = SdNotify(environ={"NOTIFY_SOCKET": path})
    assert n.enabled
    assert n.ready("managing 2 cgroups")
    assert _recv(s) == ["READY=1", "STATUS=managing 2 cgroups"]
    assert n.status("cycle 3\nmoved 10 pages")
    assert _recv(s) == ["STATUS=cycle 3 moved 10 pages"]  # STATUS is one line
    assert n.watchdog()
    assert _recv(s) == ["WATCHDOG=1"]
    assert n.reloading()
    got = _recv(s)
    assert got[0] == "RELOADING=1" and got[1].startswith("MONOTONIC_USEC=") and int(got[1].split("=")[1]) > 0
    assert n.extend_timeout(2.5)
    assert _recv(s) == ["EXTEND_TIMEOUT_USEC=2500000"]
    assert n.stopping()
    assert _recv(s) == ["STOPPING=1"]
    assert n.reason == ""


def test_address_from_the_environment(receiver, monkeypatch):
    path, s = receiver
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    assert SdNotify().ready()
    assert _recv(s) == ["READY=1"]


def test_abstract_socket():
    name = f"tierctl-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind("\0" + name)
        s.settimeout(5)
        assert SdNotify(environ={"NOTIFY_SOCKET": "@" + name}).ready()
        assert _recv(s) == ["READY=1"]


def test_unset_is_a_noop(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    n = SdNotify()
    assert not n.enabled
    assert n.ready() is False and n.watchdog() is False and n.stopping() is False
    assert "not set" in n.reason
    assert SdNotify(environ={"NOTIFY_SOCKET": ""}).enabled is False


@pytest.mark.parametrize(
    "address",
    [
        "/nonexistent/dir/notify.sock",
        "@tierctl-nobody-listens-" + uuid.uuid4().hex,
        "relative/notify.sock",
        "vsock:2:1234",
        "/" + "x" * 200,  # longer than sun_path
        "/tmp/has\0nul",
    ],
)
def test_broken_socket_returns_false(address):
    n = SdNotify(environ={"NOTIFY_SOCKET": address})
    assert n.ready("x") is False
    assert n.reason


def test_not_a_socket(tmp_path):
    f = tmp_path / "plain-file"
    f.write_text("")
    n = SdNotify(environ={"NOTIFY_SOCKET": str(f)})
    assert n.watchdog() is False
    assert str(f) in n.reason


def test_malformed_line_is_refused(receiver):
    path, _ = receiver
    n = SdNotify(environ={"NOTIFY_SOCKET": path})
    assert n.notify("READY") is False and "malformed" in n.reason
    assert n.notify("READY=1\nSTATUS=x") is False


def test_watchdog_interval():
    me = str(os.getpid())
    assert SdNotify(environ={}).watchdog_interval() is None
    assert SdNotify(environ={"WATCHDOG_USEC": "30000000"}).watchdog_interval() == 30.0
    assert SdNotify(environ={"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": me}).watchdog_interval() == 30.0
    assert SdNotify(environ={"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}).watchdog_interval() is None
    assert SdNotify(environ={"WATCHDOG_USEC": "junk"}).watchdog_interval() is None
    assert SdNotify(environ={"WATCHDOG_USEC": "0"}).watchdog_interval() is None
