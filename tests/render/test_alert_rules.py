"""The alert_rules role's rules through the real promtool: syntax and semantics (check rules), alert
behaviour on realistic series (test rules), and a runbook entry in docs/alerts.md for every alert."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from lab_versions import lab_versions
from manifests import load_all

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PROMTOOL = Path.home() / ".cache" / "unimon-lab" / "bin"


def promtool() -> str:
    versions = lab_versions()
    path = PROMTOOL / f"promtool-{versions['PROMETHEUS_VERSION']}"
    if not path.exists():
        pytest.fail(f"{path} missing: run make lab-build")
    return str(path)


# The promtool cases see every alert: with replicas, the alerts installed only for several Prometheus or
# Alertmanager replicas are rendered too (the defaults' output is a subset, checked below).
REPLICATED = {"prometheus_replicas": "2", "prometheus_alertmanager_replicas": "3"}


@pytest.fixture(scope="module")
def rules(render, tmp_path_factory) -> Path:
    out = render("alert_rules", **REPLICATED)
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
    "PrometheusBadConfig", "PrometheusKubernetesListWatchFailures", "PrometheusNotificationQueueRunningFull",
    "PrometheusErrorSendingAlertsToSomeAlertmanagers", "PrometheusNotConnectedToAlertmanagers",
    "PrometheusTSDBReloadsFailing", "PrometheusTSDBCompactionsFailing", "PrometheusNotIngestingSamples",
    "PrometheusDuplicateTimestamps", "PrometheusOutOfOrderTimestamps", "PrometheusRuleFailures",
    "PrometheusMissingRuleEvaluations", "PrometheusTargetLimitHit", "PrometheusLabelLimitHit",
    "PrometheusScrapeBodySizeLimitHit", "PrometheusScrapeSampleLimitHit", "PrometheusTargetSyncFailure",
    "PrometheusHighQueryLoad",
    "AlertmanagerFailedReload", "AlertmanagerMembersInconsistent", "AlertmanagerFailedToSendAlerts",
    "AlertmanagerClusterFailedToSendAlerts", "AlertmanagerConfigInconsistent", "AlertmanagerClusterDown",
    "AlertmanagerClusterCrashlooping",
    "KubeAPIDown", "KubeAPIErrorBudgetBurn", "KubeAPITerminatedRequests", "KubeAggregatedAPIErrors", "KubeAggregatedAPIDown",
    "KubeClientCertificateExpiration", "KubeClientErrors",
    "NodeFilesystemAlmostOutOfFiles", "NodeFilesystemFilesFillingUp", "NodeClockNotSynchronising", "NodeClockSkewDetected",
    "NodeHighNumberConntrackEntriesUsed", "NodeFileDescriptorLimit", "NodeNetworkReceiveErrs", "NodeNetworkTransmitErrs",
    "NodeNetworkInterfaceFlapping", "NodeTextFileCollectorScrapeError", "NodeRAIDDegraded", "NodeRAIDDiskFailure",
    "NodeSystemSaturation", "NodeMemoryMajorPagesFaults", "NodeDiskIOSaturation", "NodeBondingDegraded",
    "PrometheusOperatorListErrors", "PrometheusOperatorWatchErrors", "PrometheusOperatorSyncFailed",
    "PrometheusOperatorReconcileErrors", "PrometheusOperatorStatusUpdateErrors", "PrometheusOperatorNodeLookupErrors",
    "PrometheusOperatorNotReady", "PrometheusOperatorRejectedResources", "ConfigReloaderSidecarErrors",
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
    tested = {t["alertname"] for case in cases for t in case.get("alert_rule_test", []) if t.get("exp_alerts")}
    untested = set(alerts(rules)) - tested - {"ContainerOOMKilled", "PodRestartingOften", "PodNetworkErrors",
                                              "PodDiskIOHigh", "NodeCPUHigh", "NodeMemoryHigh",
                                              "NodeFilesystemAlmostFull",
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


# Installed only where several replicas can compare (or see) each other, or where an Alertmanager exists.
ALERTMANAGER_CLUSTER_ALERTS = {
    "AlertmanagerMembersInconsistent", "AlertmanagerConfigInconsistent", "AlertmanagerClusterFailedToSendAlerts",
    "AlertmanagerClusterDown", "AlertmanagerClusterCrashlooping",
}
PROMETHEUS_NOTIFICATION_ALERTS = {
    "PrometheusNotificationQueueRunningFull", "PrometheusErrorSendingAlertsToSomeAlertmanagers",
    "PrometheusNotConnectedToAlertmanagers",
}


def rule_names(out: Path) -> set[str]:
    return {obj["metadata"]["name"] for obj in load_all(out / "prometheusrules.yaml")}


def test_self_monitoring_follows_the_prometheus_role(render, rules):
    default = render("alert_rules")
    names = rendered_alerts(default)
    assert {"unimon-prometheus", "unimon-alertmanager"} <= rule_names(default)
    assert {"PrometheusBadConfig", "AlertmanagerFailedReload", "AlertmanagerFailedToSendAlerts"} | PROMETHEUS_NOTIFICATION_ALERTS <= names
    # One Prometheus and one Alertmanager replica (the prometheus role's defaults): nothing to compare.
    assert not (ALERTMANAGER_CLUSTER_ALERTS | {"PrometheusNotIngestingSamples"}) & names
    assert ALERTMANAGER_CLUSTER_ALERTS | {"PrometheusNotIngestingSamples"} <= set(alerts(rules))
    # No Alertmanager deployed: no alertmanager family, no alerts about sending to it, the rest stays.
    out = render("alert_rules", prometheus_alertmanager_enabled=False)
    assert "unimon-alertmanager" not in rule_names(out) and "unimon-prometheus" in rule_names(out)
    names = rendered_alerts(out)
    assert not PROMETHEUS_NOTIFICATION_ALERTS & names and not any(n.startswith("Alertmanager") for n in names)
    assert "PrometheusRuleFailures" in names


def test_self_monitoring_selects_the_prometheus_roles_jobs(render):
    """The default selectors are the jobs Prometheus gives the prometheus role's ServiceMonitors: without a jobLabel,
    the operator names the job after the Service the ServiceMonitor selects."""
    objs = load_all(render("prometheus") / "prometheus.yaml") + load_all(render("prometheus") / "alertmanager.yaml")
    services = [o for o in objs if o["kind"] == "Service"]
    monitors = [o for o in objs if o["kind"] == "ServiceMonitor"]
    assert len(monitors) == 2
    for mon in monitors:
        assert "jobLabel" not in mon["spec"]
        want = mon["spec"]["selector"]["matchLabels"]
        selected = [s["metadata"]["name"] for s in services if want.items() <= s["metadata"]["labels"].items()]
        assert len(selected) == 1, selected
        job = selected[0]
        family = job.split("-")[0]
        exprs = [r["expr"] for obj in load_all(render("alert_rules") / "prometheusrules.yaml")
                 if obj["metadata"]["name"] == f"unimon-{family}" for g in obj["spec"]["groups"] for r in g["rules"]]
        assert exprs and all(f'{{job="{job}"}}' in e for e in exprs), (job, exprs)
    out = render("alert_rules", prometheus_name="mon")
    text = (out / "prometheusrules.yaml").read_text()
    assert 'job=\\"prometheus-mon\\"' in text and 'job=\\"alertmanager-mon\\"' in text
    assert "@prometheus" not in text and "@alertmanager" not in text


# Read the API server's own series: not installed where the API server is not scraped.
APISERVER_ALERTS = {"KubeAPIDown", "KubeAPIErrorBudgetBurn", "KubeAPITerminatedRequests", "KubeAggregatedAPIErrors",
                    "KubeAggregatedAPIDown", "KubeClientCertificateExpiration"}
# The recording rules kube-prometheus' dashboards read (34 names), ours under the same names. Left out:
# apiserver_request:availability30d (a 30-day window beyond the prometheus role's 15-day default retention).
KUBE_PROMETHEUS_RECORDS = {
    ":node_memory_MemAvailable_bytes:sum", "cluster:node_cpu:ratio_rate5m",
    "cluster:namespace:pod_cpu:active:kube_pod_container_resource_limits",
    "cluster:namespace:pod_cpu:active:kube_pod_container_resource_requests",
    "cluster:namespace:pod_memory:active:kube_pod_container_resource_limits",
    "cluster:namespace:pod_memory:active:kube_pod_container_resource_requests",
    "cluster_quantile:apiserver_request_sli_duration_seconds:histogram_quantile", "code_resource:apiserver_request_total:rate5m",
    "instance:node_cpu_utilisation:rate5m", "instance:node_load1_per_cpu:ratio", "instance:node_memory_utilisation:ratio",
    "instance:node_num_cpu:sum", "instance:node_vmstat_pgmajfault:rate5m", "instance_device:node_disk_io_time_seconds:rate5m",
    "instance_device:node_disk_io_time_weighted_seconds:rate5m",
    *(f"instance:node_network_{d}_{w}_{s}:rate5m" for d in ("receive", "transmit") for w in ("bytes", "drop")
      for s in ("excluding_lo", "physical")),
    "namespace_cpu:kube_pod_container_resource_limits:sum", "namespace_cpu:kube_pod_container_resource_requests:sum",
    "namespace_memory:kube_pod_container_resource_limits:sum", "namespace_memory:kube_pod_container_resource_requests:sum",
    "namespace_workload_pod:kube_pod_owner:relabel", "node_namespace_pod_container:container_cpu_usage_seconds_total:sum_rate5m",
    "node_namespace_pod_container:container_memory_cache", "node_namespace_pod_container:container_memory_rss",
    "node_namespace_pod_container:container_memory_swap", "node_namespace_pod_container:container_memory_working_set_bytes",
}


def records(out: Path) -> set[str]:
    return {r["record"] for obj in load_all(out / "prometheusrules.yaml") for g in obj["spec"]["groups"]
            for r in g["rules"] if "record" in r}


def test_kube_prometheus_record_names_are_recorded(render):
    assert len(KUBE_PROMETHEUS_RECORDS) == 33
    missing = KUBE_PROMETHEUS_RECORDS - records(render("alert_rules"))
    assert not missing, f"kube-prometheus records not recorded: {sorted(missing)}"


def test_apiserver_and_scheduler_rules_only_where_they_are_scraped(render):
    scraped = render("alert_rules")
    assert APISERVER_ALERTS <= rendered_alerts(scraped)
    assert "cluster_quantile:scheduler_pod_scheduling_sli_duration_seconds:histogram_quantile" in records(scraped)
    out = render("alert_rules", prometheus_scrape_apiserver=False, prometheus_scrape_scheduler=False)
    assert not APISERVER_ALERTS & rendered_alerts(out)
    assert not any(r.startswith(("apiserver_request:", "cluster_quantile:")) for r in records(out))
    # Other programs' API clients are still watched.
    assert "KubeClientErrors" in rendered_alerts(out)


def test_error_budget_burn_is_multiwindow_by_default_or_static(render):
    def burn(out):
        return [r for obj in load_all(out / "prometheusrules.yaml") for g in obj["spec"]["groups"] for r in g["rules"]
                if r.get("alert") == "KubeAPIErrorBudgetBurn"]
    default = burn(render("alert_rules"))
    assert [(r["labels"]["long"], r["labels"]["short"]) for r in default] == [("1h", "5m"), ("6h", "30m"), ("1d", "2h"), ("3d", "6h")]
    assert "apiserver_request:burnrate1h > 0.144 and" in default[0]["expr"]
    static = burn(render("alert_rules", alert_rules_apiserver_error_budget_mode="static", alert_rules_apiserver_static_bad_ratio="0.1"))
    assert [r["expr"] for r in static] == ["apiserver_request:burnrate30m > 0.1"]


def test_apiserver_selector_is_the_prometheus_roles_job():
    """The kube-apiserver ServiceMonitor takes the job from the Service's component label (apiserver)."""
    text = (REPO / "roles" / "prometheus" / "templates" / "components.yaml.j2").read_text()
    monitor = text[text.index("name: kube-apiserver\n"):text.index("{% endif %}", text.index("name: kube-apiserver\n"))]
    assert "jobLabel: component" in monitor and "component: apiserver" in monitor
    defaults = yaml.safe_load((REPO / "roles" / "alert_rules" / "defaults" / "main.yml").read_text())
    assert defaults["alert_rules_apiserver_selector"] == 'job="apiserver"'


