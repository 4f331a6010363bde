"""Profiles: the shipped set, matching (first match wins, OR of AND), one test per problem kind with the
exact message and line, the quota conversion, and ``tierctl profile check|show|match`` through argparse."""

from __future__ import annotations

import argparse
import json
import os
import textwrap
from pathlib import Path

import pytest

from tierctl.cli import profile_cmd
from tierctl.core.policy import Quota
from tierctl.errors import InputError, TierctlError
from tierctl.profiles import (
    Placement,
    ProfileError,
    ProfileProblem,
    Workload,
    check_profiles,
    load_profiles,
    loader,
    unit_of,
)
from tierctl.profiles.loader import key_lines

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "tierctl" / "data" / "profiles"
FIXTURES = Path(__file__).parents[1] / "fixtures" / "profiles"

CATCH_ALL = 'name = "default"\npriority = -100\n'


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def problems_of(tmp_path: Path, text: str, name: str = "p.toml") -> list[str]:
    """Problems of one profile file checked together with a catch-all (so the set is complete)."""
    write(tmp_path, "zz-default.toml", CATCH_ALL)
    path = write(tmp_path, name, text)
    _, problems = check_profiles([tmp_path])
    return [str(p).replace(f"{path.parent}/", "") for p in problems]


# ---- the shipped set ------------------------------------------------------------------------------


def test_shipped_profiles_load_without_problems() -> None:
    profiles = load_profiles([SHIPPED])
    assert profiles.names() == ["latency-cache", "database", "jvm-service", "batch", "default"]
    assert [p.name for p in profiles if p.is_catch_all] == ["default"]
    db = profiles.by_name["database"]
    assert db.placement.fast_min == "4G" and db.placement.fast_max == "60%"
    assert db.placement.thp == "split" and db.placement.samplers == ("bpf-fault", "damon")
    assert profiles.by_name["jvm-service"].placement.hot_threshold == 8.0
    assert profiles.by_name["jvm-service"].match[1].user == 1001


@pytest.mark.parametrize(
    "workload",
    [
        Workload("/"),
        Workload("/system.slice/sshd.service", comm="sshd", user="root"),
        Workload("/user.slice/user-1000.slice/session-2.scope", comm="bash", user=1000),
        Workload("/kubepods.slice/pod-x/cri-containerd-abc.scope"),
    ],
)
def test_default_matches_anything_else(workload: Workload) -> None:
    result = load_profiles([SHIPPED]).match(workload)
    assert result is not None and result.profile.name == "default" and result.rule is None
    assert result.tried == ("latency-cache", "database", "jvm-service", "batch")


def test_shipped_profiles_match_their_workloads() -> None:
    profiles = load_profiles([SHIPPED])

    def name(w: Workload) -> str:
        r = profiles.match(w)
        assert r is not None
        return r.profile.name

    assert name(Workload("/system.slice/redis-server.service")) == "latency-cache"
    assert name(Workload("/system.slice/postgresql@16-main.service/postgres")) == "database"
    assert name(Workload("/system.slice/orders-jvm.service")) == "jvm-service"
    assert name(Workload("/batch.slice/etl-42")) == "batch"
    assert name(Workload("/user.slice/u/run-r1.scope", user="batch")) == "batch"
    assert name(Workload("/user.slice/u/run-r1.scope", user="alice")) == "default"


def test_shipped_examples_double_as_fixtures() -> None:
    """The fixture set (the shipped files plus a broken copy) is what tests and docs refer to."""
    assert sorted(p.name for p in SHIPPED.glob("*.toml")) == [
        "batch.toml",
        "database.toml",
        "default.toml",
        "jvm-service.toml",
        "latency-cache.toml",
    ]
    _, problems = check_profiles([FIXTURES / "broken"])
    assert [f"{Path(p.file).name}:{p.line}: {p.key}: {p.message}" for p in problems] == [
        "database.toml:20: placement.fast_mn: unknown key 'fast_mn' (did you mean 'fast_min'?)",
        "database.toml:23: placement.pin: must be one of 'fast', 'slow', 'auto', got 'fats' "
        "(did you mean 'fast'?)",
        "latency-cache.toml:12: match[1].comm: invalid regex 'redis(': "
        "missing ), unterminated subpattern at position 5",
    ]


