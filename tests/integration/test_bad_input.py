"""Wrong values across roles: site.yml must fail in its validation play, before any write to the
cluster, with a message naming the variable."""
from __future__ import annotations

import json

import pytest

CASES = [
    # (variable, value as JSON, text the failure must contain)
    ("prometheus_operator_state", '"installed"', "prometheus_operator_state"),
    ("prometheus_operator_replicas", '"two"', "prometheus_operator_replicas"),
    ("prometheus_operator_replicas", "-1", "prometheus_operator_replicas"),
    ("prometheus_operator_namespace", '"Bad_NS"', "prometheus_operator_namespace"),
    ("prometheus_operator_log_level", '"verbose"', "prometheus_operator_log_level"),
    ("prometheus_operator_crd_checksum", '"md5:abc"', "prometheus_operator_crd_checksum"),
    ("prometheus_operator_crd_url", '"ftp://mirror/crds.zip"', "prometheus_operator_crd_url"),
    ("prometheus_operator_resources", '"lots"', "prometheus_operator_resources"),
    ("prometheus_retention", '"-5d"', "prometheus_retention"),
    ("prometheus_retention", '"forever"', "prometheus_retention"),
    ("prometheus_retention_size", '"50 gigs"', "prometheus_retention_size"),
    ("prometheus_storage_size", '"big"', "prometheus_storage_size"),
    ("prometheus_scrape_interval", '"often"', "prometheus_scrape_interval"),
    ("prometheus_external_labels", '{"bad-label": "x"}', "prometheus_external_labels"),
    ("prometheus_external_labels", '["cluster"]', "prometheus_external_labels"),
    ("prometheus_name", '"Unimon!"', "prometheus_name"),
    ("prometheus_replicas", '"abc"', "prometheus_replicas"),
    ("prometheus_remote_write_receiver", '"perhaps"', "prometheus_remote_write_receiver"),
    ("prometheus_alertmanager_receivers", '[{"name": "ops", "webhook_url": "not a url"}]', "prometheus_alertmanager_receivers"),
    ("prometheus_alertmanager_receivers", '[{"name": "ops"}]', "prometheus_alertmanager_receivers"),
    ("prometheus_alertmanager_default_receiver", '"nobody"', "prometheus_alertmanager_default_receiver"),
    ("node_exporter_port", "70000", "node_exporter_port"),
    ("node_exporter_scrape_interval", '"30 seconds"', "node_exporter_scrape_interval"),
    ("node_exporter_extra_args", '["collector.foo"]', "node_exporter_extra_args"),
    ("node_exporter_image_pull_policy", '"Sometimes"', "node_exporter_image_pull_policy"),
    ("node_exporter_tolerations", '"all"', "node_exporter_tolerations"),
    ("node_exporter_mode", '"vm"', "node_exporter_mode"),
    ("node_exporter_host_source", '"ftp"', "node_exporter_host_source"),
    ("node_exporter_host_manage_service", '"perhaps"', "node_exporter_host_manage_service"),
    ("node_exporter_host_checksums", '"abc"', "node_exporter_host_checksums"),
    ("kube_state_metrics_resources_enabled", '["pods", "unicorns"]', "kube_state_metrics_resources_enabled"),
    ("kube_state_metrics_resources_enabled", "[]", "kube_state_metrics_resources_enabled"),
    ("alert_rules_groups", '["bogus"]', "alert_rules_groups"),
    ("alert_rules_memory_limit_ratio", "1.5", "alert_rules_memory_limit_ratio"),
    ("alert_rules_cpu_throttling_ratio", "-0.1", "alert_rules_cpu_throttling_ratio"),
    ("alert_rules_runbook_base_url", '"docs/alerts.md"', "alert_rules_runbook_base_url"),
    ("alert_rules_extra_labels", '{"team name": "x"}', "alert_rules_extra_labels"),
    ("kubelet_auth_token_duration", "60", "kubelet_auth_token_duration"),
    ("kubelet_auth_token_file", '"relative/token"', "kubelet_auth_token_file"),
    ("kubelet_auth_allow_nodes_proxy", '"maybe"', "kubelet_auth_allow_nodes_proxy"),
]


@pytest.mark.parametrize("var,value,needle", CASES, ids=[f"{c[0]}={c[1]}" for c in CASES])
def test_bad_value_fails_before_any_write(playbook, audit, var, value, needle):
    run = playbook("site.yml", "-e", json.dumps({var: json.loads(value)}))
    assert run.rc != 0, f"{var}={value} was accepted"
    assert needle in run.out, run.out[-2000:]
    assert "Traceback" not in run.out
    assert "Check every role's input before any role writes" in run.out
    assert "Install the unimon monitoring stack" not in run.out, "failed only after the install play started"
    assert audit.writes() == [], f"{var}={value} wrote before failing"