OPERATOR_ALERTS = {
    "PrometheusOperatorNotReady", "PrometheusOperatorListErrors", "PrometheusOperatorWatchErrors", "PrometheusOperatorSyncFailed",
    "PrometheusOperatorReconcileErrors", "PrometheusOperatorStatusUpdateErrors", "PrometheusOperatorRejectedResources",
    "PrometheusOperatorNodeLookupErrors",
}


@pytest.mark.parametrize("switches,operator,reloader", [
    ({}, True, True),
    ({"prometheus_scrape_config_reloader": False}, True, False),
    ({"prometheus_operator_service_monitor": False}, False, True),
    ({"prometheus_operator_manage_deployment": False, "prometheus_scrape_config_reloader": False}, False, False),
])
def test_operator_family_follows_what_is_scraped(render, switches, operator, reloader):
    """No alert for a target nobody scrapes; with neither the operator nor its sidecars scraped, no family at all."""
    out = render("alert_rules", **switches)
    names = rendered_alerts(out)
    assert OPERATOR_ALERTS & names == (OPERATOR_ALERTS if operator else set())
    assert ("ConfigReloaderSidecarErrors" in names) is reloader
    assert ("unimon-operator" in rule_names(out)) is (operator or reloader)


def scrape_jobs(objs: list[dict]) -> dict[str, set[str]]:
    """Job -> ports, of the ServiceMonitor endpoints in objs: the Service's name (no jobLabel here), or the value an
    endpoint's relabelling writes into job."""
    services = [o for o in objs if o["kind"] == "Service"]
    jobs: dict[str, set[str]] = {}
    for mon in (o for o in objs if o["kind"] == "ServiceMonitor"):
        assert "jobLabel" not in mon["spec"]
        want = mon["spec"]["selector"]["matchLabels"]
        selected = [s for s in services if want.items() <= s["metadata"]["labels"].items()]
        assert len(selected) == 1, mon["metadata"]["name"]
        ports = {p["name"] for p in selected[0]["spec"]["ports"]}
        for ep in mon["spec"]["endpoints"]:
            assert ep["port"] in ports, (mon["metadata"]["name"], ep["port"])
            job = selected[0]["metadata"]["name"]
            for rel in ep.get("relabelings", []):
                if rel.get("targetLabel") == "job":
                    job = rel["replacement"]
            jobs.setdefault(job, set()).add(ep["port"])
    return jobs