# ---- matching -------------------------------------------------------------------------------------


def test_unit_is_the_last_service_or_scope_component() -> None:
    assert unit_of("/system.slice/postgresql@16-main.service") == "postgresql@16-main.service"
    assert unit_of("system.slice/docker-abc.scope/init") == "docker-abc.scope"
    u = "/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service"
    assert unit_of(u) == "foo.service"
    assert unit_of("/batch.slice/job") is None


def test_first_match_wins_by_priority_then_file_name(tmp_path: Path) -> None:
    write(tmp_path, "a-low.toml", 'priority = 1\n[[match]]\ncgroup = "/app/*"\n')
    write(tmp_path, "b-high.toml", 'priority = 5\n[[match]]\ncgroup = "/app/*"\n')
    write(tmp_path, "c-high.toml", 'priority = 5\n[[match]]\ncgroup = "/app/*"\n')
    write(tmp_path, "default.toml", CATCH_ALL)
    profiles = load_profiles([tmp_path])
    assert profiles.names() == ["b-high", "c-high", "a-low", "default"]
    result = profiles.match(Workload("/app/x"))
    assert result is not None and result.profile.name == "b-high"
    other = profiles.match(Workload("/other"))
    assert other is not None and other.profile.name == "default"


def test_match_tables_are_or_of_and(tmp_path: Path) -> None:
    write(
        tmp_path,
        "web.toml",
        """
        [[match]]            # table 0: nginx processes of www-data
        comm = "nginx.*"
        user = "www-data"

        [[match]]            # table 1: anything in a web*.service unit
        unit = "web*.service"
        """,
    )
    write(tmp_path, "default.toml", CATCH_ALL)
    profiles = load_profiles([tmp_path])

    def hit(w: Workload) -> tuple[str, int | None]:
        r = profiles.match(w)
        assert r is not None
        return r.profile.name, None if r.rule is None else r.rule.index

    assert hit(Workload("/x", comm="nginx", user="www-data")) == ("web", 0)
    assert hit(Workload("/x", comm="nginx", user="root")) == ("default", None)  # AND: user differs
    assert hit(Workload("/x", comm="xnginx", user="www-data")) == ("default", None)  # whole-name regex
    assert hit(Workload("/x", user="www-data")) == ("default", None)  # no comm known: no match
    assert hit(Workload("/system.slice/web-1.service", comm="python3")) == ("web", 1)  # OR: table 1
    r = profiles.match(Workload("/system.slice/web-1.service"))
    assert r is not None and r.reasons == ("unit 'web-1.service' matches 'web*.service'",)


def test_user_matches_name_or_uid() -> None:
    from tierctl.profiles.match import user_matches

    assert user_matches("root", 0) and user_matches(0, "root") and user_matches(0, 0)
    assert not user_matches("root", 1) and not user_matches(0, None)
    assert not user_matches(0, "no-such-user-here")


# ---- one test per problem kind: exact message, right line ------------------------------------------


def test_unknown_key_with_close_match_hint(tmp_path: Path) -> None:
    text = """
    name = "db"

    [placement]
    fast_mn = "1G"
    """
    assert problems_of(tmp_path, text) == [
        "p.toml:4: placement.fast_mn: unknown key 'fast_mn' (did you mean 'fast_min'?)"
    ]


def test_unknown_key_without_close_match_lists_the_known_ones(tmp_path: Path) -> None:
    assert problems_of(tmp_path, 'zzz = 1\n[[match]]\nunit = "x.service"\nwhatever = 2\n') == [
        "p.toml:1: zzz: unknown key 'zzz' (known: name, description, priority, match, placement, pressure)",
        "p.toml:4: match[0].whatever: unknown key 'whatever' "
        "(known: cgroup, unit, comm, user, namespace, pod_label, qos)",
    ]


