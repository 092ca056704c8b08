"""Metric names that dashboards and rules query, taken from the expression tree a real Prometheus
parses (GET /api/v1/parse_query, Prometheus 3.x), so names inside functions, subqueries and
`label_values(...)` variable queries are found exactly, and label names or function names never are.
Also the dashboard helpers the render tier's tests/render/test_dashboards.py uses (files, panels, $variables)."""
from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DASHBOARDS = sorted((REPO / "roles" / "grafana" / "files" / "dashboards").glob("*.json"))
# Grafana's $variables, replaced by values that keep the expression valid PromQL.
GRAFANA_VAR = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))")
# Grafana's built-in variables, and what they stand for when an expression is parsed or checked.
GRAFANA_BUILTINS = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h", "__all": ".*"}
LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(.+?)\s*,\s*\w+\s*\)\s*$", re.S)

# Metrics the stack's Prometheus does not hold on the kwok nodes, where nothing is the program that exports
# them. Names, not prefixes, so a typo in a dashboard or rule still fails. cAdvisor's container_* (kubelet
# /metrics/cadvisor) are checked against the lab's real kubelets by test_metrics_stack (the last tests, with
# the real nodes added); KubeVirt's against its docs/metrics.md (kubevirt/monitoring lists every
# kubevirt_vmi_* below).
ONLY_REAL_KUBELETS = {
    "container_cpu_cfs_periods_total", "container_cpu_cfs_throttled_periods_total",
    "container_cpu_usage_seconds_total", "container_fs_reads_bytes_total", "container_fs_reads_total",
    "container_fs_writes_bytes_total", "container_fs_writes_total", "container_memory_cache", "container_memory_rss",
    "container_memory_swap",
    "container_memory_working_set_bytes", "container_network_receive_bytes_total",
    "container_network_receive_errors_total", "container_network_receive_packets_dropped_total",
    "container_network_transmit_bytes_total", "container_network_transmit_errors_total",
    "container_network_transmit_packets_dropped_total",
}
ONLY_KUBEVIRT = {
    "kubevirt_vmi_cpu_usage_seconds_total", "kubevirt_vmi_filesystem_capacity_bytes",
    "kubevirt_vmi_filesystem_used_bytes", "kubevirt_vmi_info", "kubevirt_vmi_launcher_memory_overhead_bytes",
    "kubevirt_vmi_memory_actual_balloon_bytes", "kubevirt_vmi_memory_available_bytes",
    "kubevirt_vmi_memory_domain_bytes", "kubevirt_vmi_memory_pgmajfault_total", "kubevirt_vmi_memory_resident_bytes",
    "kubevirt_vmi_memory_swap_in_traffic_bytes", "kubevirt_vmi_memory_swap_out_traffic_bytes",
    "kubevirt_vmi_memory_usable_bytes", "kubevirt_vmi_migration_data_remaining_bytes",
    "kubevirt_vmi_migration_dirty_memory_rate_bytes", "kubevirt_vmi_migration_failed",
    "kubevirt_vmi_migration_memory_transfer_rate_bytes", "kubevirt_vmi_migration_succeeded",
    "kubevirt_vmi_migrations_in_pending_phase", "kubevirt_vmi_migrations_in_running_phase",
    "kubevirt_vmi_migrations_in_scheduling_phase", "kubevirt_vmi_network_receive_bytes_total",
    "kubevirt_vmi_network_receive_errors_total", "kubevirt_vmi_network_receive_packets_dropped_total",
    "kubevirt_vmi_network_receive_packets_total", "kubevirt_vmi_network_transmit_bytes_total",
    "kubevirt_vmi_network_transmit_errors_total", "kubevirt_vmi_network_transmit_packets_dropped_total",
    "kubevirt_vmi_network_transmit_packets_total", "kubevirt_vmi_storage_flush_requests_total",
    "kubevirt_vmi_storage_flush_times_seconds_total", "kubevirt_vmi_storage_iops_read_total",
    "kubevirt_vmi_storage_iops_write_total", "kubevirt_vmi_storage_read_times_seconds_total",
    "kubevirt_vmi_storage_read_traffic_bytes_total", "kubevirt_vmi_storage_write_times_seconds_total",
    "kubevirt_vmi_storage_write_traffic_bytes_total", "kubevirt_vmi_vcpu_delay_seconds_total",
    "kubevirt_vmi_vcpu_seconds_total", "kubevirt_vmi_vcpu_wait_seconds_total", "kubevirt_vm_info",
}
# Kubelet /metrics series that exist only under conditions the lab may not meet: volume statistics only for
# a mounted filesystem PVC, the certificate managers' TTLs only with client certificate rotation or
# serverTLSBootstrap, the PLEG and pod start histograms only on real (not kwok) kubelets (checked there too).
ONLY_KUBELET_CONDITIONS = {
    "kubelet_volume_stats_available_bytes", "kubelet_volume_stats_capacity_bytes", "kubelet_volume_stats_inodes",
    "kubelet_volume_stats_inodes_free", "kubelet_certificate_manager_client_ttl_seconds",
    "kubelet_certificate_manager_server_ttl_seconds", "kubelet_pleg_relist_duration_seconds_bucket",
    "kubelet_pod_start_sli_duration_seconds_bucket",
}
# API server counters that get their first series only when it happens: a request terminated in self-defence, an
# APIService marked unavailable (names confirmed in the Kubernetes source, apiserver/pkg/endpoints/metrics and
# kube-aggregator/pkg/controllers/status/metrics).
ONLY_APISERVER_CONDITIONS = {"apiserver_request_terminations_total", "aggregator_unavailable_apiservice_total"}
# node-exporter's bonding and mdadm collectors (on by default) export series only on a node with a bond or an md
# array, which the lab's nodes have not (names confirmed in node_exporter v1.10.2, collector/bonding_linux.go and
# collector/mdadm_linux.go).
ONLY_NODE_HARDWARE = {"node_bonding_active", "node_bonding_slaves", "node_md_disks", "node_md_disks_required"}
ALLOWED = ONLY_REAL_KUBELETS | ONLY_KUBEVIRT | ONLY_KUBELET_CONDITIONS | ONLY_APISERVER_CONDITIONS | ONLY_NODE_HARDWARE