def test_operator_selectors_are_the_jobs_of_its_service_monitors(render):
    """The operator's job is its Service's name; the sidecars' reloader-web endpoints, on the Prometheus and
    Alertmanager Services, are relabelled to one job of their own, apart from the programs' jobs."""
    defaults = yaml.safe_load((REPO / "roles" / "alert_rules" / "defaults" / "main.yml").read_text())
    operator = load_all(render("prometheus_operator") / "operator.yaml") + load_all(render("prometheus_operator") / "servicemonitor.yaml")
    assert scrape_jobs(operator) == {"prometheus-operator": {"http"}}
    assert defaults["alert_rules_operator_selector"] == 'job="prometheus-operator"'
    out = render("prometheus")
    objs = load_all(out / "prometheus.yaml") + load_all(out / "alertmanager.yaml")
    assert scrape_jobs(objs) == {"prometheus-unimon": {"web"}, "alertmanager-unimon": {"web"}, "config-reloader": {"reloader-web"}}
    assert defaults["alert_rules_config_reloader_selector"] == 'job="config-reloader"'
    # The Services send reloader-web to the container port the operator names so (pkg/operator/config_reloader.go).
    for svc in (o for o in objs if o["kind"] == "Service"):
        assert {"name": "reloader-web", "port": 8080, "targetPort": "reloader-web"} in svc["spec"]["ports"]
    off = render("prometheus", prometheus_scrape_config_reloader=False)
    objs = load_all(off / "prometheus.yaml") + load_all(off / "alertmanager.yaml")
    assert scrape_jobs(objs) == {"prometheus-unimon": {"web"}, "alertmanager-unimon": {"web"}}
    assert "reloader-web" not in (off / "prometheus.yaml").read_text() + (off / "alertmanager.yaml").read_text()


def test_operator_service_monitor_and_its_ingress_follow_the_switch(render):
    def policy(out):
        return next(o for o in load_all(out / "networkpolicies.yaml") if o["kind"] == "NetworkPolicy")
    on = render("prometheus_operator")
    assert policy(on)["spec"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 8080}]
    off = render("prometheus_operator", prometheus_operator_service_monitor=False)
    assert "ingress" not in policy(off)["spec"]