def test_unknown_section_with_hint(tmp_path: Path) -> None:
    assert problems_of(tmp_path, '[[match]]\nunit = "a.service"\n\n[placment]\npin = "fast"\n') == [
        "p.toml:4: placment: unknown key 'placment' (did you mean 'placement'?)"
    ]


def test_wrong_type(tmp_path: Path) -> None:
    text = """
    priority = "high"
    [[match]]
    user = true
    [placement]
    fast_min = [1]
    samplers = "damon"
    """
    assert problems_of(tmp_path, text) == [
        "p.toml:1: priority: expected an integer, got string 'high'",
        "p.toml:3: match[0].user: expected a user name or a uid, got boolean True",
        "p.toml:5: placement.fast_min: expected bytes (e.g. 512M, 2G) or a share (e.g. 30%), got array",
        "p.toml:6: placement.samplers: expected an array of sampler names, got string 'damon'",
    ]


def test_out_of_range_values(tmp_path: Path) -> None:
    text = """
    [[match]]
    cgroup = "/a/*"

    [placement]
    promote_rate_mbps = 0
    demote_rate_mbps = -5
    hysteresis = -0.1
    hot_threshold = 0
    headroom = "60%"
    fast_max = "150%"
    """
    assert problems_of(tmp_path, text) == [
        "p.toml:5: placement.promote_rate_mbps: must be > 0, got 0",
        "p.toml:6: placement.demote_rate_mbps: must be > 0, got -5",
        "p.toml:7: placement.hysteresis: must be >= 0, got -0.1",
        "p.toml:8: placement.hot_threshold: must be > 0, got 0",
        "p.toml:9: placement.headroom: a share must be within 0..50 %, got '60%'",
        "p.toml:10: placement.fast_max: a share must be within 0..100 %, got '150%'",
    ]


def test_bad_enum_with_hint(tmp_path: Path) -> None:
    assert problems_of(tmp_path, '[[match]]\nunit = "a.service"\n[placement]\nthp = "spilt"\n') == [
        "p.toml:4: placement.thp: must be one of 'keep', 'split', 'ignore', got 'spilt' "
        "(did you mean 'split'?)"
    ]


def test_bad_regex(tmp_path: Path) -> None:
    text = '[[match]]\nunit = "a.service"\n\n[[match]]\ncomm = "java[0-9"\n'
    assert problems_of(tmp_path, text) == [
        "p.toml:5: match[1].comm: invalid regex 'java[0-9': unterminated character set at position 4"
    ]


def test_bad_cgroup_glob_and_empty_match_table(tmp_path: Path) -> None:
    text = '[[match]]\ncgroup = "system.slice/x"\n\n[[match]]\n'
    assert problems_of(tmp_path, text) == [
        "p.toml:2: match[0].cgroup: must start with '/' or '*' (a path below the cgroup root, "
        "as in /proc/PID/cgroup), got 'system.slice/x'",
        "p.toml:4: match[1]: empty match table (give one of cgroup, unit, comm, user, namespace, "
        "pod_label, qos; "
        "no [[match]] at all = catch-all)",
    ]


def test_match_must_be_an_array_of_tables(tmp_path: Path) -> None:
    assert problems_of(tmp_path, '[match]\nunit = "a.service"\n') == [
        "p.toml:1: match: expected an array of tables ([[match]]), got a table ([match])"
    ]


def test_unknown_sampler_with_hint(tmp_path: Path) -> None:
    text = '[[match]]\nunit = "a.service"\n[placement]\nsamplers = ["damn", "idle", "idle"]\n'
    assert problems_of(tmp_path, text) == [
        "p.toml:4: placement.samplers: unknown sampler 'damn' (did you mean 'damon'?)",
        "p.toml:4: placement.samplers: sampler 'idle' is listed twice",
    ]


