"""A real Prometheus over three tierctl daemons: the recording rules give the fleet figures that the
daemons' own reports give.

Three ``tierctl daemon --sim WORKLOAD --seed N`` processes run on the simulated platform (the daemon's
own Service, socket API, metrics server and loop on a simulated machine instead of the kernel; pods are
given with ``--sim-pod``), each with ``--metrics-listen 127.0.0.1:0`` (the port it logs), its own socket
and state directory, different workloads and seeds. Debian's ``prometheus`` scrapes them every second
with a ``node`` label per target and evaluates the shipped ``deploy/prometheus/*.rules.yml`` every
second.

The figures change every cycle, so the daemons are frozen before comparing: placement is paused through
the socket API (a paused Service's ``status()`` and ``cgroups()`` keep the last cycle's state), their
reports are read, and the recorded series are read once Prometheus evaluated them after a scrape that
saw every daemon paused. Then bytes and heat-weighted hit ratios must agree to float precision, and the
migration counters (per node and per cgroup) exactly; the namespace migration rates are checked against
the per-cgroup rates Prometheus holds, joined here by the pods given to each daemon.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
RULE_FILES = sorted((ROOT / "deploy" / "prometheus").glob("*.rules.yml"))
CYCLE_S = 0.25
BATCH = "/batch.slice/nightly-etl.service"
CACHE = "/system.slice/redis-server.service"
DB = "/system.slice/postgresql@16-main.service"
APP = "/system.slice/app.service"
# node label -> (workload, seed, {cgroup: (namespace, pod, qos)}); a cgroup left out has no pod
NODES: dict[str, tuple[str, int, dict[str, tuple[str, str, str]]]] = {
    "node-a": ("multi-cgroup", 1, {CACHE: ("shop", "cart-0", "Burstable"),
                                   DB: ("shop", "db-0", "Guaranteed")}),
    "node-b": ("multi-cgroup", 2, {BATCH: ("batch", "etl-0", "BestEffort"),
                                   CACHE: ("shop", "cart-1", "Burstable")}),
    "node-c": ("zipf-shift", 3, {APP: ("web", "front-0", "Burstable")}),
}  # fmt: skip


# ---- helpers ------------------------------------------------------------------------------------------
def _prometheus() -> str:
    path = shutil.which("prometheus")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("the prometheus binary is missing in CI (scripts/test installs Debian's prometheus)")
        pytest.skip("prometheus is not installed (apt-get install prometheus)")
    return path


_LISTENING = re.compile(r"^tierctl daemon: metrics on http://(\S+)/metrics$", re.M)


def _listening(log: Path) -> str | None:
    """The address a daemon started with --metrics-listen 127.0.0.1:0 logged, once it did."""
    m = _LISTENING.search(log.read_text())
    return m.group(1) if m else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.read().decode()


def _wait(what: str, check: Callable[[], Any], timeout: float, procs: list[subprocess.Popen]) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        for p in procs:
            if p.poll() is not None:
                raise AssertionError(
                    f"{' '.join(map(str, p.args[:4]))}... exited {p.returncode} while {what}"
                )
        try:
            got = check()
        except (OSError, ValueError, KeyError) as e:
            got = e
        if got and not isinstance(got, Exception):
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out: {what} (last: {got!r})")
        time.sleep(0.2)


class Prom:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def query(self, q: str, at: float | None = None) -> list[dict[str, Any]]:
        params = {"query": q} | ({} if at is None else {"time": repr(at)})
        code, body = _get(f"{self.base}/api/v1/query?" + urllib.parse.urlencode(params))
        doc = json.loads(body)
        assert code == 200 and doc["status"] == "success", (q, body)
        return doc["data"]["result"]

    def by(self, q: str, label: str, at: float | None = None) -> dict[str, float]:
        return {r["metric"].get(label, ""): float(r["value"][1]) for r in self.query(q, at)}


def _metric_values(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    from prometheus_client.parser import text_string_to_metric_families

    return [
        (s.labels, s.value)
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
        if s.name == name
    ]


def _close(a: float, b: float) -> bool:
    # The daemons' heat is float32 summed in float64 on both sides (the metric and the rules add the
    # same float64 values in another order): agreement to 1e-9 relative; the API's est_fast_hit_ratio
    # sums float32 and is compared to 1e-5 below.
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)
        if p.stdout is not None:
            p.stdout.close()


# ---- the test -----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_prometheus_recording_rules_give_the_fleet_figures_the_daemons_report(tmp_path: Path) -> None:
    from tierctl.api.client import ApiClient

    prometheus = _prometheus()
    daemons: dict[str, subprocess.Popen] = {}
    procs: list[subprocess.Popen] = []
    logs: dict[str, Path] = {}
    files = contextlib.ExitStack()  # the children's log files, closed in the end
    try:
        for node, (workload, seed, pods) in NODES.items():
            d = tmp_path / node
            d.mkdir()
            cmd = [sys.executable, "-m", "tierctl", "daemon", "--sim", workload, "--seed", str(seed),
                   "--state-dir", str(d / "state"), "--socket", str(d / "api.sock"),
                   "--metrics-listen", "127.0.0.1:0", "--cycle-seconds", str(CYCLE_S)]  # fmt: skip
            cmd += [f"--sim-pod={path}={'/'.join(p)}" for path, p in pods.items()]
            logs[node] = d / "stderr"
            err = files.enter_context(logs[node].open("w"))
            p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)
            daemons[node] = p
            procs.append(p)
        # each daemon logs its metrics address once it serves
        addrs = {n: _wait(f"{n} listening", lambda n=n: _listening(logs[n]), 30, procs) for n in NODES}
        sockets = {node: tmp_path / node / "api.sock" for node in NODES}
        # the health endpoints the Kubernetes probes use: ready after the first cycle, live while cycling
        for node, addr in addrs.items():
            _wait(f"{node} ready", lambda a=addr: _get(f"http://{a}/readyz")[0] == 200, 20, procs)
            code, body = _get(f"http://{addr}/healthz")
            assert code == 200 and body.startswith("ok: cycle"), body

        port = _free_port()
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(f) for f in RULE_FILES],
            "scrape_configs": [
                {
                    "job_name": "tierctl",
                    "static_configs": [
                        {"targets": [addr], "labels": {"node": node}} for node, addr in addrs.items()
                    ],
                }
            ],
        }
        (tmp_path / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
        prom_log = tmp_path / "prometheus.log"
        procs.append(
            subprocess.Popen(
                [prometheus, f"--config.file={tmp_path / 'prometheus.yml'}",
                 f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}",
                 "--log.level=warn"],
                stdout=subprocess.DEVNULL, stderr=files.enter_context(prom_log.open("w")),
            )
        )  # fmt: skip
        prom = Prom(port)
        _wait("every target up", lambda: prom.by("up", "node") == dict.fromkeys(NODES, 1.0), 30, procs)
        # running: the rate rules have a series for every node (two scrapes each) and the fleet migrates
        # (zipf-shift keeps moving pages; multi-cgroup may have placed its hot sets before the first scrape)
        _wait(
            "migration rates recorded for every node",
            lambda: (
                prom.by("node:tierctl_mover_promoted_pages:rate5m", "node").keys() == NODES.keys()
                and prom.by("fleet:tierctl_mover_promoted_pages:rate5m", "")[""] > 0
                # node-c's one cgroup is pod web/front-0: its moves count for namespace web
                and prom.by("namespace:tierctl_cgroup_promoted_pages:rate5m", "namespace").get("web", 0) > 0
            ),
            30,
            procs,
        )

        # freeze: pause placement on every daemon, then read what each reports
        status, rows, texts = {}, {}, {}
        for node in NODES:
            with ApiClient(sockets[node]) as c:
                c.call("pause")
        for node in NODES:
            with ApiClient(sockets[node]) as c:
                status[node], rows[node] = c.call("status"), c.call("cgroups")
            assert status[node]["state"] == "paused"
            texts[node] = _get(f"http://{addrs[node]}/metrics")[1]
        # a scrape after the pause on every node, then a rule evaluation after that scrape (+1 interval)
        seen = _wait(
            "a scrape of every paused daemon",
            lambda: (
                (r := prom.query('timestamp(tierctl_controller_state{state="paused"} == 1)'))
                and len(r) == len(NODES)
                and max(float(x["value"][1]) for x in r)
            ),
            15,
            procs,
        )
        _wait(
            "rules evaluated after it",
            lambda: (
                (r := prom.query("timestamp(fleet:tierctl_fast_hit_ratio:heat_weighted)"))
                and float(r[0]["value"][1]) > seen + 1.0
            ),
            15,
            procs,
        )
        for node in NODES:  # still frozen: the same report as before the wait
            with ApiClient(sockets[node]) as c:
                assert c.call("cgroups") == rows[node] and c.call("status")["cycle"] == status[node]["cycle"]

        # ---- what the daemons report ----
        tier_bytes: dict[tuple[str, str], float] = defaultdict(float)  # (node, tier)
        ns_bytes: dict[tuple[str, str], float] = defaultdict(float)  # (namespace, tier)
        heat: dict[tuple[str, str], tuple[float, float]] = {}  # (node, cgroup) -> (fast, slow)
        for node, (_, _, pods) in NODES.items():
            assert {r["path"] for r in rows[node]} >= pods.keys()
            h = defaultdict(dict)
            for labels, v in _metric_values(texts[node], "tierctl_cgroup_tier_heat"):
                h[labels["cgroup"]][labels["tier"]] = v
            for r in rows[node]:
                fast, slow = h[r["path"]]["fast"], h[r["path"]]["slow"]
                heat[(node, r["path"])] = (fast, slow)
                # the heat weights are those of the daemon's own estimate of each cgroup's hit ratio
                assert math.isclose(fast / (fast + slow), r["est_fast_hit_ratio"], rel_tol=1e-5), r
                tier_bytes[(node, "fast")] += r["fast_bytes"]
                tier_bytes[(node, "slow")] += r["slow_bytes"]
                if r["path"] in pods:
                    ns = pods[r["path"]][0]
                    ns_bytes[(ns, "fast")] += r["fast_bytes"]
                    ns_bytes[(ns, "slow")] += r["slow_bytes"]

        def ratio(keys: list[tuple[str, str]]) -> float:
            return sum(heat[k][0] for k in keys) / sum(sum(heat[k]) for k in keys)

        want_node_ratio = {n: ratio([k for k in heat if k[0] == n]) for n in NODES}
        namespaces = {p[0] for _, _, pods in NODES.values() for p in pods.values()}
        want_ns_ratio = {
            ns: ratio([(n, c) for n, (_, _, pods) in NODES.items() for c, p in pods.items() if p[0] == ns])
            for ns in namespaces
        }

        # ---- what Prometheus recorded ----
        got = prom.query("node_tier:tierctl_memory_bytes:sum")
        assert {(r["metric"]["node"], r["metric"]["tier"]): float(r["value"][1]) for r in got} == tier_bytes
        got = prom.by('fleet_tier:tierctl_memory_bytes:sum{tier="fast"}', "tier")
        assert got == {"fast": sum(v for (_, t), v in tier_bytes.items() if t == "fast")}
        got = prom.query("namespace_tier:tierctl_memory_bytes:sum")
        assert {
            (r["metric"]["namespace"], r["metric"]["tier"]): float(r["value"][1]) for r in got
        } == ns_bytes

        got_ratio = prom.by("node:tierctl_fast_hit_ratio:heat_weighted", "node")
        assert got_ratio.keys() == want_node_ratio.keys()
        assert all(_close(got_ratio[n], want_node_ratio[n]) for n in NODES), (got_ratio, want_node_ratio)
        got_ns = prom.by("namespace:tierctl_fast_hit_ratio:heat_weighted", "namespace")
        assert got_ns.keys() == want_ns_ratio.keys()
        assert all(_close(got_ns[n], want_ns_ratio[n]) for n in namespaces), (got_ns, want_ns_ratio)
        fleet = prom.by("fleet:tierctl_fast_hit_ratio:heat_weighted", "")[""]
        assert _close(fleet, ratio(list(heat)))
        # a ratio of sums, not the mean of the cgroups' ratios (which differ here)
        mean = sum(r["est_fast_hit_ratio"] for rs in rows.values() for r in rs) / len(heat)
        assert abs(fleet - mean) > 1e-3

        # migrations: the counters Prometheus holds are the daemons' own totals; the fleet rate sums nodes
        for moved in ("promoted", "demoted"):
            got = prom.by(f"tierctl_mover_{moved}_pages_total", "node")
            assert got == {n: float(status[n]["moved"][moved]) for n in NODES}
        nodes_rate = prom.by("node:tierctl_mover_promoted_pages:rate5m", "node")
        fleet_rate = prom.by("fleet:tierctl_mover_promoted_pages:rate5m", "")[""]
        assert math.isclose(fleet_rate, sum(nodes_rate.values()), rel_tol=1e-9) and fleet_rate > 0
        # a node's rate is positive exactly when Prometheus saw its counter move (the run is < 5 min)
        changed = prom.by("changes(tierctl_mover_promoted_pages_total[5m])", "node")
        assert {n: v > 0 for n, v in nodes_rate.items()} == {n: v > 0 for n, v in changed.items()}
        # per cgroup: the counters Prometheus holds are the rows' own, and a node's sum to its total
        for moved in ("promoted", "demoted"):
            got_cg = {
                (r["metric"]["node"], r["metric"]["cgroup"]): float(r["value"][1])
                for r in prom.query(f"tierctl_cgroup_{moved}_pages_total")
            }
            assert got_cg == {(n, r["path"]): float(r[f"{moved}_pages"]) for n in NODES for r in rows[n]}
            for n in NODES:
                assert sum(v for (node, _), v in got_cg.items() if node == n) == status[n]["moved"][moved]
        # by namespace: the rule's join (on job, instance, cgroup) gives the per-cgroup rates Prometheus
        # holds, summed here over the pods each daemon was given, at the same evaluation time. Not to
        # float precision: a scrape started just before an evaluation may be stored just after it, and
        # one more sample of a frozen counter changes rate()'s extrapolation by ~1/(samples in range)
        for moved in ("promoted", "demoted"):
            rule = f"namespace:tierctl_cgroup_{moved}_pages:rate5m"
            at = float(prom.query(f"timestamp({rule})")[0]["value"][1])
            got_ns = prom.by(rule, "namespace", at=at)
            want_ns: dict[str, float] = dict.fromkeys(namespaces, 0.0)
            for r in prom.query(f"rate(tierctl_cgroup_{moved}_pages_total[5m])", at=at):
                pod = NODES[r["metric"]["node"]][2].get(r["metric"]["cgroup"])
                if pod is not None:
                    want_ns[pod[0]] += float(r["value"][1])
            assert got_ns.keys() == want_ns.keys(), (moved, got_ns, want_ns)
            assert all(math.isclose(got_ns[k], v, rel_tol=0.1, abs_tol=1e-9) for k, v in want_ns.items()), (
                moved,
                got_ns,
                want_ns,
            )
        assert prom.by("namespace:tierctl_cgroup_promoted_pages:rate5m", "namespace")["web"] > 0
        # the target label `node` wins over the metric's NUMA `node` label, kept as `exported_node`
        numa = prom.query("tierctl_cgroup_node_memory_bytes")
        assert numa and all(r["metric"]["node"] in NODES and "exported_node" in r["metric"] for r in numa)
        # no alert fires on healthy simulated daemons
        assert prom.query('ALERTS{alertstate="firing"}') == []
    except BaseException:
        for node, log in logs.items():
            print(f"---- {node} stderr\n{log.read_text()}", file=sys.stderr)
        if (tmp_path / "prometheus.log").exists():
            print(f"---- prometheus\n{(tmp_path / 'prometheus.log').read_text()}", file=sys.stderr)
        raise
    finally:
        _stop(procs)
        files.close()
