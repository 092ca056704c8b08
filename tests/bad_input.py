"""Wrong values and the text their failure must contain, one row per case: (variable, value as JSON, text).
tests/unit/test_validate_input.py runs every row through unimon.stack.validate_input (one playbook, no cluster);
tests/integration/test_bad_input.py runs one row per role through site.yml against the lab and checks that
nothing was written."""
from __future__ import annotations

from pathlib import Path

import yaml

SITE = Path(__file__).resolve().parents[1] / "playbooks" / "site.yml"


def site_roles() -> list[str]:
    """The roles site.yml's validation task checks (its first play's first task)."""
    return yaml.safe_load(SITE.read_text())[0]["tasks"][0]["unimon.stack.validate_input"]["roles"]


def owner(variable: str) -> str:
    """The role a variable belongs to ('unimon' for the shared settings); the longest prefix wins."""
    return max((r for r in ["unimon"] + site_roles() if variable.startswith(r + "_")), key=len)


CASES = [
    # (variable, value as JSON, text the failure must contain)
    ("prometheus_operator_state", '"installed"', "prometheus_operator_state"),
    ("prometheus_operator_replicas", '"two"', "prometheus_operator_replicas"),
    ("prometheus_operator_replicas", "-1", "prometheus_operator_replicas"),
    ("prometheus_operator_namespace", '"Bad_NS"', "prometheus_operator_namespace"),
    ("prometheus_operator_log_level", '"verbose"', "prometheus_operator_log_level"),
    ("prometheus_operator_kubelet_sync_period", '"soon"', "prometheus_operator_kubelet_sync_period"),
    ("prometheus_operator_crd_checksum", '"md5:abc"', "prometheus_operator_crd_checksum"),
    ("prometheus_operator_crd_url", '"ftp://mirror/crds.zip"', "prometheus_operator_crd_url"),
    ("prometheus_operator_resources", '"lots"', "prometheus_operator_resources"),
    ("prometheus_operator_config_reloader_resources", '{"limits": {"cpu": "fast"}}',
     "prometheus_operator_config_reloader_resources.limits.cpu"),
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
    ("metrics_server_enabled", '"perhaps"', "metrics_server_enabled"),
    ("metrics_server_metric_resolution", '"5s"', "metrics_server_metric_resolution"),
    ("metrics_server_metric_resolution", '"10s"', "metrics_server_kubelet_request_timeout"),
    ("metrics_server_kubelet_preferred_address_types", '["InternalIP", "PodIP"]', "metrics_server_kubelet_preferred_address_types"),
    ("metrics_server_kubelet_ca_cert", '"not a pem"', "metrics_server_kubelet_ca_cert"),
    ("metrics_server_tls_secret", '"metrics-server-tls"', "metrics_server_ca_bundle"),
    ("metrics_server_secure_port", "0", "metrics_server_secure_port"),
    ("metrics_server_replicas", "0", "metrics_server_replicas"),
    ("alert_rules_groups", '["bogus"]', "alert_rules_groups"),
    ("alert_rules_memory_limit_ratio", "1.5", "alert_rules_memory_limit_ratio"),
    ("alert_rules_cpu_throttling_ratio", "-0.1", "alert_rules_cpu_throttling_ratio"),
    ("alert_rules_runbook_base_url", '"docs/alerts.md"', "alert_rules_runbook_base_url"),
    ("alert_rules_extra_labels", '{"team name": "x"}', "alert_rules_extra_labels"),
    ("alert_rules_kubelet_selector", '"{job=\\"kubelet\\"}"', "alert_rules_kubelet_selector"),
    ("alert_rules_certificate_critical_days", "9", "alert_rules_certificate_critical_days"),
    ("alert_rules_apiserver_error_budget_mode", '"sometimes"', "alert_rules_apiserver_error_budget_mode"),
    # 1 would leave no error budget: every burn rate divides by it.
    ("alert_rules_apiserver_slo_target", "1", "alert_rules_apiserver_slo_target"),
    ("alert_rules_apiserver_static_bad_ratio", "0", "alert_rules_apiserver_static_bad_ratio"),
    ("alert_rules_apiserver_terminated_ratio", "1.2", "alert_rules_apiserver_terminated_ratio"),
    ("alert_rules_aggregated_api_unavailable_changes", "0", "alert_rules_aggregated_api_unavailable_changes"),
    ("alert_rules_aggregated_api_available_ratio", "-0.5", "alert_rules_aggregated_api_available_ratio"),
    ("alert_rules_client_error_ratio", "2", "alert_rules_client_error_ratio"),
    ("alert_rules_apiserver_selector", '"apiserver"', "alert_rules_apiserver_selector"),
    ("alert_rules_rest_client_selector", '"{job!~\\"categraf-.*\\"}"', "alert_rules_rest_client_selector"),
    ("alert_rules_apiserver_scraped", '"perhaps"', "alert_rules_apiserver_scraped"),
    ("kubelet_auth_token_duration", "60", "kubelet_auth_token_duration"),
    ("kubelet_auth_token_file", '"relative/token"', "kubelet_auth_token_file"),
    ("kubelet_auth_allow_nodes_proxy", '"maybe"', "kubelet_auth_allow_nodes_proxy"),
    ("kubevirt_monitoring_watchdog_action", '"explode"', "kubevirt_monitoring_watchdog_action"),
    ("kubevirt_monitoring_default_architecture", '"ppc64le"', "kubevirt_monitoring_default_architecture"),
    ("kubevirt_monitoring_guest_memory_ratio", "1.5", "kubevirt_monitoring_guest_memory_ratio"),
    ("kubevirt_monitoring_disk_latency_factor", "0.5", "kubevirt_monitoring_disk_latency_factor"),
    ("kubevirt_monitoring_agent_disconnected_for", '"ten minutes"', "kubevirt_monitoring_agent_disconnected_for"),
    ("kubevirt_monitoring_guest_metrics", '[{"name": "Shop!", "namespace": "vms", "port": 9100}]', "kubevirt_monitoring_guest_metrics"),
    ("kubevirt_monitoring_guest_metrics", '[{"name": "shop", "namespace": "vms"}]', "kubevirt_monitoring_guest_metrics"),
    ("kubevirt_monitoring_resilient_vms", '[{"name": "db", "namespace": "vms", "run_strategy": "Sometimes"}]', "kubevirt_monitoring_resilient_vms"),
    ("preflight_min_kubernetes_version", '"1.29.3"', "preflight_min_kubernetes_version"),
    ("preflight_roles", '["prometheus", "no_such_role"]', "preflight_roles"),
    ("preflight_registry_timeout", "0", "preflight_registry_timeout"),
    ("preflight_registry_scheme", '"ftp"', "preflight_registry_scheme"),
    ("preflight_check_permissions", '"maybe"', "preflight_check_permissions"),
    ("unimon_airgapped", "true", "unimon_image_registry"),
    ("unimon_image_registry", '"https://mirror.example/quay"', "unimon_image_registry"),
    ("categraf_mode", '"vm"', "categraf_mode"),
    ("categraf_remote_write_url", '"prometheus:9090/api/v1/write"', "categraf_remote_write_url"),
    ("categraf_interval", "0", "categraf_interval"),
    ("categraf_node_selector", '"linux"', "categraf_node_selector"),
    ("categraf_labels", '{"cluster": "other"}', "categraf_labels"),
    ("categraf_extra_inputs", '[{"plugin": "prometheus", "instances": []}]', "categraf_extra_inputs"),
    ("categraf_remote_write_password", '"pw-without-user"', "categraf_remote_write_password"),
    ("categraf_kubelet_insecure_skip_verify", '"sometimes"', "categraf_kubelet_insecure_skip_verify"),
    # categraf turns "cc$42" into "cc2" (os.Expand); only $NAME / ${NAME} are meant.
    ("categraf_labels", '{"cost_center": "cc$42"}', "categraf_labels"),
    # Nothing mounts an arbitrary path into the pod: categraf would exit on start.
    ("categraf_remote_write_ca", '"/etc/ssl/vm-ca.pem"', "categraf_remote_write_ca_cert"),
    # mem has no [[instances]]: an option given as an instance is ignored.
    ("categraf_extra_inputs", '[{"plugin": "mem", "instances": [{"collect_platform_fields": true}]}]', "settings"),
    ("categraf_extra_inputs", '[{"plugin": "mysql"}]', "needs at least one instance"),
    ("categraf_system_inputs", '{"cpu": "all"}', "categraf_system_inputs"),
    ("logging_backend", '"loki"', "logging_backend"),
    ("logging_fluentd_node_selector", '["linux"]', "logging_fluentd_node_selector"),
    ("logging_store_replicas", "2", "logging_store_replicas"),
    ("logging_store_heap", '"lots"', "logging_store_heap"),
    ("logging_external_url", '"logs.example.org:9200"', "logging_external_url"),
    ("logging_fluentd_log_format", '"syslog"', "logging_fluentd_log_format"),
    ("logging_vm_index_prefix", '"Virt Launcher"', "logging_vm_index_prefix"),
    # kubernetes-* would also match the dead letters' indices.
    ("logging_dead_letter_index_prefix", '"kubernetes-dead"', "logging_dead_letter_index_prefix"),
    ("logging_fluentd_partial_timeout", '"soon"', "logging_fluentd_partial_timeout"),
    ("logging_fluentd_metrics_port", "0", "logging_fluentd_metrics_port"),
    ("logging_ca_cert", '"not a pem"', "logging_ca_cert"),
    ("grafana_state", '"installed"', "grafana_state"),
    ("grafana_namespace", '"Bad_NS"', "grafana_namespace"),
    ("grafana_replicas", "3", "grafana_replicas"),
    ("grafana_storage_size", '"big"', "grafana_storage_size"),
    ("grafana_prometheus_url", '"prometheus-unimon:9090"', "grafana_prometheus_url"),
    ("grafana_admin_password", '"short"', "grafana_admin_password"),
    ("grafana_logs_password", '"pw-without-user"', "grafana_logs_username"),
    ("grafana_settings", '{"server": "root_url"}', "grafana_settings"),
    # Every *_resources: known keys, Kubernetes quantities, limit >= request (one shared filter, k8s_resources_problems).
    ("prometheus_operator_resources", '{"requests": {"cpu": "lots"}}', "prometheus_operator_resources.requests.cpu"),
    ("prometheus_operator_resources", '{"requests": {"memory": "512Mi"}, "limits": {"memory": "256Mi"}}',
     "prometheus_operator_resources.limits.memory"),
    ("prometheus_resources", '{"request": {"cpu": "1"}}', "prometheus_resources has the unknown key 'request'"),
    ("prometheus_resources", '{"limits": {"gpu": 1}}', "prometheus_resources.limits has the unknown resource 'gpu'"),
    ("node_exporter_resources", '{"limits": {"memory": "512m"}}', "node_exporter_resources.limits.memory"),
    ("node_exporter_resources", '{"requests": {"cpu": "-100m"}}', "node_exporter_resources.requests.cpu"),
    ("kube_state_metrics_resources", '{"limits": {"memory": "2GB"}}', "kube_state_metrics_resources.limits.memory"),
    ("metrics_server_resources", '{"requests": {"cpu": "1"}, "limits": {"cpu": "500m"}}', "metrics_server_resources.limits.cpu"),
    ("categraf_resources", '{"requests": {"ephemeral-storage": "lots"}}', "categraf_resources.requests.ephemeral-storage"),
    ("grafana_resources", '{"requests": "1Gi"}', "grafana_resources.requests must be a mapping"),
    ("logging_store_resources", '{"requests": {"memory": "4Gi"}, "limits": {"memory": "2Gi"}}', "logging_store_resources.limits.memory"),
    ("logging_fluentd_resources", '{"limits": {"cpu": "much"}}', "logging_fluentd_resources.limits.cpu"),
    ("logging_ui_resources", '{"limits": {"memory": true}}', "logging_ui_resources.limits.memory"),
    # Elasticsearch's advice: the heap at most half of the container's memory (default 1g of 2Gi).
    ("logging_store_heap", '"8g"', "logging_store_heap (8g) must be at most half of logging_store_resources.limits.memory"),
    ("logging_store_heap", '"1100m"', "logging_store_heap (1100m) must be at most half"),
    ("logging_store_resources", '{"requests": {"memory": "1Gi"}, "limits": {"memory": "1Gi"}}',
     "logging_store_heap (1g) must be at most half of logging_store_resources.limits.memory (1Gi)"),
    # Shared settings are named as the user set them, not as the role variables derived from them.
    ("unimon_namespace", '"Unimon"', "unimon_namespace"),
    ("unimon_pod_security_level", '"bogus"', "unimon_pod_security_level"),
    ("prometheus_monitored_namespaces", '"apps"', "prometheus_monitored_namespaces must be a list of namespace names"),
    ("prometheus_monitored_namespaces", '["Apps"]', "prometheus_monitored_namespaces must be a list of namespace names"),
    ("unimon_network_policies", '"sometimes"', "unimon_network_policies must be true"),
    ("unimon_network_policies_host_cidrs", '"10.0.0.0/24"', "unimon_network_policies_host_cidrs must be a list of CIDRs"),
    ("unimon_network_policies_host_cidrs", '["10.0.0.300/24"]', "unimon_network_policies_host_cidrs must be a list of CIDRs"),
    ("unimon_network_policies_host_cidrs", '["10.0.0.0"]', "unimon_network_policies_host_cidrs must be a list of CIDRs"),
    # verify's input, checked in the validation play, long before verify runs.
    ("verify_expect", '[{"jobb": "x", "min_up": "many"}]', "verify_expect"),
    ("verify_expect", '[{"job": "x", "min_up": -1}]', "verify_expect"),
    ("verify_expect", '[{"job": "", "all_up": true}]', "verify_expect"),
    ("verify_expect", '[{"job": "x"}]', "verify_expect"),
    ("verify_expect", '["node-exporter"]', "verify_expect"),
    ("verify_timeout", "0", "verify_timeout"),
    ("verify_prometheus_url", '"prometheus:9090"', "verify_prometheus_url"),
    ("verify_skip_log_streams", '["containers", "vms"]', "verify_skip_log_streams"),
]