def test_conflicting_min_max_of_the_same_kind(tmp_path: Path) -> None:
    bytes_text = '[[match]]\nunit = "a.service"\n[placement]\nfast_max = "1G"\nfast_min = "2G"\n'
    assert problems_of(tmp_path, bytes_text) == [
        "p.toml:5: placement.fast_min: fast_min (2G) is above fast_max (1G)"
    ]
    share_text = '[[match]]\nunit = "a.service"\n[placement]\nfast_min = "40%"\nfast_max = 0.3\n'
    assert problems_of(tmp_path, share_text) == [
        "p.toml:4: placement.fast_min: fast_min (40%) is above fast_max (0.3)"
    ]
    # different kinds: decided on the machine (the cap wins), not an error
    mixed = '[[match]]\nunit = "a.service"\n[placement]\nfast_min = "40%"\nfast_max = "1G"\n'
    assert problems_of(tmp_path, mixed) == []


def test_pin_slow_conflicts_with_fast_min(tmp_path: Path) -> None:
    text = '[[match]]\nunit = "a.service"\n[placement]\npin = "slow"\nfast_min = "1G"\n'
    assert problems_of(tmp_path, text) == [
        "p.toml:5: placement.fast_min: pin = 'slow' keeps nothing in the fast tier; fast_min (1G) conflicts"
    ]


def test_pressure_table_values_and_defaults(tmp_path: Path) -> None:
    ok = '[[match]]\nunit = "a.service"\n[pressure]\n'
    assert problems_of(tmp_path, ok) == []
    text = (
        '[[match]]\nunit = "a.service"\n\n[pressure]\nsome_psi = 10\npriority = "high"\n'
        'protect = "-1G"\ntrim = 1\ntrim_rate_mbps = 0\ngrace_s = 9000\nkill = "process"\n'
        '[pressure.hooks]\nnotify = ["shed"]\nprekill = []\npostkill = ["/bin/true"]\n'
    )
    got = problems_of(tmp_path, text)
    assert (
        got[0] == "p.toml:5: pressure.some_psi: unknown key 'some_psi' (known: priority, protect, trim, "
        "trim_rate_mbps, notify, grace_s, kill, hooks)"
    )
    wanted = {
        "pressure.priority": "expected an integer",
        "pressure.protect": "-1G",
        "pressure.trim": "expected true or false, got integer 1",
        "pressure.trim_rate_mbps": "0",
        "pressure.grace_s": "9000",
        "pressure.kill": "must be one of 'never', 'cgroup', got 'process'",
        "pressure.hooks.postkill": "unknown key 'postkill'",
        "pressure.hooks.notify": "absolute path",
        "pressure.hooks.prekill": "expected an array of strings",
    }
    for key, part in wanted.items():
        assert any(f": {key}: " in g and part in g for g in got), (key, got)
    # line numbers point at the offending keys
    assert any(g.startswith("p.toml:13: pressure.hooks.notify") for g in got), got


def test_pressure_policy_is_carried_to_the_profile(tmp_path: Path) -> None:
    text = (
        'name = "etl"\n[[match]]\nunit = "etl.service"\n[pressure]\npriority = -10\nprotect = "25%"\n'
        'kill = "cgroup"\ngrace_s = 5\n[pressure.hooks]\nprekill = ["/usr/bin/logger", "killing etl"]\n'
        'cleanup = ["/usr/local/bin/requeue", "--job", "etl"]\n'
    )
    write(tmp_path, "etl.toml", text)
    write(tmp_path, "default.toml", CATCH_ALL)
    (etl,) = [p for p in load_profiles([tmp_path]) if p.name == "etl"]
    pr = etl.pressure
    assert (pr.priority, pr.kill, pr.grace_s, pr.trim, pr.notify) == (-10, "cgroup", 5.0, True, True)
    assert pr.protect_bytes(8 << 30) == 2 << 30
    assert pr.hook("prekill") == ("/usr/bin/logger", "killing etl") and pr.hook("notify") is None
    assert etl.to_json()["pressure"]["hooks"]["cleanup"] == ["/usr/local/bin/requeue", "--job", "etl"]
    # a prekill hook that can never run is a problem
    bad = '[[match]]\nunit = "a.service"\n[pressure]\n[pressure.hooks]\nprekill = ["/bin/true"]\n'
    (tmp_path / "other").mkdir()
    assert problems_of(tmp_path / "other", bad) == [
        "p.toml:5: pressure.hooks.prekill: a prekill hook with kill = 'never' never runs; set kill = 'cgroup'"
    ]


