"""The systemd unit (tierctl/data/tierctl.service) and `tierctl unit`: the unit states only what the code
does, carries the hardening it claims, and the unit `tierctl unit` prints runs an executable that exists
and passes `systemd-analyze verify` (where systemd-analyze exists)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import tierctl
from tierctl.api.client import DEFAULT_SOCKET
from tierctl.cli import main
from tierctl.cli.docgen import manpage
from tierctl.cli.unit_cmd import (
    SHIPPED_EXEC_START,
    SHIPPED_PROFILES,
    TMP_DIRS,
    _below,
    find_executable,
    render_unit,
)
from tierctl.data import unit_file
from tierctl.errors import InputError, UnavailableError

REPO = Path(__file__).resolve().parents[2]
CODE = REPO / "tierctl"
UNIT = unit_file().read_text(encoding="utf-8")
CONSOLE_SCRIPT = Path(sys.executable).with_name("tierctl")  # the venv's entry point
# `systemd-analyze security --offline=yes` with systemd 252: 3.1 (2.9 while ProtectControlGroups=yes
# broke the ladder); 4.7 before issue 13
MAX_EXPOSURE = 3.5


def parse_unit(text: str) -> dict[str, list[tuple[str, str]]]:
    """Sections of a unit file, each a list of (key, value) in order (keys may repeat)."""
    out: dict[str, list[tuple[str, str]]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            out.setdefault(section, [])
            continue
        key, sep, value = line.partition("=")
        assert sep, f"not a key=value line: {raw!r}"
        out[section].append((key.strip(), value.strip()))
    return out


def values(text: str, section: str, key: str) -> list[str]:
    return [v for k, v in parse_unit(text)[section] if k == key]


def one(text: str, section: str, key: str) -> str:
    found = values(text, section, key)
    assert len(found) == 1, f"{key}= in [{section}]: {found}"
    return found[0]


def code_text(exclude: tuple[str, ...] = ()) -> str:
    return "\n".join(
        p.read_text(encoding="utf-8")
        for p in sorted(CODE.rglob("*.py"))
        if p.relative_to(REPO).as_posix() not in exclude
    )


def exec_words(line: str) -> list[str]:
    return [w.replace("%%", "%").replace("$$", "$") for w in shlex.split(line)]


# ------------------------------------------------------------------------------------ the shipped unit
def test_syscall_filter_and_hardening() -> None:
    filters = " ".join(values(UNIT, "Service", "SystemCallFilter")).split()
    assert {"@system-service", "@resources", "bpf", "perf_event_open"} <= set(filters)
    assert one(UNIT, "Service", "SystemCallArchitectures") == "native"
    assert one(UNIT, "Service", "SystemCallErrorNumber") == "EPERM"
    for key in (
        "NoNewPrivileges",
        "PrivateTmp",
        "PrivateDevices",
        "PrivateMounts",
        "ProtectKernelModules",
        "ProtectKernelTunables",
        "ProtectKernelLogs",
        "ProtectClock",
        "ProtectHostname",
        "RestrictNamespaces",
        "RestrictRealtime",
        "RestrictSUIDSGID",
        "LockPersonality",
        "ProtectHome",
    ):
        assert one(UNIT, "Service", key) == "yes", key
    assert one(UNIT, "Service", "ProtectSystem") == "strict"
    assert one(UNIT, "Service", "UMask") == "0077"
    assert one(UNIT, "Service", "IPAddressDeny") == "any"


def test_tracefs_mount_is_allowed_where_the_code_mounts_it() -> None:
    """The BPF samplers mount tracefs when it is not mounted: mount/umount2 must pass the filter."""
    filters = set(" ".join(values(UNIT, "Service", "SystemCallFilter")).split())
    mounts = re.findall(r"libc\.(mount|umount2)\(", code_text())
    assert mounts, "tierctl no longer mounts tracefs: drop mount/umount2 from SystemCallFilter="
    assert set(mounts) <= filters


def test_the_unit_lets_the_ladder_write_exactly_the_cgroup_files_it_writes() -> None:
    for name in ("memory.high", "memory.low", "memory.max", "cpuset.mems"):
        assert name not in UNIT, name  # no claim about files nothing writes
    # the pressure ladder writes memory.reclaim and cgroup.kill (kernel/cgroupfs.py reclaim/kill, called
    # from service/pressure_kernel.py): ProtectControlGroups=yes would make both fail read-only
    kernel_io = (REPO / "tierctl" / "service" / "pressure_kernel.py").read_text()
    assert "self.cgroups.reclaim(" in kernel_io and "self.cgroups.kill(" in kernel_io
    assert values(UNIT, "Service", "ProtectControlGroups") == ["no"]
    # the other CgroupFS writers are test/ops helpers, called nowhere in tierctl itself
    body = code_text(exclude=("tierctl/kernel/cgroupfs.py",))
    for writer in ("set_cpuset_mems(", ".attach(", "enable_controllers("):
        assert writer not in body, f"{writer} is used: say so in the unit file"


# what in the code needs each capability (a pattern that must occur in tierctl's source)
CAPABILITY_USES = {
    "CAP_SYS_ADMIN": (r"BPF_ENABLE_STATS", r"libc\.mount\(", r"pfn\("),
    "CAP_BPF": (r"attach_tracepoint|load_func|BPF\.PERF_EVENT",),
    "CAP_PERFMON": (r"perf_event_open|PERF_EVENT_OPEN",),
    "CAP_SYS_PTRACE": (r"\.move_pages\(", r'"numa_maps"'),
    "CAP_DAC_READ_SEARCH": (r'"pagemap"',),
}


def test_every_capability_is_used_and_explained() -> None:
    caps = one(UNIT, "Service", "CapabilityBoundingSet").split()
    assert sorted(caps) == sorted(CAPABILITY_USES)
    body = code_text()
    comments = "\n".join(ln for ln in UNIT.splitlines() if ln.startswith("#"))
    for cap, patterns in CAPABILITY_USES.items():
        assert re.search(rf"^# {cap}\s+\S", comments, flags=re.M), f"{cap} has no reason in the unit"
        for pat in patterns:
            assert re.search(pat, body), f"{cap}: nothing in tierctl matches {pat!r} any more"


def test_cap_sys_nice_is_not_needed() -> None:
    """CAP_SYS_NICE is left out because the daemon moves with MPOL_MF_MOVE only (move_pages needs it for
    MPOL_MF_MOVE_ALL) and calls no migrate_pages (which needs it for nodes outside the cpuset)."""
    body = code_text(exclude=("tierctl/kernel/numa.py",))
    assert not re.search(r"flags\s*=\s*[^,)]*MPOL_MF_MOVE_ALL", body)
    assert ".migrate_pages(" not in body


def test_every_writable_path_is_written_by_the_code() -> None:
    paths = [p.lstrip("-") for p in values(UNIT, "Service", "ReadWritePaths")]
    assert paths
    body = code_text()
    for p in paths:
        below_root = p.split("/", 2)[2]  # "kernel/mm/page_idle/bitmap": tierctl roots /sys and /proc
        assert below_root in body, f"ReadWritePaths={p}: nothing in tierctl names it"


def test_directories_match_the_code() -> None:
    from tierctl.service.service import DaemonConfig

    assert one(UNIT, "Service", "RuntimeDirectory") == "tierctl"
    assert DEFAULT_SOCKET.parent == Path("/run/tierctl")
    assert one(UNIT, "Service", "StateDirectory") == "tierctl"
    assert DaemonConfig.__dataclass_fields__["state_dir"].default == Path("/var/lib/tierctl")
    assert one(UNIT, "Service", "ConfigurationDirectory") == "tierctl"
    assert one(UNIT, "Service", "ExecStart") == SHIPPED_EXEC_START.partition("=")[2]
    assert "/etc/tierctl/profiles" in SHIPPED_EXEC_START
    # /run/tierctl also holds one-shot commands' knob records: a stop of the daemon must keep them
    from tierctl.kernel.bpfhost import RUN_DIR

    assert DEFAULT_SOCKET.parent == RUN_DIR
    assert one(UNIT, "Service", "RuntimeDirectoryPreserve") == "yes"


def test_documentation_is_the_generated_man_page() -> None:
    assert values(UNIT, "Unit", "Documentation") == ["man:tierctl(8)"]
    from tierctl.cli import build_parser

    assert manpage(build_parser()).startswith(".TH TIERCTL 8 ")


def test_reload_command_exists() -> None:
    kill = exec_words(one(UNIT, "Service", "ExecReload"))[0]
    assert os.access(kill, os.X_OK), kill


# ------------------------------------------------------------------------------------- tierctl unit
def test_render_points_exec_start_at_the_installation() -> None:
    out = render_unit(UNIT, Path("/opt/tc/bin/tierctl"), Path("/srv/profiles"), Path("/opt/tc/lib/tierctl"))
    assert one(out, "Service", "ExecStart") == "/opt/tc/bin/tierctl daemon --profiles /srv/profiles"
    assert "/usr/bin/tierctl" not in out
    assert one(out, "Service", "ProtectHome") == "yes"
    # every other line is the shipped one
    assert [ln for ln in out.splitlines()[1:] if "ExecStart" not in ln] == [
        ln for ln in UNIT.splitlines() if "ExecStart" not in ln
    ]


def test_render_quotes_and_escapes_for_systemd() -> None:
    out = render_unit(UNIT, Path("/opt/my tc/bin/tierctl"), Path("/srv/100%/$p"), Path("/opt/lib"))
    line = one(out, "Service", "ExecStart")
    assert line == '"/opt/my tc/bin/tierctl" daemon --profiles /srv/100%%/$$p'
    assert exec_words(line) == ["/opt/my tc/bin/tierctl", "daemon", "--profiles", "/srv/100%/$p"]
    with pytest.raises(InputError):
        render_unit(UNIT, Path("/opt/a\nb"), Path("/srv"), Path("/opt/lib"))


def test_render_home_and_tmp_installations() -> None:
    out = render_unit(UNIT, Path("/usr/local/bin/tierctl"), Path("/etc/p"), Path("/home/u/venv/tierctl"))
    assert one(out, "Service", "ProtectHome") == "read-only"
    with pytest.raises(InputError, match="PrivateTmp"):
        render_unit(UNIT, Path("/tmp/venv/bin/tierctl"), Path("/etc/p"), Path("/opt/lib"))


def test_render_refuses_a_unit_without_the_shipped_exec_start() -> None:
    with pytest.raises(UnavailableError):
        render_unit(
            UNIT.replace(SHIPPED_EXEC_START, "ExecStart=/bin/true"), Path("/a"), Path("/b"), Path("/c")
        )


def test_exec_flag_must_name_an_executable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["unit", "--exec", str(tmp_path / "missing")]) == 2
    assert "--exec" in capsys.readouterr().err
    (tmp_path / "notexec").write_text("")
    with pytest.raises(InputError):
        find_executable(str(tmp_path / "notexec"), "tierctl")


def test_executable_without_a_console_script(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tierctl.cli.unit_cmd.shutil.which", lambda name: None)
    with pytest.raises(UnavailableError, match="--exec"):
        find_executable(None, "/usr/lib/python3/site-packages/tierctl/__main__.py")
    if CONSOLE_SCRIPT.is_file():  # started as the console script: that one, even off $PATH
        assert find_executable(None, str(CONSOLE_SCRIPT)) == CONSOLE_SCRIPT


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The unit ``tierctl unit`` writes for this installation. A checkout below /tmp (a CI clone) is
    refused by it, rightly: PrivateTmp= would hide it from the daemon (test_render_home_and_tmp_
    installations). Then the unit is rendered for a launcher outside /tmp, in the home directory,
    that runs this tierctl: the same template and code path, an installation systemd can see."""
    if not CONSOLE_SCRIPT.is_file():
        pytest.skip(f"no tierctl console script beside {sys.executable} (tierctl not pip-installed here)")
    unit = tmp_path_factory.mktemp("unit") / "tierctl.service"
    code = Path(tierctl.__file__).resolve().parent
    if not any(_below(p, TMP_DIRS) for p in (CONSOLE_SCRIPT, CONSOLE_SCRIPT.resolve(), code)):
        p = subprocess.run([str(CONSOLE_SCRIPT), "unit"], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        unit.write_text(p.stdout, encoding="utf-8")
        yield unit
        return
    home = Path.home()
    if _below(home, TMP_DIRS) or not home.is_dir():
        pytest.skip(
            f"checkout and home directory ({home}) are both below /tmp: no place systemd could run it"
        )
    outside = Path(tempfile.mkdtemp(prefix="tierctl-unit-test-", dir=home))
    try:
        launcher = outside / "tierctl"
        launcher.write_text(f'#!/bin/sh\nexec "{CONSOLE_SCRIPT}" "$@"\n')
        launcher.chmod(0o755)
        unit.write_text(render_unit(unit_file().read_text(), launcher, Path(SHIPPED_PROFILES), outside))
        yield unit
    finally:
        shutil.rmtree(outside, ignore_errors=True)


def test_generated_exec_start_is_an_existing_executable(generated: Path) -> None:
    words = exec_words(one(generated.read_text(), "Service", "ExecStart"))
    exe = Path(words[0])
    assert exe.is_absolute() and exe.is_file() and os.access(exe, os.X_OK), exe
    assert words[1:] == ["daemon", "--profiles", "/etc/tierctl/profiles"]
    p = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stdout.startswith("tierctl "), p


# -------------------------------------------------------------------------------- systemd-analyze
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed here")


def _verify(unit: Path, man_dir: Path) -> subprocess.CompletedProcess[str]:
    # verify checks that ExecStart='s binary exists and runs `man` on Documentation=man:tierctl(8):
    # the generated page is put on MANPATH, as the install step puts it in /usr/local/share/man. It
    # does not look up User=/Group= (systemd 252: a missing "tierctl" group only fails at start,
    # 216/GROUP), so the copy keeps Group=tierctl unchanged.
    env = {**os.environ, "MANPATH": str(man_dir), "SYSTEMD_LOG_COLOR": "0"}
    return subprocess.run(
        [str(ANALYZE), "verify", unit.name],
        cwd=unit.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def man_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tierctl.cli import build_parser

    d = tmp_path_factory.mktemp("man")
    (d / "man8").mkdir()
    (d / "man8" / "tierctl.8").write_text(manpage(build_parser()), encoding="utf-8")
    return d


@needs_analyze
def test_generated_unit_verifies(generated: Path, man_dir: Path) -> None:
    p = _verify(generated, man_dir)
    ours = [ln for ln in (p.stdout + p.stderr).splitlines() if "tierctl.service" in ln]
    assert p.returncode == 0 and not ours, p.stdout + p.stderr


@needs_analyze
def test_verify_catches_a_broken_unit(generated: Path, man_dir: Path, tmp_path: Path) -> None:
    """The check above can fail: a unit whose ExecStart= binary is missing does not verify."""
    exe = exec_words(one(generated.read_text(), "Service", "ExecStart"))[0]
    broken = tmp_path / "tierctl.service"
    broken.write_text(generated.read_text().replace(f"ExecStart={exe} ", "ExecStart=/nonexistent/tierctl "))
    p = _verify(broken, man_dir)
    assert p.returncode != 0 and "/nonexistent/" in p.stdout + p.stderr


@needs_analyze
def test_security_exposure(generated: Path) -> None:
    p = subprocess.run(
        [str(ANALYZE), "security", "--offline=yes", generated.name],
        cwd=generated.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    m = re.search(r"Overall exposure level for tierctl\.service: (\d+(?:\.\d+)?)", p.stdout)
    assert m, p.stdout[-2000:] + p.stderr
    assert float(m.group(1)) <= MAX_EXPOSURE, p.stdout
