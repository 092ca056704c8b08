"""The kubevirt_monitoring role's VM rules through the real promtool: syntax (check rules), behaviour on
series shaped like KubeVirt's (test rules: vCPU wait, vCPU state flips, hypervisor overhead, guest memory,
QEMU overhead, balloon, disk latency, agent disconnected, VMI not running, failed migration), and a runbook
entry in docs/alerts.md for every alert."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from manifests import load_all
from test_alert_rules import promtool

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def rule_file(out: Path, work: Path) -> Path:
    groups = [g for obj in load_all(out / "prometheusrules.yaml") for g in obj["spec"]["groups"]]
    (work / "rules.yml").write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    return work / "rules.yml"


@pytest.fixture(scope="module")
def rules(render, tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("vm-rules")
    rule_file(render("kubevirt_monitoring"), work)
    return work


def test_promtool_check_rules(rules):
    res = subprocess.run([promtool(), "check", "rules", str(rules / "rules.yml")], capture_output=True, text=True,
                         check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS: 20 rules found" in res.stdout


def test_promtool_unit_tests(rules):
    shutil.copy(HERE / "kubevirt_monitoring.test.yml", rules / "test.yml")
    res = subprocess.run([promtool(), "test", "rules", str(rules / "test.yml")], capture_output=True, text=True,
                         check=False)
    assert res.returncode == 0, res.stdout + res.stderr


def test_unit_tests_fail_on_a_wrong_threshold(render, tmp_path):
    """The promtool tests are not vacuous: with the guest memory threshold at 0.99 the test case that
    expects VMGuestMemoryHigh for the 95% guest fails."""
    rule_file(render("kubevirt_monitoring", kubevirt_monitoring_guest_memory_ratio="0.99"), tmp_path)
    shutil.copy(HERE / "kubevirt_monitoring.test.yml", tmp_path / "test.yml")
    res = subprocess.run([promtool(), "test", "rules", str(tmp_path / "test.yml")], capture_output=True, text=True,
                         check=False)
    assert res.returncode != 0
    assert "VMGuestMemoryHigh" in res.stdout + res.stderr


def test_every_alert_has_severity_and_a_runbook(rules):
    doc = yaml.safe_load((rules / "rules.yml").read_text())
    runbooks = (REPO / "docs" / "alerts.md").read_text()
    anchors = set(re.findall(r"^## (\S+)", runbooks, re.M))
    alerts = [r for g in doc["groups"] for r in g["rules"] if "alert" in r]
    assert len(alerts) == 15
    for rule in alerts:
        assert rule["labels"]["severity"] in ("critical", "warning", "info")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        assert rule["annotations"]["runbook_url"].endswith("#" + rule["alert"].lower())
        assert rule["alert"] in anchors, f"docs/alerts.md has no '## {rule['alert']}' section"


def test_recording_rules_do_not_collide_with_kubevirts_own(rules):
    """virt-operator installs its own recording rules (vmi:kubevirt_vmi_*); two rules writing one series
    would clash, so ours carry the unimon_ prefix."""
    doc = yaml.safe_load((rules / "rules.yml").read_text())
    records = [r["record"] for g in doc["groups"] for r in g["rules"] if "record" in r]
    assert records and all(r.split(":")[1].startswith("unimon_") for r in records)


def test_disk_latency_threshold_is_baseline_times_factor(render):
    out = render("kubevirt_monitoring", kubevirt_monitoring_disk_latency_seconds="0.02",
                 kubevirt_monitoring_disk_latency_factor="2")
    rule = next(r for o in load_all(out / "prometheusrules.yaml") for g in o["spec"]["groups"] for r in g["rules"]
                if r.get("alert") == "VMDiskLatencyHigh")
    assert rule["expr"].endswith("> 0.04")


def test_runbook_base_comes_from_the_variable(render):
    out = render("kubevirt_monitoring", kubevirt_monitoring_runbook_base_url="https://runbooks.example/vm.md")
    alerts = [r for o in load_all(out / "prometheusrules.yaml") for g in o["spec"]["groups"] for r in g["rules"]
              if "alert" in r]
    assert alerts and all(r["annotations"]["runbook_url"].startswith("https://runbooks.example/vm.md#") for r in alerts)