def test_duplicate_profile_name(tmp_path: Path) -> None:
    write(tmp_path, "a.toml", 'name = "web"\n[[match]]\nunit = "a.service"\n')
    write(tmp_path, "b.toml", '# another\nname = "web"\n[[match]]\nunit = "b.service"\n')
    write(tmp_path, "default.toml", CATCH_ALL)
    _, problems = check_profiles([tmp_path])
    assert [str(p) for p in problems] == [
        f"{tmp_path}/b.toml:2: name: duplicate profile name 'web' (also in {tmp_path}/a.toml)"
    ]


def test_unreadable_file(tmp_path: Path) -> None:
    write(tmp_path, "default.toml", CATCH_ALL)
    missing = tmp_path / "nope.toml"
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b'name = "\xff"\n')
    _, problems = check_profiles([tmp_path / "default.toml", missing, binary])
    assert [str(p) for p in problems] == [
        f"{missing}:0: file: cannot read: No such file or directory",
        f"{binary}:0: file: cannot read: not UTF-8 (invalid start byte at byte 8)",
    ]


def test_unreadable_file_permission(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "secret.toml", CATCH_ALL)
    if os.geteuid() == 0:  # root reads any file: make reading fail the way it fails for a user

        def denied(path: Path) -> int:
            raise PermissionError(13, "Permission denied", str(path))

        monkeypatch.setattr(loader, "_open_ro", denied)
    else:
        path.chmod(0)
    _, problems = check_profiles([path])
    assert [str(p) for p in problems] == [f"{path}:0: file: cannot read: Permission denied"]


def test_bad_profile_name(tmp_path: Path) -> None:
    assert problems_of(tmp_path, '# x\nname = "my db"\n[[match]]\nunit = "a.service"\n') == [
        "p.toml:2: name: name must be letters, digits, '.', '_' or '-', got 'my db'"
    ]


def test_toml_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    text = '[[match]]\nunit = "a.service"\n[placement]\nfast_min = 1G\n'
    assert problems_of(tmp_path, text) == [
        "p.toml:4: toml: invalid TOML: Expected newline or end of document after a statement (column 13)"
    ]


def test_no_catch_all_and_hidden_profiles(tmp_path: Path) -> None:
    write(tmp_path, "a.toml", '[[match]]\nunit = "a.service"\n')
    _, problems = check_profiles([tmp_path])
    assert [str(p) for p in problems] == [
        f"{tmp_path}:0: match: no catch-all profile (one without [[match]] tables); workloads that match "
        "nothing would have no profile — add one like profiles/default.toml"
    ]
    write(tmp_path, "b-all.toml", "priority = 0\n")  # same priority, sorts before z.toml: hides it
    write(tmp_path, "z.toml", '# z\n# hidden\npriority = 0\n[[match]]\nunit = "z.service"\n')
    _, problems = check_profiles([tmp_path])
    assert [str(p) for p in problems] == [
        f"{tmp_path}/z.toml:3: priority: never used: catch-all profile 'b-all' ({tmp_path}/b-all.toml, "
        "priority 0) is tried first; give this profile a priority above 0"
    ]


def test_empty_directory(tmp_path: Path) -> None:
    _, problems = check_profiles([tmp_path])
    assert [str(p) for p in problems] == [f"{tmp_path}:0: file: no profiles (*.toml) in this directory"]


