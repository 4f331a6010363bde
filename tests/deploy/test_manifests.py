"""deploy/k8s: each overlay built into one stream (tests/deploy/kustomize_lite.py, checked against
``kubectl kustomize`` where one is installed), every object validated against the OpenAPI schemas of
Kubernetes 1.30 (kubernetes-validate, strict: unknown fields are errors), and the facts the deployment
depends on asserted one by one."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy import kustomize_lite
from tests.deploy.kustomize_lite import Unsupported, strategic_merge

kubernetes_validate = pytest.importorskip("kubernetes_validate")

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
OVERLAYS = ("systemd", "cgroupfs")
COMPONENT = K8S / "components" / "servicemonitor"
K8S_VERSION = "1.30"  # the release whose schemas the manifests must satisfy (docs/deploy.md says so too)
NODE_LABEL = ("tierctl.io/tiered-memory", "true")
DRIVER_ENV = "TIERCTL_KUBELET_CGROUP_DRIVER"
HOST_PATHS = {"/sys/fs/cgroup", "/sys/kernel/mm", "/sys/kernel/tracing", "/var/lib/tierctl"}
DOC = REPO / "docs" / "deploy.md"
# target labels the Prometheus Operator adds to every ServiceMonitor target
OPERATOR_TARGET_LABELS = {"namespace", "pod", "service", "container", "endpoint"}

Obj = dict[str, Any]


@pytest.fixture(scope="module")
def built() -> dict[str, list[Obj]]:
    return {o: kustomize_lite.build(K8S / "overlays" / o) for o in OVERLAYS}


def one(objs: list[Obj], kind: str, name: str | None = None) -> Obj:
    hits = [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(hits) == 1, f"{len(hits)} {kind} {name or ''}"
    return hits[0]


def container(objs: list[Obj]) -> Obj:
    (c,) = one(objs, "DaemonSet")["spec"]["template"]["spec"]["containers"]
    return c


def pod_spec(objs: list[Obj]) -> Obj:
    return one(objs, "DaemonSet")["spec"]["template"]["spec"]


# ------------------------------------------------------------------------------------ building
def _kubectl_kustomize() -> str | None:
    """A kubectl whose built-in kustomize is v5 or newer (Debian's kubernetes-client 1.20 has 2.0.3)."""
    exe = shutil.which("kubectl")
    if exe is None:
        return None
    p = subprocess.run([exe, "version", "--client", "-o", "json"], capture_output=True, text=True, timeout=30)
    try:
        version = json.loads(p.stdout).get("kustomizeVersion", "")
    except json.JSONDecodeError:
        return None
    m = re.match(r"v(\d+)", version)
    return exe if m and int(m.group(1)) >= 5 else None


def _kustomize(exe: str, directory: Path) -> list[Obj]:
    p = subprocess.run([exe, "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return [d for d in yaml.safe_load_all(p.stdout) if d]


@pytest.fixture
def with_component(tmp_path: Path) -> Path:
    """An operator's overlay: the systemd overlay plus the ServiceMonitor component (relative paths: kustomize
    refuses absolute ones)."""
    k = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(K8S / "overlays" / "systemd", tmp_path)],
        "components": [os.path.relpath(COMPONENT, tmp_path)],
    }
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(k))
    return tmp_path


def test_kustomize_builds_the_same_stream(built: dict[str, list[Obj]], with_component: Path) -> None:
    """kustomize_lite and kustomize agree, object for object and in order."""
    exe = _kubectl_kustomize()
    if exe is None:
        pytest.skip(
            "no kubectl with kustomize >= v5 here; the overlays are built by tests/deploy/kustomize_lite.py"
        )
    for o in OVERLAYS:
        assert _kustomize(exe, K8S / "overlays" / o) == built[o], o
    assert _kustomize(exe, with_component) == kustomize_lite.build(with_component)


def test_profiles_are_the_shipped_ones() -> None:
    """deploy/k8s/base/profiles holds copies (kustomize loads no file outside the kustomization): the same
    files, byte for byte, as tierctl/data/profiles."""
    shipped = {p.name: p.read_bytes() for p in (REPO / "tierctl" / "data" / "profiles").glob("*.toml")}
    deployed = {p.name: p.read_bytes() for p in (K8S / "base" / "profiles").glob("*.toml")}
    assert deployed == shipped


