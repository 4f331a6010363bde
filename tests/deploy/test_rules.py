"""The shipped Prometheus rules (deploy/prometheus/*.rules.yml): promtool checks them and runs their unit
tests (deploy/prometheus/tests/*.yml); each alert has a `for:`, a severity, a summary and a description,
and a firing and a quiet case in the unit tests; every series a rule reads is one the daemon exports."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tierctl.service.metrics import METRICS

ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = ROOT / "deploy" / "prometheus"
RULE_FILES = sorted(RULES_DIR.glob("*.rules.yml"))
UNIT_TESTS = sorted((RULES_DIR / "tests").glob("*.yml"))
SEVERITIES = {"warning", "critical"}


def promtool() -> str:
    """promtool's path; skipped when it is missing outside CI, a failure in CI (scripts/test installs it)."""
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing in CI (scripts/test installs Debian's prometheus package)")
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    return path


def _rules() -> list[dict[str, Any]]:
    out = []
    for f in RULE_FILES:
        for group in yaml.safe_load(f.read_text())["groups"]:
            out += group["rules"]
    return out


def _alerts() -> list[dict[str, Any]]:
    return [r for r in _rules() if "alert" in r]


def _unit_cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    for f in UNIT_TESTS:
        for t in yaml.safe_load(f.read_text())["tests"]:
            cases += t.get("alert_rule_test", [])
    return cases


def test_the_files_exist() -> None:
    assert [f.name for f in RULE_FILES] == ["tierctl-alerts.rules.yml", "tierctl-recording.rules.yml"]
    assert UNIT_TESTS


def test_promtool_check_rules() -> None:
    r = subprocess.run(
        [promtool(), "check", "rules", *map(str, RULE_FILES)], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("SUCCESS") == len(RULE_FILES)


def test_promtool_unit_tests() -> None:
    r = subprocess.run(
        [promtool(), "test", "rules", *map(str, UNIT_TESTS)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=RULES_DIR / "tests",
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("SUCCESS") == len(UNIT_TESTS)


@pytest.mark.parametrize("alert", _alerts(), ids=lambda a: a["alert"])
def test_each_alert_is_complete_and_tested_both_ways(alert: dict[str, Any]) -> None:
    name = alert["alert"]
    assert re.fullmatch(r"Tierctl[A-Z][A-Za-z]+", name)
    assert "for" in alert, f"{name}: no `for:`"
    assert alert["labels"]["severity"] in SEVERITIES
    assert alert["annotations"]["summary"].strip() and alert["annotations"]["description"].strip()
    cases = [c for c in _unit_cases() if c["alertname"] == name]
    assert any(c["exp_alerts"] for c in cases), f"{name}: no unit test where it fires"
    assert any(not c["exp_alerts"] for c in cases), f"{name}: no unit test where it stays quiet"


def test_every_recording_rule_is_unit_tested() -> None:
    exprs = " ".join(
        t["expr"]
        for f in UNIT_TESTS
        for u in yaml.safe_load(f.read_text())["tests"]
        for t in u.get("promql_expr_test", [])
    )
    records = [r["record"] for r in _rules() if "record" in r]
    assert len(records) == len(set(records))
    assert [r for r in records if r not in exprs] == []


def test_rules_read_only_exported_series() -> None:
    """A renamed metric would leave a rule silently empty: each tierctl_ name a rule reads is declared."""
    exported = set()
    for spec in METRICS:
        base = spec.name.removesuffix("_total")
        exported |= {spec.name} | (
            {f"{base}_bucket", f"{base}_sum", f"{base}_count"} if spec.kind == "histogram" else set()
        )
    recorded = {r["record"] for r in _rules() if "record" in r}
    for rule in _rules():
        for name in re.findall(r"[a-z_:]*tierctl_[a-z0-9_:]+", rule["expr"]):
            assert name in exported or name in recorded, (rule.get("alert") or rule.get("record"), name)
