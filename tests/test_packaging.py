"""tierctl as a user installs it: an sdist and a wheel built from it carry the profiles, the BPF
sources and headers, the TUI stylesheet, the unit file and the LICENSE, and the wheel installed
into a fresh venv outside the checkout runs the demo, checks its profiles and prints its BPF
programs. Builds go through ``python -m build`` (an isolated environment: setuptools from the
package index, as any user's build would)."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tierctl" / "data"
SHIPPED = [
    "tierctl/data/profiles/default.toml",
    "tierctl/data/profiles/README.md",
    "tierctl/data/bpf/fault_sampler.c",
    "tierctl/data/bpf/addr_sampler.c",
    "tierctl/data/bpf/tierctl.h",
    "tierctl/data/bpf/tierctl_prog.h",
    "tierctl/data/bpf/include/README",
    "tierctl/data/bpf/include/include/linux/kconfig.h",
    "tierctl/data/tierctl.service",
    "tierctl/tui/tierctl.tcss",
]

pytestmark = pytest.mark.slow


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"{cmd} exited {p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return p.stdout


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("dist")
    _run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(REPO)], cwd=out
    )  # sdist, then wheel from it
    (sdist,) = out.glob("tierctl-*.tar.gz")
    (wheel,) = out.glob("tierctl-*.whl")
    return sdist, wheel


def test_every_shipped_file_is_package_data() -> None:
    """What the package reads at run time lies under tierctl/data (or is the TUI stylesheet)."""
    for rel in SHIPPED:
        assert (REPO / rel).is_file(), rel
    shipped = {p.relative_to(REPO).as_posix() for p in DATA.rglob("*") if p.is_file()}
    shipped = {s for s in shipped if "__pycache__" not in s and not s.endswith(".py")}
    assert shipped >= {s for s in SHIPPED if s.startswith("tierctl/data/")}


def test_sdist_and_wheel_carry_the_data_and_the_license(dists: tuple[Path, Path]) -> None:
    sdist, wheel = dists
    with tarfile.open(sdist) as t:
        names = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
    for rel in [*SHIPPED, "LICENSE", "pyproject.toml", "README.md"]:
        assert rel in names, f"sdist lacks {rel}"
    with zipfile.ZipFile(wheel) as z:
        wnames = set(z.namelist())
        meta = next(n for n in wnames if n.endswith(".dist-info/METADATA"))
        metadata = z.read(meta).decode()
    for rel in SHIPPED:
        assert rel in wnames, f"wheel lacks {rel}"
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in wnames)
    assert "License-Expression: Apache-2.0" in metadata
    assert not any(n.startswith(("tests/", "bench/")) for n in wnames)


@pytest.fixture(scope="module")
def installed(
    dists: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, str]]:
    """A fresh venv with only the wheel installed (--no-deps); tierctl's dependencies come from
    this test run's environment through a .pth file, so the check needs no package index. The
    checkout is on no path: the venv's tierctl is the wheel's."""
    _, wheel = dists
    root = tmp_path_factory.mktemp("installed")
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=root)
    py = venv / "bin" / "python"
    _run(
        [sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", str(wheel)], cwd=root
    )
    site = Path(
        _run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=root).strip()
    )
    deps = sysconfig.get_paths()["purelib"]
    (site / "zz_test_deps.pth").write_text(deps + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "TIERCTL_", "VIRTUAL_ENV"))}
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
    where = _run(
        [
            str(py),
            "-c",
            "import tierctl, tierctl.data as d; print(tierctl.__file__); print(d.profiles_dir())",
        ],
        cwd=root,
        env=env,
    )
    assert str(REPO) not in where and str(venv) in where, where
    return root, env


def test_installed_wheel_runs_the_demo_headless(installed: tuple[Path, dict[str, str]]) -> None:
    root, env = installed
    p = subprocess.run(
        ["tierctl", "tui", "--sim", "--frames", "3", "--headless", "--period", "0.05", "--refresh", "0.05"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr[-3000:]


def test_installed_wheel_checks_its_profiles(installed: tuple[Path, dict[str, str]]) -> None:
    root, env = installed
    out = _run(["tierctl", "profile", "check"], cwd=root, env=env)
    for name in ("default", "database", "latency-cache"):
        assert name in out, out
    if not Path("/etc/tierctl/profiles").is_dir():  # else the administrator's profiles are the default
        assert f"OK in {root}/venv/" in out and "/tierctl/data/profiles" in out, out


def test_installed_wheel_prints_its_bpf_programs(installed: tuple[Path, dict[str, str]]) -> None:
    root, env = installed
    for source in ("bpf-fault", "bpf-perf"):
        out = _run(["tierctl", "sample", "--print-bpf", "--source", source], cwd=root, env=env)
        assert "struct tierctl_key" in out and '#include "tierctl.h"' not in out, out[:500]
