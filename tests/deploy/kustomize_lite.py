"""A small stand-in for ``kustomize build``, supporting exactly what deploy/k8s uses, so CI can build the
overlays without a kustomize binary (none is packaged for Debian bookworm, whose kubernetes-client 1.20 embeds
kustomize 2.0.3, too old for ``labels``, ``patches`` and components).

Supported, with kustomize v5's semantics:

- ``resources``: YAML files (one or more documents) and directories holding a kustomization;
- ``components``: directories holding a ``kind: Component`` kustomization (resources, labels, patches);
- ``namespace``: sets ``metadata.namespace`` of every namespaced object built so far;
- ``labels``: ``pairs`` added to ``metadata.labels`` only (``includeSelectors``/``includeTemplates`` false);
- ``configMapGenerator``: ``files`` (key = file name) with ``options.disableNameSuffixHash: true``;
- ``patches``: ``path`` to a strategic-merge patch, applied to the object of the same kind and name (merge
  keys of the core types: containers and env by name, volumeMounts by mountPath, ...; new items go before
  the existing ones, as kustomize puts them; other lists are replaced; a null value deletes the key);
- output in kustomize's default ("legacy") order.

Anything else in a kustomization raises :class:`Unsupported`, so this can never quietly build something other
than what kustomize would. tests/deploy/test_manifests.py compares its output with ``kubectl kustomize``
wherever a kubectl with kustomize v5 is installed.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

Obj = dict[str, Any]

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
# kustomize's legacy sort order (api/resid/gvk.go: orderFirst / orderLast)
ORDER_FIRST = (
    *("Namespace", "ResourceQuota", "StorageClass", "CustomResourceDefinition", "ServiceAccount"),
    *("PodSecurityPolicy", "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding", "ConfigMap", "Secret"),
    *("Endpoints", "Service", "LimitRange", "PriorityClass", "PersistentVolume", "PersistentVolumeClaim"),
    *("Deployment", "StatefulSet", "CronJob", "PodDisruptionBudget"),
)
ORDER_LAST = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
CLUSTER_SCOPED = frozenset(
    {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "PersistentVolume"}
    | {
        "PriorityClass",
        "StorageClass",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
        "Node",
    }
)
# strategic-merge keys of the list fields deploy/k8s patches (k8s.io/api types' patchMergeKey)
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "imagePullSecrets": "name",
}
KNOWN_KEYS = {
    "Kustomization": {"apiVersion", "kind", "resources", "components", "namespace", "labels"}
    | {"configMapGenerator", "patches"},
    "Component": {"apiVersion", "kind", "resources", "labels", "patches"},
}


class Unsupported(Exception):
    """The kustomization uses something this stand-in does not implement."""


def build(directory: Path | str) -> list[Obj]:
    """The objects ``kustomize build DIRECTORY`` prints, in its order."""
    return sorted(_build(Path(directory), "Kustomization"), key=_order)


def build_yaml(directory: Path | str) -> str:
    return yaml.safe_dump_all(build(directory), sort_keys=True)


def load_kustomization(directory: Path, kind: str) -> Obj:
    for name in KUSTOMIZATION_FILES:
        if (directory / name).is_file():
            k = yaml.safe_load((directory / name).read_text(encoding="utf-8")) or {}
            break
    else:
        raise FileNotFoundError(f"no kustomization in {directory}")
    if k.get("kind", "Kustomization") != kind:
        raise Unsupported(f"{directory}: expected kind {kind}, found {k.get('kind')}")
    unknown = set(k) - KNOWN_KEYS[kind]
    if unknown:
        raise Unsupported(f"{directory}: unsupported fields {sorted(unknown)}")
    return k


def _build(directory: Path, kind: str, objs: list[Obj] | None = None) -> list[Obj]:
    k = load_kustomization(directory, kind)
    out: list[Obj] = [] if objs is None else objs
    for ref in k.get("resources", []):
        path = directory / ref
        if path.is_dir():
            out.extend(_build(path, "Kustomization"))
        else:
            _inside(directory, path)
            out.extend(d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d)
    for gen in k.get("configMapGenerator", []):
        out.append(_config_map(directory, gen))
    for ref in k.get("components", []):
        _build(directory / ref, "Component", out)
    for patch in k.get("patches", []):
        _patch(directory, patch, out)
    if "namespace" in k:
        for o in out:
            if o["kind"] not in CLUSTER_SCOPED:
                o.setdefault("metadata", {})["namespace"] = k["namespace"]
    for spec in k.get("labels", []):
        if set(spec) - {"pairs"} or spec.get("includeSelectors") or spec.get("includeTemplates"):
            raise Unsupported(f"{directory}: labels supports only pairs: {spec}")
        for o in out:
            o.setdefault("metadata", {}).setdefault("labels", {}).update(spec["pairs"])
    return out


def _inside(root: Path, path: Path) -> None:
    """kustomize's load restrictor: files only from within the kustomization's directory."""
    if not path.resolve().is_relative_to(root.resolve()):
        raise Unsupported(f"{path} is outside {root} (kustomize's load restrictor refuses it)")


def _config_map(directory: Path, gen: Mapping[str, Any]) -> Obj:
    if set(gen) - {"name", "files", "options"} or gen.get("options") != {"disableNameSuffixHash": True}:
        raise Unsupported(f"configMapGenerator supports name, files and disableNameSuffixHash: {gen}")
    data: dict[str, str] = {}
    for ref in gen["files"]:
        if "=" in ref:
            raise Unsupported(f"configMapGenerator key=path is not supported: {ref}")
        path = directory / ref
        _inside(directory, path)
        data[path.name] = path.read_text(encoding="utf-8")
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": gen["name"]}, "data": data}


def _patch(directory: Path, spec: Mapping[str, Any], objs: list[Obj]) -> None:
    if set(spec) != {"path"}:
        raise Unsupported(f"patches supports only path: {spec}")
    path = directory / spec["path"]
    _inside(directory, path)
    patch = yaml.safe_load(path.read_text(encoding="utf-8"))
    meta = patch.get("metadata", {})
    hits = [
        o
        for o in objs
        if o["kind"] == patch["kind"]
        and o["metadata"]["name"] == meta.get("name")
        and ("namespace" not in meta or o["metadata"].get("namespace") == meta["namespace"])
    ]
    if len(hits) != 1:
        raise Unsupported(f"{path}: patch matches {len(hits)} objects, not 1")
    merged = strategic_merge(hits[0], patch)
    hits[0].clear()
    hits[0].update(merged)


def strategic_merge(base: Any, patch: Any, field: str = "") -> Any:
    """``patch`` merged into a copy of ``base`` (the subset of strategic merge the overlays use)."""
    if isinstance(patch, dict) and isinstance(base, dict):
        if any(k.startswith("$") for k in patch):
            raise Unsupported(f"strategic-merge directives are not supported: {sorted(patch)}")
        out = copy.deepcopy(base)
        for k, v in patch.items():
            if v is None:
                out.pop(k, None)
            else:
                out[k] = strategic_merge(out[k], v, k) if k in out else copy.deepcopy(v)
        return out
    if isinstance(patch, list) and isinstance(base, list) and field in MERGE_KEYS:
        key = MERGE_KEYS[field]
        out_list = copy.deepcopy(base)
        new: list[Any] = []
        for item in patch:
            match = next((i for i, b in enumerate(out_list) if b.get(key) == item.get(key)), None)
            if match is None:
                new.append(copy.deepcopy(item))
            else:
                out_list[match] = strategic_merge(out_list[match], item)
        return new + out_list  # kustomize (kyaml) puts the items it adds before the existing ones
    return copy.deepcopy(patch)


def _order(o: Obj) -> tuple[int, str, str, str]:
    kind = o["kind"]
    if kind in ORDER_FIRST:
        rank = ORDER_FIRST.index(kind)
    elif kind in ORDER_LAST:
        rank = len(ORDER_FIRST) + 1 + ORDER_LAST.index(kind)
    else:
        rank = len(ORDER_FIRST)
    meta = o.get("metadata", {})
    return rank, kind, meta.get("namespace", ""), meta.get("name", "")


if __name__ == "__main__":
    import sys

    sys.stdout.write(build_yaml(sys.argv[1]))
