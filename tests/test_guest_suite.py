"""Runs every `vm`-marked test inside one boot of the two-tier guest and reports the result.

The host's pytest deselects the `vm` tests themselves (tests/conftest.py); this
test boots the guest once with scripts/testbed, runs them there with
TIERCTL_IN_GUEST=1, and reads the junit report back through a --rwdir folder.
Set TIERCTL_SKIP_VM=1 to skip it (e.g. for a quick edit-test loop).
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.conftest import IN_GUEST

REPO = Path(__file__).resolve().parents[1]
GUEST_TIMEOUT_S = 1500


@pytest.mark.timeout(GUEST_TIMEOUT_S + 300)  # boot + the guest's own timeout + collecting the report
@pytest.mark.skipif(IN_GUEST, reason="this is the host side of the guest suite")
def test_vm_suite_in_the_two_tier_guest(tmp_path: Path) -> None:
    if os.environ.get("TIERCTL_SKIP_VM") == "1":
        pytest.skip("TIERCTL_SKIP_VM=1: the two-tier guest suite was not run")
    out = tmp_path / "vm"
    out.mkdir()
    junit = out / "junit.xml"
    cmd = [
        str(REPO / "scripts" / "testbed"), "run", "--rwdir", str(out),
        "--timeout", str(GUEST_TIMEOUT_S), "--",
        "env", "TIERCTL_IN_GUEST=1", "PYTHONDONTWRITEBYTECODE=1", f"PYTHONPATH={REPO}",
        sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rfE", "-o", "junit_family=xunit1",
        f"--junitxml={junit}", str(REPO / "tests"),
    ]  # fmt: skip
    proc = subprocess.run(
        cmd, cwd=REPO, capture_output=True, text=True, timeout=GUEST_TIMEOUT_S + 120, check=False
    )
    log = (proc.stdout + proc.stderr)[-12000:]
    (out / "guest.log").write_text(proc.stdout + proc.stderr)
    assert junit.exists(), f"the guest produced no junit report (exit {proc.returncode}):\n{log}"
    suite = ET.parse(junit).getroot()
    suite = suite if suite.tag == "testsuite" else suite[0]
    tests, failures, errors = (int(suite.get(k, "0")) for k in ("tests", "failures", "errors"))
    print(log)
    assert tests > 0, f"the guest ran no vm test:\n{log}"
    assert failures == 0 and errors == 0 and proc.returncode == 0, f"guest suite failed:\n{log}"
