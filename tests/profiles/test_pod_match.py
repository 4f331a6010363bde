"""Profiles that match pods: ``namespace`` (glob), ``pod_label`` (all must match, globs on values) and
``qos``; never a cgroup that is not a pod's; every problem with file, line and key; ``tierctl profile
match`` with the pod flags, the pod read from a kubelet cgroup path."""

from __future__ import annotations

import argparse
import json
import textwrap
from pathlib import Path

import pytest

from tierctl.cli import profile_cmd
from tierctl.profiles import Pod, Workload, check_profiles, load_profiles
from tierctl.profiles.loader import key_lines

CATCH_ALL = 'name = "default"\npriority = -100\n'
UID = "8f3c2a1e-5b7d-4c9e-a0f1-2d3e4f5a6b7c"
POD_PATH = f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID.replace('-', '_')}.slice"
SHOP = Pod(UID, "burstable", "c" * 64, "shop-prod", "cart-7d9f", (("app", "redis"), ("tier", "cache")))


def write(d: Path, name: str, text: str) -> Path:
    path = d / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def problems_of(tmp_path: Path, text: str) -> list[str]:
    write(tmp_path, "zz-default.toml", CATCH_ALL)
    path = write(tmp_path, "p.toml", text)
    return [str(p).replace(f"{path.parent}/", "") for p in check_profiles([tmp_path])[1]]


@pytest.fixture()
def profiles(tmp_path: Path) -> Path:
    write(tmp_path, "zz-default.toml", CATCH_ALL)
    write(
        tmp_path,
        "redis.toml",
        """
        priority = 50
        [[match]]
        namespace = "shop-*"
        pod_label = { app = "redis", tier = "cache*" }
        """,
    )
    write(
        tmp_path,
        "guaranteed.toml",
        """
        priority = 40
        [[match]]
        qos = "guaranteed"
        [[match]]
        cgroup = "/system.slice/postgres*"
        """,
    )
    write(
        tmp_path,
        "labelled.toml",
        """
        priority = 30
        [[match]]
        [match.pod_label]
        "app.kubernetes.io/name" = "*"
        """,
    )
    return tmp_path


def test_namespace_and_labels_all_must_match(profiles: Path) -> None:
    ps = load_profiles([profiles])
    got = ps.match(Workload(POD_PATH, pod=SHOP))
    assert got is not None and got.profile.name == "redis"
    assert got.reasons == (
        "namespace 'shop-prod' matches 'shop-*'",
        "pod label app='redis' matches 'redis'",
        "pod label tier='cache' matches 'cache*'",
    )
    for other in (
        Pod(UID, "burstable", None, "dev", "x", SHOP.labels),  # namespace
        Pod(UID, "burstable", None, "shop-prod", "x", (("app", "redis"),)),  # a label missing
        Pod(UID, "burstable", None, "shop-prod", "x", (("app", "memcached"), ("tier", "cache"))),
    ):
        res = ps.match(Workload(POD_PATH, pod=other))
        assert res is not None and res.profile.name == "default"


def test_qos_and_a_label_glob_meaning_present(profiles: Path) -> None:
    ps = load_profiles([profiles])
    g = ps.match(Workload(POD_PATH, pod=Pod(UID, "guaranteed")))
    assert (
        g is not None
        and g.profile.name == "guaranteed"
        and g.reasons == ("qos 'guaranteed' is 'guaranteed'",)
    )
    named = Pod(UID, "besteffort", None, "ns", "p", (("app.kubernetes.io/name", "web"),))
    res = ps.match(Workload(POD_PATH, pod=named))
    assert res is not None and res.profile.name == "labelled"
    assert res.rule is not None and res.rule.pod_label == (("app.kubernetes.io/name", "*"),)


def test_pod_rules_never_match_a_cgroup_that_is_not_a_pods(profiles: Path) -> None:
    ps = load_profiles([profiles])
    res = ps.match(Workload("/system.slice/redis.service", comm="redis-server"))
    assert res is not None and res.profile.name == "default"
    pg = ps.match(Workload("/system.slice/postgresql.service"))  # its cgroup rule is an OR alternative
    assert pg is not None and pg.profile.name == "guaranteed"


def test_without_the_api_only_qos_is_known(profiles: Path) -> None:
    """A pod known from its cgroup path alone: namespace and labels unknown, so rules on them fail."""
    ps = load_profiles([profiles])
    bare = Pod(UID, "burstable", "c" * 64)
    res = ps.match(Workload(POD_PATH, pod=bare))
    assert res is not None and res.profile.name == "default"


def test_pod_json_is_the_cgroup_rows_contract() -> None:
    assert SHOP.to_json() == {
        "namespace": "shop-prod",
        "name": "cart-7d9f",
        "uid": UID,
        "qos": "burstable",
        "container": "c" * 64,
    }
    assert SHOP.label("tier") == "cache" and SHOP.label("nope") is None and Pod(UID).label("app") is None


