"""Pod lookup through the official client against a fake API server on loopback (tests/k8s/fake_api.py):
list then watch, pages, 410 Gone -> list again, the API down -> cgroup-path-only answers and recovery,
RBAC refusals, no client installed, no credentials; mirror pods of static pods."""

from __future__ import annotations

import logging
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.k8s.fake_api import FakeApi, pod
from tierctl.k8s import PodCache, PodResolver, PodWatcher, WatchConfig, pod_meta, pod_text

WEB = "8f3c2a1e-5b7d-4c9e-a0f1-2d3e4f5a6b7c"
DB = "1b2c3d4e-0f1a-4b2c-9d3e-4f5a6b7c8d9e"
WEB_PATH = f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{WEB.replace('-', '_')}.slice"
DB_PATH = f"/kubepods/pod{DB}/{'d' * 64}"


def wait_for(cond: Callable[[], object], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError("timed out")


def fast(node: str = "node-1", kubeconfig: Path | None = None) -> WatchConfig:
    return WatchConfig(
        node=node,
        kubeconfig=kubeconfig,
        watch_timeout_s=30,
        request_timeout_s=2.0,
        backoff_s=0.05,
        backoff_max_s=0.2,
        env={},
    )


@pytest.fixture()
def api() -> Iterator[FakeApi]:
    fake = FakeApi(page=1).start()
    fake.add(pod(WEB, "shop", "web-0", app="web", tier="front"), event=None)
    yield fake
    fake.end_watches.set()
    fake.stop()


def resolver(cfg: WatchConfig) -> PodResolver:
    return PodResolver("auto", PodWatcher(cfg, PodCache()))


def test_list_then_watch(api: FakeApi, tmp_path: Path) -> None:
    r = resolver(fast(kubeconfig=api.kubeconfig(tmp_path / "kubeconfig")))
    assert r.start() == "pods of node node-1 followed through the API server"
    try:
        wait_for(lambda: r.pod(WEB_PATH) is not None and r.pod(WEB_PATH).name == "web-0")  # type: ignore[union-attr]
        web = r.pod(WEB_PATH)
        assert web is not None and (web.namespace, web.qos, web.labels) == (
            "shop",
            "burstable",
            (("app", "web"), ("tier", "front")),
        )
        wait_for(lambda: api.watches >= 1)
        api.add(pod(DB, "data", "pg-0", qos="Guaranteed", app="pg"))  # seen through the watch
        wait_for(lambda: (p := r.pod(DB_PATH)) is not None and p.name == "pg-0")
        assert r.row(DB_PATH) == {
            "namespace": "data",
            "name": "pg-0",
            "uid": DB,
            "qos": "guaranteed",
            "container": "d" * 64,
        }
        api.add(pod(DB, "data", "pg-0"), event="DELETED")
        wait_for(lambda: (p := r.pod(DB_PATH)) is not None and p.name is None)
        assert r.pod("/system.slice/sshd.service") is None
        assert api.lists == 1 and set(api.selectors) == {"spec.nodeName=node-1"}
        assert r.status()["state"] == "watching" and r.status()["pods"] == 1
    finally:
        r.stop()
    assert r.watcher is not None and not r.watcher._thread.is_alive()  # type: ignore[union-attr]


def test_the_list_follows_continue_tokens(api: FakeApi, tmp_path: Path) -> None:
    for i in range(4):
        api.add(pod(f"00000000-0000-4000-8000-00000000000{i}", "ns", f"p{i}"), event=None)
    cache = PodCache()
    w = PodWatcher(fast(kubeconfig=api.kubeconfig(tmp_path / "kc")), cache)
    w.start()
    try:
        wait_for(lambda: len(cache) == 5)
        assert (api.lists, api.pages) == (1, 5)  # one pod per page (page=1)
    finally:
        w.stop()


def test_410_gone_lists_again(api: FakeApi, tmp_path: Path) -> None:
    r = resolver(fast(kubeconfig=api.kubeconfig(tmp_path / "kc")))
    r.start()
    try:
        wait_for(lambda: api.watches >= 1)
        api.add(pod(DB, "data", "pg-0"), event=None)  # no event: only a fresh list can find it
        api.gone = True
        api.end_watches.set()  # the open watch ends; the next one is told 410
        wait_for(lambda: not api.gone)
        api.end_watches.clear()
        wait_for(lambda: (p := r.pod(DB_PATH)) is not None and p.name == "pg-0")
        assert api.lists == 2
        assert r.watcher is not None and r.watcher.errors == 0
    finally:
        r.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_api_down_gives_path_only_answers_then_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = _free_port()
    fake = FakeApi(port=port)
    fake.add(pod(WEB, "shop", "web-0"), event=None)
    r = resolver(fast(kubeconfig=fake.kubeconfig(tmp_path / "kc")))
    caplog.set_level(logging.INFO, "tierctl.k8s")
    assert r.start() is not None  # credentials are fine; the server is not there yet
    try:
        wait_for(lambda: r.watcher is not None and r.watcher.errors >= 2)
        web = r.pod(WEB_PATH)
        assert web is not None and (web.uid, web.qos) == (WEB, "burstable")
        assert (web.namespace, web.name, web.labels) == (None, None, None)
        assert r.status()["state"] == "retrying" and "Error" in r.status()["reason"]
        fake.start()
        wait_for(lambda: (p := r.pod(WEB_PATH)) is not None and p.name == "web-0")
        # down again while watching: what was known stays, and it comes back once more
        fake.end_watches.set()
        fake.stop()
        wait_for(lambda: r.status()["state"] == "retrying")
        assert (p := r.pod(WEB_PATH)) is not None and p.name == "web-0"
        fake.end_watches.clear()
        fake.add(pod(DB, "data", "pg-0"), event=None)
        fake.start()
        wait_for(lambda: (p := r.pod(DB_PATH)) is not None and p.name == "pg-0")
    finally:
        r.stop()
        fake.end_watches.set()
        fake.stop()
    msgs = [rec.getMessage() for rec in caplog.records]
    assert sum("cannot be read" in m for m in msgs) == 2  # once per outage, not once per retry
    assert sum("answers again" in m for m in msgs) == 2


def test_rbac_refusal_is_retried_not_raised(api: FakeApi, tmp_path: Path) -> None:
    api.forbidden = True
    r = resolver(fast(kubeconfig=api.kubeconfig(tmp_path / "kc")))
    r.start()
    try:
        wait_for(lambda: r.status()["reason"].startswith("HTTP 403"))
        assert r.pod(WEB_PATH) is not None and r.pod(WEB_PATH).namespace is None  # type: ignore[union-attr]
        api.forbidden = False  # the ClusterRole got fixed
        wait_for(lambda: (p := r.pod(WEB_PATH)) is not None and p.name == "web-0")
    finally:
        r.stop()


def test_without_the_client_pods_come_from_paths(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "kubernetes", None)  # import kubernetes -> ImportError
    r = resolver(fast(kubeconfig=tmp_path / "kc"))
    with caplog.at_level(logging.WARNING, "tierctl.k8s"):
        line = r.start()
    assert line == (
        "pods known from cgroup paths only (no namespace, name or labels): "
        "the kubernetes client is not installed (pip install 'tierctl[k8s]')"
    )
    assert [rec.getMessage() for rec in caplog.records] == [f"pods: {line}"]
    assert r.pod(WEB_PATH) is not None and r.status() == {"api": False, "reason": line.split(": ", 1)[1]}
    r.stop()


def test_no_credentials_and_a_broken_kubeconfig(tmp_path: Path) -> None:
    r = resolver(fast())
    assert r.start() == (
        "pods known from cgroup paths only (no namespace, name or labels): no kubeconfig (--kubeconfig, "
        "$KUBECONFIG) and not running in a cluster ($KUBERNETES_SERVICE_HOST unset)"
    )
    bad = tmp_path / "kc"
    bad.write_text("clusters: [")
    r = resolver(fast(kubeconfig=bad))
    line = r.start()
    assert line is not None and "cannot load the API credentials" in line
    assert PodResolver.from_config("auto", None).start() is None  # not a Kubernetes node: nothing to say


def test_mirror_pods_answer_for_their_static_pod() -> None:
    static = "3e1f0c6a9b2d4e5f8a7b6c5d4e3f2a1b"
    mirror = pod("aaaaaaaa-0000-4000-8000-000000000001", "kube-system", "etcd-node-1", component="etcd")
    mirror["metadata"]["annotations"] = {"kubernetes.io/config.mirror": static}
    cache = PodCache()
    assert cache.replace([mirror, {"metadata": {}}, "junk"]) == 1
    got = cache.get(static)
    assert got is not None and got.name == "etcd-node-1" and got.mirror_of == static
    cache.remove(mirror)
    assert cache.get(static) is None and len(cache) == 0
    assert pod_meta({"metadata": {"uid": "u", "namespace": "n", "name": "x"}, "status": {}}) is not None


def test_pod_text() -> None:
    assert pod_text({"namespace": "shop", "name": "web-0", "uid": WEB}) == "shop/web-0"
    assert pod_text({"namespace": None, "name": None, "uid": WEB}) == "pod:8f3c2a1e"
    assert pod_text(None) == ""