def panels(board: dict) -> list[dict]:
    """Every panel of a dashboard, those inside collapsed rows included."""
    out = []
    for panel in board["panels"]:
        out.append(panel)
        out += panel.get("panels", [])  # collapsed rows keep their panels inside
    return out


def ungrafana(expr: str) -> str:
    """The expression with Grafana's $variables replaced (built-ins by their stand-ins, the rest by .*)."""
    return GRAFANA_VAR.sub(lambda m: GRAFANA_BUILTINS.get(m.group(1) or m.group(2), ".*"), expr)


def dashboard_expressions() -> dict[str, str]:
    """Where -> PromQL for every Prometheus target and every variable query of every dashboard."""
    out: dict[str, str] = {}
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        for panel in panels(board):
            for target in panel.get("targets", []):
                if "expr" in target:
                    out[f"{path.stem}: {panel['title']} ({target['refId']})"] = ungrafana(target["expr"])
        for var in board["templating"]["list"]:
            query = var.get("query")
            query = query.get("query") if isinstance(query, dict) else query
            m = LABEL_VALUES.match(query or "")
            if m:
                out[f"{path.stem}: variable ${var['name']}"] = ungrafana(m.group(1))
    return out


def parse(prometheus: str, expr: str) -> dict:
    url = f"{prometheus}/api/v1/parse_query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())["data"]


def selector_names(tree) -> set[str]:
    """Metric names of every selector in a parse_query tree (by name or by a __name__ matcher); a range
    selector is a node of its own there (matrixSelector), not a vector selector inside one."""
    names: set[str] = set()
    if isinstance(tree, dict):
        if tree.get("type") in ("vectorSelector", "matrixSelector"):
            if tree.get("name"):
                names.add(tree["name"])
            names |= {m["value"] for m in tree.get("matchers") or []
                      if m.get("name") == "__name__" and m.get("type") == "="}
        for value in tree.values():
            names |= selector_names(value)
    elif isinstance(tree, list):
        for value in tree:
            names |= selector_names(value)
    return names


def names_by_use(prometheus: str, expressions: dict[str, str]) -> dict[str, set[str]]:
    """Metric name -> the places (dashboard panel, rule) that query it."""
    uses: dict[str, set[str]] = {}
    for where, expr in expressions.items():
        for name in selector_names(parse(prometheus, expr)):
            uses.setdefault(name, set()).add(where)
    return uses


def rendered_rules(role: str, out: Path) -> tuple[dict[str, str], set[str]]:
    """Expressions and recorded names of a role's PrometheusRules, rendered with its defaults (for
    rules the lab cannot load, e.g. kubevirt_monitoring's, which skips itself without a KubeVirt CR)."""
    import subprocess  # pylint: disable=import-outside-toplevel
    import sys  # pylint: disable=import-outside-toplevel

    import yaml  # pylint: disable=import-outside-toplevel
    subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), str(REPO / "tests" / "render" / "render.yml"),
                    "-e", f"role={role}", "-e", f"out={out}"], check=True, capture_output=True)
    exprs: dict[str, str] = {}
    records: set[str] = set()
    for obj in yaml.safe_load_all((out / "prometheusrules.yaml").read_text()):
        for group in (obj or {}).get("spec", {}).get("groups", []):
            for rule in group["rules"]:
                name = rule.get("alert") or rule.get("record")
                exprs[f"rule {group['name']}/{name}"] = rule["expr"]
                if "record" in rule:
                    records.add(rule["record"])
    return exprs, records