def test_all_problems_of_several_files_together(tmp_path: Path) -> None:
    write(tmp_path, "a.toml", '[[match]]\ncomm = "("\n[placement]\npin = "fats"\n')
    write(tmp_path, "b.toml", "priority = \n")
    write(tmp_path, "c.toml", '[[match]]\nunit = "c.service"\n[placement]\nhysterisis = 1\n')
    write(tmp_path, "default.toml", CATCH_ALL)
    with pytest.raises(ProfileError) as info:
        load_profiles([tmp_path])
    err = info.value
    assert isinstance(err, InputError) and err.exit_code == 2
    assert all(isinstance(p, ProfileProblem) for p in err.problems)
    assert str(err).splitlines() == [
        f"{tmp_path}/a.toml:2: match[0].comm: invalid regex '(': "
        "missing ), unterminated subpattern at position 0",
        f"{tmp_path}/a.toml:4: placement.pin: must be one of 'fast', 'slow', 'auto', got 'fats' "
        "(did you mean 'fast'?)",
        f"{tmp_path}/b.toml:1: toml: invalid TOML: Invalid value (column 12)",
        f"{tmp_path}/c.toml:4: placement.hysterisis: unknown key 'hysterisis' (did you mean 'hysteresis'?)",
    ]


def test_key_lines_scan() -> None:
    text = textwrap.dedent(
        '''
        # comment: fast_min = 1
        name = "x"
        description = """
        fast_min = "in a string"
        """
        [[match]]
        cgroup = "/a"
        [[match]]
        "unit" = "b.service"
        [placement]
        fast_min = "1G"   # trailing comment
        placement.fast_max = 3
        '''
    )
    lines = key_lines(text)
    assert lines[("name",)] == 3
    assert ("fast_min",) not in lines
    assert lines[("match", 0)] == 7 and lines[("match", 0, "cgroup")] == 8
    assert lines[("match", 1, "unit")] == 10
    assert lines[("placement", "fast_min")] == 12
    assert lines[("placement", "placement", "fast_max")] == 13


# ---- quota conversion ------------------------------------------------------------------------------


def test_quota_from_bytes_and_shares() -> None:
    page, cap = 4096, 1 << 18  # 1 GiB fast tier of 4 KiB pages
    assert Placement(fast_min="512M", fast_max="1G").quota(page, cap) == Quota(1 << 17, 1 << 18)
    assert Placement(fast_min=8192, fast_max=None).quota(page, cap) == Quota(2, None)
    assert Placement(fast_min="30%", fast_max=0.5).quota(page, cap) == Quota(int(0.3 * cap), cap // 2)
    assert Placement().quota(page, cap) == Quota(0, None)
    # mixed kinds, min above max on this machine: the cap wins
    assert Placement(fast_min="50%", fast_max="256M").quota(page, cap) == Quota(1 << 16, 1 << 16)
    assert Placement(headroom="2%").headroom_pages(page, cap) == int(0.02 * cap)
    assert Placement().headroom_pages(page, cap) is None


def test_shipped_quota() -> None:
    profiles = load_profiles([SHIPPED])
    cap = 16 << 18  # 16 GiB of 4 KiB pages
    assert profiles.by_name["database"].placement.quota(4096, cap) == Quota(1 << 20, int(0.6 * cap))
    assert profiles.by_name["batch"].placement.quota(4096, cap) == Quota(0, int(0.15 * cap))


# ---- the CLI through argparse ----------------------------------------------------------------------


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="tierctl")
    profile_cmd.register(parser.add_subparsers())
    args = parser.parse_args(list(argv))
    return int(args.func(args) or 0)


def test_cli_check_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("profile", "check", str(SHIPPED)) == 0
    assert (
        capsys.readouterr().out
        == f"5 profiles OK in {SHIPPED}: latency-cache, database, jvm-service, batch, default\n"
    )
    assert run_cli("profile", "check", "--profiles", str(SHIPPED), "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert out == {
        "ok": True,
        "profiles": ["latency-cache", "database", "jvm-service", "batch", "default"],
        "problems": [],
    }


