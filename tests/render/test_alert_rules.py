"""The alert_rules role's rules through the real promtool: syntax and semantics (check rules), alert
behaviour on realistic series (test rules), and a runbook entry in docs/alerts.md for every alert."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from manifests import load_all

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PROMTOOL = Path.home() / ".cache" / "unimon-lab" / "bin"


def promtool() -> str:
    versions = dict(line.split("=", 1) for line in (REPO / "lab" / "versions.env").read_text().splitlines()
                    if "=" in line and not line.startswith("#"))
    path = PROMTOOL / f"promtool-{versions['PROMETHEUS_VERSION']}"
    if not path.exists():
        pytest.fail(f"{path} missing: run make lab-build")
    return str(path)


@pytest.fixture(scope="module")
def rules(render, tmp_path_factory) -> Path:
    out = render("alert_rules")
    groups = [g for obj in load_all(out / "prometheusrules.yaml") for g in obj["spec"]["groups"]]
    work = tmp_path_factory.mktemp("rules")
    (work / "rules.yml").write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    return work


def alerts(rules_dir: Path) -> list[str]:
    doc = yaml.safe_load((rules_dir / "rules.yml").read_text())
    return [r["alert"] for g in doc["groups"] for r in g["rules"] if "alert" in r]


def test_promtool_check_rules(rules):
    res = subprocess.run([promtool(), "check", "rules", str(rules / "rules.yml")], capture_output=True, text=True,
                         check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout


def test_promtool_unit_tests(rules):
    shutil.copy(HERE / "alert_rules.test.yml", rules / "test.yml")
    res = subprocess.run([promtool(), "test", "rules", str(rules / "test.yml")], capture_output=True, text=True,
                         check=False)
    assert res.returncode == 0, res.stdout + res.stderr


def test_every_alert_has_severity_and_a_runbook(rules):
    doc = yaml.safe_load((rules / "rules.yml").read_text())
    runbooks = (REPO / "docs" / "alerts.md").read_text()
    anchors = set(re.findall(r"^## (\S+)", runbooks, re.M))
    for group in doc["groups"]:
        for rule in group["rules"]:
            if "alert" not in rule:
                continue
            assert rule["labels"]["severity"] in ("critical", "warning", "info", "none")
            assert rule["annotations"]["summary"] and rule["annotations"]["description"]
            assert rule["annotations"]["runbook_url"].endswith("#" + rule["alert"].lower())
            assert rule["alert"] in anchors, f"docs/alerts.md has no '## {rule['alert']}' section"
    assert len(alerts(rules)) >= 20


def test_thresholds_come_from_variables(render):
    out = render("alert_rules", alert_rules_memory_limit_ratio="0.75")
    text = (out / "prometheusrules.yaml").read_text()
    assert 'resource=\\"memory\\"}) > 0.75' in text


# kube-prometheus alert names whose intent these rules cover, so routes and silences written for it match.
KUBE_PROMETHEUS_NAMES = {
    "Watchdog", "TargetDown", "CPUThrottlingHigh",
    "KubePodCrashLooping", "KubePodNotReady", "KubeDeploymentGenerationMismatch", "KubeDeploymentReplicasMismatch",
    "KubeDeploymentRolloutStuck", "KubeStatefulSetReplicasMismatch", "KubeStatefulSetGenerationMismatch",
    "KubeStatefulSetUpdateNotRolledOut", "KubeDaemonSetRolloutStuck", "KubeDaemonSetNotScheduled",
    "KubeDaemonSetMisScheduled", "KubeContainerWaiting", "KubeJobNotCompleted", "KubeJobFailed",
    "KubeHpaReplicasMismatch", "KubeHpaMaxedOut", "KubePdbNotEnoughHealthyPods",
    "KubePersistentVolumeFillingUp", "KubePersistentVolumeInodesFillingUp", "KubePersistentVolumeErrors",
    "KubeCPUOvercommit", "KubeMemoryOvercommit", "KubeCPUQuotaOvercommit", "KubeMemoryQuotaOvercommit",
    "KubeQuotaAlmostFull", "KubeQuotaFullyUsed", "KubeQuotaExceeded",
    "KubeNodeNotReady", "KubeNodeUnreachable", "KubeletTooManyPods", "KubeNodeReadinessFlapping", "KubeNodePressure",
    "KubeletPlegDurationHigh", "KubeletPodStartUpLatencyHigh", "KubeletClientCertificateExpiration",
    "KubeletServerCertificateExpiration", "KubeletDown",
}
# Needs the kubelet's own /metrics (job kubelet): not installed where the kubelet is not scraped.
KUBELET_METRIC_ALERTS = {
    "KubePersistentVolumeFillingUp", "KubePersistentVolumeInodesFillingUp", "KubeletPlegDurationHigh",
    "KubeletPodStartUpLatencyHigh", "KubeletClientCertificateExpiration", "KubeletServerCertificateExpiration",
    "KubeletDown",
}


def rendered_alerts(out: Path) -> set[str]:
    return {r["alert"] for obj in load_all(out / "prometheusrules.yaml") for g in obj["spec"]["groups"]
            for r in g["rules"] if "alert" in r}


def test_kube_prometheus_names_are_used(rules):
    missing = KUBE_PROMETHEUS_NAMES - set(alerts(rules))
    assert not missing, f"kube-prometheus intents without their alert name: {sorted(missing)}"
    # The names these replaced are gone (one name per intent).
    assert not {"ContainerCPUThrottlingHigh", "PodCrashLooping", "KubeDaemonSetNotReady"} & set(alerts(rules))


def test_every_alert_has_a_promtool_case(rules):
    cases = yaml.safe_load((HERE / "alert_rules.test.yml").read_text())["tests"]
    tested = {t["alertname"] for case in cases for t in case["alert_rule_test"] if t.get("exp_alerts")}
    untested = set(alerts(rules)) - tested - {"ContainerOOMKilled", "PodRestartingOften", "PodNetworkErrors",
                                              "PodDiskIOHigh", "NodeCPUHigh", "NodeMemoryHigh",
                                              "NodeMemoryExhaustionPredicted", "NodeFilesystemAlmostFull",
                                              "TargetDown", "KubeAPIServerErrorsHigh", "KubeAPIServerLatencyHigh"}
    assert not untested, f"alerts no promtool case sees firing: {sorted(untested)}"


def test_kubelet_alerts_only_where_the_kubelet_is_scraped(render):
    scraped = rendered_alerts(render("alert_rules"))
    assert KUBELET_METRIC_ALERTS <= scraped
    out = render("alert_rules", prometheus_scrape_kubelet="false")
    unscraped = rendered_alerts(out)
    assert not KUBELET_METRIC_ALERTS & unscraped
    # Alerts from kube-state-metrics stay; container rules read categraf's cAdvisor series instead.
    assert {"KubePersistentVolumeErrors", "KubeNodeNotReady", "KubeletTooManyPods", "CPUThrottlingHigh"} <= unscraped
    exprs = [r["expr"] for obj in load_all(out / "prometheusrules.yaml") for g in obj["spec"]["groups"] for r in g["rules"]]
    assert any('container_cpu_usage_seconds_total{job="categraf-cadvisor", container' in e for e in exprs)
    assert not any("/metrics/cadvisor" in e for e in exprs)


def test_selectors_come_from_variables(render):
    out = render("alert_rules", alert_rules_kube_state_metrics_selector='job="ksm"')
    text = (out / "prometheusrules.yaml").read_text()
    assert 'kube_deployment_spec_replicas{job=\\"ksm\\"}' in text
    assert "@ksm" not in text and "@kubelet" not in text
