"""Preflight's decision table (plugins/filter/decision_rows.py) equals what the Jinja it replaced rendered:
tests/unit/decision_rows_before.yml keeps that Jinja verbatim and renders both with Ansible for each set
of facts and overrides below. The facts have the types unimon.stack.cluster_facts returns (booleans, lists,
the CRD mapping, a StorageClass name or none); tests/integration/test_preflight.py runs the table on the
lab's real answers."""
from __future__ import annotations

import copy

import pytest

FACTS = {
    "scheduler_scrapable": False, "controller_manager_scrapable": True, "etcd_scrapable": False,
    "kube_proxy_scrapable": True, "coredns_scrapable": True, "localhost_components": ["kube-proxy"],
    "log_format": "cri", "kubevirt_monitoring": True, "metrics_server_needed": False,
    "prometheus_operator_crds": {"action": "upgrade", "installed": "v0.80.0"}, "default_storage_class": "standard",
    "node_cidrs": ["10.0.0.1/32", "fd00::1/128"],
    "namespaces": {"unimon": {"exists": True, "enforce": "privileged"}, "other": {"exists": False, "enforce": None}},
}
FACTS["evidence"] = {k: "evidence of %s" % k for k in FACTS if k != "namespaces"}


def facts(**change):
    out = copy.deepcopy(FACTS)
    out.update(change)
    return out


SCENARIOS = {
    "found": {"test_facts": FACTS},
    "nothing-local-no-storage-class": {"test_facts": facts(localhost_components=[], default_storage_class=None,
                                                           node_cidrs=[])},
    "user-overrides": {"test_facts": FACTS, "prometheus_scrape_scheduler": True, "logging_fluentd_log_format": "json",
                       "metrics_server_enabled": False, "prometheus_storage_class": "fast",
                       "unimon_pod_security_level": "baseline"},
    "unset-enforcement": {"test_facts": facts(namespaces={"unimon": {"exists": True, "enforce": ""}})},
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_filter_equals_the_old_jinja(scenario, tmp_path, render_before):
    both = render_before("decision_rows_before.yml", SCENARIOS[scenario], tmp_path / "rows.json")
    assert both["new"] == both["old"]
    assert len(both["new"]) == 12 + len(SCENARIOS[scenario]["test_facts"]["namespaces"])
    if scenario == "user-overrides":
        assert "kube-scheduler ServiceMonitor | evidence of scheduler_scrapable | true (set by you) | prometheus_scrape_scheduler" in both["new"]