def test_rule_json_and_description(profiles: Path) -> None:
    rule = load_profiles([profiles]).by_name["redis"].match[0]
    assert rule.to_json() == {
        "index": 0,
        "line": 2,
        "namespace": "shop-*",
        "pod_label": {"app": "redis", "tier": "cache*"},
    }
    assert rule.describe() == "namespace='shop-*' and pod_label.app='redis' and pod_label.tier='cache*'"


def test_problems_name_file_line_and_key(tmp_path: Path) -> None:
    text = """
    [[match]]
    namespace = "Shop"
    qos = "BestEffort"
    [[match]]
    pod_label = { "-bad" = "x", app = 3, tier = "a b" }
    [[match]]
    pod_label = {}
    [[match]]
    namespace = ""
    pod_label = "app=redis"
    [[match]]
    qos = 1
    """
    assert problems_of(tmp_path, text) == [
        "p.toml:2: match[0].namespace: not a namespace or a glob of one: 'Shop' (at most 63 lowercase "
        "letters, digits and '-'; glob characters *?[]! allowed)",
        "p.toml:3: match[0].qos: must be one of 'guaranteed', 'burstable', 'besteffort', got 'BestEffort' "
        "(did you mean 'besteffort'?)",
        "p.toml:5: match[1].pod_label.-bad: not a Kubernetes label key: '-bad' (an optional DNS prefix and "
        "'/', then at most 63 letters, digits, '-', '_' or '.', beginning and ending with a letter or digit)",
        "p.toml:5: match[1].pod_label.app: expected a string (the label's value, or a glob of it), "
        "got integer 3",
        "p.toml:5: match[1].pod_label.tier: not a label value or a glob of one: 'a b' (at most 63 letters, "
        "digits, '-', '_' or '.'; glob characters *?[]! allowed)",
        "p.toml:7: match[2].pod_label: an empty pod_label table would match every pod; "
        "give at least one label",
        "p.toml:9: match[3].namespace: must not be empty",
        'p.toml:10: match[3].pod_label: expected a table of label = value (pod_label = { app = "redis" }), '
        "got string 'app=redis'",
        "p.toml:12: match[4].qos: expected one of 'guaranteed', 'burstable', 'besteffort', got integer 1",
    ]


def test_a_label_table_below_match_gets_its_own_line(tmp_path: Path) -> None:
    text = '[[match]]\nqos = "burstable"\n[[match]]\n[match.pod_label]\napp = "x y"\n'
    assert key_lines(text)[("match", 1, "pod_label", "app")] == 5
    assert problems_of(tmp_path, text) == [
        "p.toml:5: match[1].pod_label.app: not a label value or a glob of one: 'x y' (at most 63 letters, "
        "digits, '-', '_' or '.'; glob characters *?[]! allowed)"
    ]


def test_label_keys_with_a_prefix_and_long_names(tmp_path: Path) -> None:
    long = "a" * 64
    text = f'[[match]]\npod_label = {{ "example.com/app" = "x", "Ex.com/app" = "x", {long} = "x" }}\n'
    out = problems_of(tmp_path, text)
    assert [p.split(": not a")[0] for p in out] == [
        "p.toml:2: match[0].pod_label.Ex.com/app",
        f"p.toml:2: match[0].pod_label.{long}",
    ]


def _match_args(profiles: Path, *argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    profile_cmd.register(sub)
    return parser.parse_args(["profile", "match", "--profiles", str(profiles), *argv])


def test_cli_match_with_pod_flags(profiles: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cg = f"{POD_PATH}/cri-containerd-{'c' * 64}.scope"
    args = _match_args(profiles, "--cgroup", cg, "--namespace", "shop-a", "--pod-label", "app=redis")
    args.func(args)
    out = capsys.readouterr().out
    assert "profile 'guaranteed'" not in out and "profile 'default'" in out  # tier label missing
    args = _match_args(
        profiles,
        "--cgroup",
        cg,
        "--namespace",
        "shop-a",
        "--pod-label",
        "app=redis",
        "--pod-label",
        "tier=cache",
    )
    args.func(args)
    assert "profile 'redis'" in capsys.readouterr().out
    args = _match_args(profiles, "--cgroup", f"/kubepods/pod{UID}/{'d' * 64}", "--json")
    args.func(args)
    out = json.loads(capsys.readouterr().out)
    assert out["profile"] == "guaranteed"  # the QoS class read from the cgroupfs driver's path
    assert out["workload"]["pod"] == {
        "namespace": None,
        "name": None,
        "uid": UID,
        "qos": "guaranteed",
        "container": "d" * 64,
        "labels": None,
    }


def test_cli_match_pod_flags_on_a_plain_cgroup(profiles: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = _match_args(profiles, "--cgroup", "/system.slice/x.service", "--qos", "guaranteed")
    args.func(args)
    assert "profile 'guaranteed'" in capsys.readouterr().out  # the flags say it is a pod
    with pytest.raises(SystemExit):
        _match_args(profiles, "--cgroup", "/x", "--pod-label", "novalue")