def test_cli_check_default_dir_is_the_shipped_profiles(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import tierctl.profiles as P

    monkeypatch.setattr(P, "INSTALLED_PROFILES", tmp_path / "absent")
    assert run_cli("profile", "check") == 0
    assert capsys.readouterr().out.startswith(f"5 profiles OK in {SHIPPED}: ")
    # an administrator's /etc/tierctl/profiles, when there is one, is the default instead
    mine = tmp_path / "etc"
    mine.mkdir()
    (mine / "only.toml").write_text((SHIPPED / "default.toml").read_text())
    monkeypatch.setattr(P, "INSTALLED_PROFILES", mine)
    assert P.default_profiles_dir() == mine


def test_cli_check_failing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, "a.toml", '[[match]]\nunit = "a.service"\n[placement]\nfast_mn = 1\n')
    write(tmp_path, "b.toml", "[pressure]\nx = 1\n")
    with pytest.raises(TierctlError) as info:
        run_cli("profile", "check", str(tmp_path / "a.toml"), str(tmp_path / "b.toml"))
    assert info.value.exit_code == 2
    assert str(info.value) == "tierctl profile check: 2 problems in 2 files"
    assert capsys.readouterr().out.splitlines() == [
        f"{tmp_path}/a.toml:4: placement.fast_mn: unknown key 'fast_mn' (did you mean 'fast_min'?)",
        f"{tmp_path}/b.toml:2: pressure.x: unknown key 'x' (known: priority, protect, trim, trim_rate_mbps, "
        "notify, grace_s, kill, hooks)",
    ]
    with pytest.raises(TierctlError):
        run_cli("profile", "check", str(tmp_path), "--json")
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is False and out["profiles"] == []
    assert out["problems"][0] == {
        "file": f"{tmp_path}/a.toml",
        "line": 4,
        "key": "placement.fast_mn",
        "message": "unknown key 'fast_mn' (did you mean 'fast_min'?)",
    }


def test_cli_show(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("profile", "show", "database", "--profiles", str(SHIPPED)) == 0
    out = capsys.readouterr().out
    assert "profile database" in out and "fast_min           4.0G" in out
    assert "thp                split" in out
    assert run_cli("profile", "show", "batch", "--profiles", str(SHIPPED), "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["placement"]["fast_max"] == "15%" and data["match"][0] == {
        "index": 0,
        "line": 10,
        "cgroup": "/batch.slice/*",
    }
    with pytest.raises(TierctlError) as info:
        run_cli("profile", "show", "databse", "--profiles", str(SHIPPED))
    assert info.value.exit_code == 2 and "did you mean 'database'?" in str(info.value)


def test_cli_show_with_broken_profiles(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, "default.toml", "priority = x\n")
    with pytest.raises(TierctlError) as info:
        run_cli("profile", "show", "default", "--profiles", str(tmp_path))
    assert info.value.exit_code == 2
    assert str(info.value) == f"{tmp_path}: 1 problem in the profiles (see `tierctl profile check`)"
    assert (
        capsys.readouterr().err
        == f"{tmp_path}/default.toml:1: toml: invalid TOML: Invalid value (column 12)\n"
    )


def test_cli_match(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["profile", "match", "--profiles", str(SHIPPED)]
    assert run_cli(*args, "--cgroup", "/system.slice/valkey@6380.service") == 0
    assert capsys.readouterr().out.splitlines() == [
        f"profile 'latency-cache' ({SHIPPED}/latency-cache.toml, priority 100)",
        "  because match[1] (line 27): unit 'valkey@6380.service' matches 'valkey*.service'",
    ]
    assert run_cli(*args, "--cgroup", "/x", "--comm", "java", "--user", "1001", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["profile"] == "jvm-service" and data["rule"]["index"] == 1
    assert data["reasons"] == ["comm 'java' matches /java/", "user 1001 is 1001"]
    assert data["tried"] == ["latency-cache", "database"]
    assert run_cli(*args, "--cgroup", "/system.slice/cron.service") == 0
    assert capsys.readouterr().out.splitlines()[1] == "  because catch-all: it has no [[match]] tables"