def test_kustomize_lite_refuses_what_it_does_not_implement(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: []\ncommonLabels: {a: b}\n")
    with pytest.raises(Unsupported, match="commonLabels"):
        kustomize_lite.build(tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        "configMapGenerator:\n- name: x\n  files: [../../etc/passwd]\n"
    )
    with pytest.raises(Unsupported):
        kustomize_lite.build(tmp_path)


def test_strategic_merge_by_key() -> None:
    base = {"containers": [{"name": "a", "env": [{"name": "X", "value": "1"}], "args": ["--a"]}]}
    patch = {"containers": [{"name": "a", "env": [{"name": "X", "value": "2"}, {"name": "Y", "value": "3"}]}]}
    merged = strategic_merge(base, patch)
    assert merged["containers"][0]["env"] == [{"name": "Y", "value": "3"}, {"name": "X", "value": "2"}]
    assert merged["containers"][0]["args"] == ["--a"] and base["containers"][0]["env"][0]["value"] == "1"
    assert strategic_merge({"a": 1, "b": 2}, {"a": None}) == {"b": 2}


# ---------------------------------------------------------------------------------- validation
def test_every_object_validates_against_kubernetes_1_30(built: dict[str, list[Obj]]) -> None:
    for o, objs in built.items():
        kinds = [d["kind"] for d in objs]
        expected = [
            "Namespace",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "Service",
        ]
        assert kinds == [*expected, "DaemonSet"], (o, kinds)
        for d in objs:
            assert kubernetes_validate.validate(d, K8S_VERSION, strict=True) == K8S_VERSION


def test_validation_can_fail(built: dict[str, list[Obj]]) -> None:
    """The schemas catch a misspelt field and a wrong type (so the test above can fail)."""
    ds = one(built["systemd"], "DaemonSet")
    typo = copy.deepcopy(ds)
    typo["spec"]["template"]["spec"]["hostPid"] = True
    wrong = copy.deepcopy(ds)
    wrong["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "9464"
    for bad in (typo, wrong):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(bad, K8S_VERSION, strict=True)


def test_servicemonitor_schema_is_not_in_kubernetes_validate(with_component: Path) -> None:
    sm = one(kustomize_lite.build(with_component), "ServiceMonitor")
    try:
        kubernetes_validate.validate(sm, K8S_VERSION, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        pytest.skip("monitoring.coreos.com/v1 is a CRD of the Prometheus Operator, not in the core schemas")
    pytest.fail("kubernetes-validate now knows ServiceMonitor: validate it here instead of skipping")


def test_servicemonitor_selects_the_metrics_port(with_component: Path) -> None:
    """A hand-written check of the ServiceMonitor's structure (its CRD schema is not available here)."""
    objs = kustomize_lite.build(with_component)
    sm, svc = one(objs, "ServiceMonitor"), one(objs, "Service")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(sm) == {"apiVersion", "kind", "metadata", "spec"}
    spec = sm["spec"]
    assert set(spec) <= {"selector", "namespaceSelector", "endpoints", "jobLabel", "targetLabels"}
    labels = svc["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    assert svc["metadata"]["namespace"] in spec["namespaceSelector"]["matchNames"]
    (ep,) = spec["endpoints"]
    assert ep["port"] in {p["name"] for p in svc["spec"]["ports"]} and ep["path"] == "/metrics"
    for key in ("interval", "scrapeTimeout"):
        assert re.fullmatch(r"\d+(ms|s|m|h)", ep[key]), ep[key]
    dropped: set[str] = set()
    for r in ep["relabelings"]:
        assert set(r) <= {"sourceLabels", "targetLabel", "action", "regex", "replacement", "separator"}, r
        assert r.get("action", "replace") in {"replace", "labeldrop", "labelkeep", "keep", "drop"}, r
        if r.get("action") == "labeldrop":
            dropped |= {x for x in OPERATOR_TARGET_LABELS if re.fullmatch(r["regex"], x)}
    # the fleet rules (deploy/prometheus) group by the Kubernetes node as "node" and take "namespace" from
    # tierctl_cgroup_info: the operator's own namespace/pod/... target labels must not shadow series labels
    assert {"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node"} in ep["relabelings"]
    assert dropped == OPERATOR_TARGET_LABELS
    # the Service itself: headless, one endpoint per daemon, selecting the DaemonSet's pods by name
    pod_labels = one(objs, "DaemonSet")["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["clusterIP"] == "None" and svc["spec"]["selector"].items() <= pod_labels.items()


# ------------------------------------------------------------------------------------- facts
def documented_capabilities() -> list[str]:
    """The capabilities in docs/deploy.md's table (rows "| `CAP_X` | ... |"), in order."""
    section = DOC.read_text(encoding="utf-8").split("### Capabilities", 1)[1].split("\n### ", 1)[0]
    return re.findall(r"^\| `CAP_(\w+)` \|", section, re.MULTILINE)


def test_capabilities_are_exactly_the_documented_ones(built: dict[str, list[Obj]]) -> None:
    documented = documented_capabilities()
    assert documented, "no capability table in docs/deploy.md"
    for objs in built.values():
        sc = container(objs)["securityContext"]
        assert sc["capabilities"] == {"drop": ["ALL"], "add": documented}
        assert sc["privileged"] is False and sc["runAsUser"] == 0
        assert sc["seccompProfile"] == {"type": "Unconfined"} and sc["appArmorProfile"] == {
            "type": "Unconfined"
        }
        # the API server rejects allowPrivilegeEscalation: false together with CAP_SYS_ADMIN
        assert sc.get("allowPrivilegeEscalation") is not False
        assert "securityContext" not in pod_spec(objs) or "sysctls" not in pod_spec(objs)["securityContext"]


def test_host_access(built: dict[str, list[Obj]]) -> None:
    for objs in built.values():
        spec = pod_spec(objs)
        assert spec["hostPID"] is True
        assert not spec.get("hostNetwork") and not spec.get("hostIPC")
        host = {v["name"]: v["hostPath"]["path"] for v in spec["volumes"] if "hostPath" in v}
        assert set(host.values()) == HOST_PATHS
        mounts = {m["name"]: m for m in container(objs)["volumeMounts"]}
        for name, path in host.items():  # each host path appears at the same place in the container
            assert mounts[name]["mountPath"] == path
        assert mounts["tracefs"].get("readOnly") is True
        assert container(objs)["command"] == [
            "nsenter",
            "--cgroup=/proc/1/ns/cgroup",
            "--",
            "tierctl",
            "daemon",
        ]


def test_daemon_arguments_parse_and_point_at_the_mounts(built: dict[str, list[Obj]]) -> None:
    """The DaemonSet's args are accepted by tierctl's own parser; --profiles is the ConfigMap's mount point,
    --state-dir the host's state directory, --metrics-listen the named port."""
    from tierctl.cli import build_parser

    for objs in built.values():
        c = container(objs)
        assert c["command"][-2:] == ["tierctl", "daemon"]
        args = build_parser().parse_args(["daemon", *c["args"]])
        mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
        profiles = mounts[str(args.profiles)]
        assert "subPath" not in profiles and "subPathExpr" not in profiles and profiles["readOnly"] is True
        (vol,) = [v for v in pod_spec(objs)["volumes"] if v["name"] == profiles["name"]]
        cm = one(objs, "ConfigMap", vol["configMap"]["name"])
        shipped = {p.name for p in (REPO / "tierctl" / "data" / "profiles").glob("*.toml")}
        assert set(cm["data"]) == shipped and "items" not in vol["configMap"]
        assert mounts[str(args.state_dir)]["name"] == "state"
        (port,) = c["ports"]
        assert port == {"name": "metrics", "containerPort": 9464, "protocol": "TCP"}
        assert args.metrics_listen == f"0.0.0.0:{port['containerPort']}"
        assert args.hint_faults == "off"


def test_probes_use_the_daemons_health_on_the_named_port(built: dict[str, list[Obj]]) -> None:
    for objs in built.values():
        c = container(objs)
        assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
        assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
        assert c["startupProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}


def qos_class(spec: Obj) -> str:
    """The pod's QoS class, by the kubelet's rules (pkg/apis/core/helper/qos): Guaranteed when every container
    has cpu and memory limits and its requests equal them (requests default to limits)."""
    containers = spec.get("initContainers", []) + spec["containers"]
    resources = [c.get("resources", {}) for c in containers]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    for r in resources:
        limits, requests = r.get("limits", {}), {**r.get("limits", {}), **r.get("requests", {})}
        if {"cpu", "memory"} - set(limits) or any(requests[k] != limits[k] for k in ("cpu", "memory")):
            return "Burstable"
    return "Guaranteed"


def test_qos_class_rules() -> None:
    guaranteed = {"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}
    burstable = {"containers": [{"resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}]}
    assert qos_class(guaranteed) == "Guaranteed" and qos_class(burstable) == "Burstable"
    assert qos_class({"containers": [{}]}) == "BestEffort"


def _quantity(q: str) -> float:
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "": 1}
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(m|Ki|Mi|Gi|)", q)
    assert m, q
    return float(m.group(1)) * units[m.group(2)]


def test_guaranteed_critical_and_sized_from_the_measurement(built: dict[str, list[Obj]]) -> None:
    """Guaranteed QoS (the kubelet's oom_score_adj -997), system-node-critical, on labelled nodes only,
    with memory for the measured peak RSS plus the documented per-page growth, and CPU above the measured
    bursts."""
    cost = json.loads((K8S / "sizing" / "daemon_cost.json").read_text())
    for objs in built.values():
        spec = pod_spec(objs)
        assert qos_class(spec) == "Guaranteed"
        assert spec["priorityClassName"] == "system-node-critical"
        assert spec["nodeSelector"] == dict([NODE_LABEL])
        res = container(objs)["resources"]
        assert res["requests"] == res["limits"]
        memory, cpu = _quantity(res["limits"]["memory"]), _quantity(res["limits"]["cpu"])
        assert memory >= 1.5 * cost["rss_bytes_peak"], (memory, cost["rss_bytes_peak"])
        assert cpu >= 2 * cost["cpu_share_max_interval"], (cpu, cost["cpu_share_max_interval"])


def test_node_name_and_read_only_pod_access(built: dict[str, list[Obj]]) -> None:
    for objs in built.values():
        env = {e["name"]: e for e in container(objs)["env"]}
        assert env["TIERCTL_NODE_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
        role = one(objs, "ClusterRole")
        assert role["rules"] == [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}
        ]
        binding, sa = one(objs, "ClusterRoleBinding"), one(objs, "ServiceAccount")
        assert binding["roleRef"]["name"] == role["metadata"]["name"]
        assert binding["subjects"] == [
            {
                "kind": "ServiceAccount",
                "name": sa["metadata"]["name"],
                "namespace": sa["metadata"]["namespace"],
            }
        ]
        assert pod_spec(objs)["serviceAccountName"] == sa["metadata"]["name"]
        namespaced = [o for o in objs if o["kind"] not in kustomize_lite.CLUSTER_SCOPED]
        assert {o["metadata"]["namespace"] for o in namespaced} == {
            one(objs, "Namespace")["metadata"]["name"]
        }


def test_overlays_differ_exactly_in_the_cgroup_driver(built: dict[str, list[Obj]]) -> None:
    for o in OVERLAYS:
        env = {e["name"]: e.get("value") for e in container(built[o])["env"]}
        assert env[DRIVER_ENV] == o
    swapped = copy.deepcopy(built["systemd"])
    for e in container(swapped)["env"]:
        if e["name"] == DRIVER_ENV:
            e["value"] = "cgroupfs"
    assert swapped == built["cgroupfs"]
    base = kustomize_lite.build(K8S / "base")
    assert DRIVER_ENV not in {e["name"] for e in container(base)["env"]}
