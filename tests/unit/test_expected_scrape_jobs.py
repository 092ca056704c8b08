"""verify's expectations (plugins/filter/expected_scrape_jobs.py) equal what the Jinja expression they
replaced rendered: tests/unit/verify_expect_before.yml keeps that expression verbatim and renders both
with Ansible for each set of variables below (switches off, states absent, preflight's findings,
string booleans as -e gives them, skip and extra)."""
from __future__ import annotations

import pytest

SCENARIOS = {
    "defaults": {},
    "preflight-found-a-managed-control-plane": {
        "unimon_detected": {"scheduler_scrapable": False, "controller_manager_scrapable": False,
                            "kube_proxy_scrapable": False, "coredns_scrapable": True, "etcd_scrapable": True}},
    "user-overrides-beat-preflight": {
        "unimon_detected": {"scheduler_scrapable": False, "etcd_scrapable": True},
        "prometheus_scrape_scheduler": True, "prometheus_scrape_etcd": "false"},
    "components-off-or-absent": {
        "node_exporter_state": "absent", "kube_state_metrics_service_monitor": False, "grafana_state": "absent",
        "logging_fluentd": "no", "prometheus_alertmanager_enabled": False, "prometheus_name": "k8s"},
    "logging-absent-kubelet-off": {"logging_state": "absent", "prometheus_scrape_kubelet": "0",
                                   "prometheus_scrape_apiserver": "yes"},
    "skip-and-extra": {"test_skip": ["kubelet", "grafana", "fluentd"],
                       "test_extra": [{"job": "my-app", "min_up": 2}]},
}


@pytest.fixture(scope="module")
def flt(collection_module):
    return collection_module("plugins.filter.expected_scrape_jobs")


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_filter_equals_the_old_expression(scenario, tmp_path, render_before):
    both = render_before("verify_expect_before.yml", SCENARIOS[scenario], tmp_path / "expect.json")
    assert both["new"] == both["old"]
    assert both["new"], "every scenario expects at least Prometheus itself"


def test_unset_takes_the_defaults_and_preflight(flt):
    names = flt.scrape_switch_names()
    unset = dict.fromkeys(names, flt.UNSET)
    jobs = [e["job"] for e in flt.expected_scrape_jobs(unset, {"etcd_scrapable": True, "kube_proxy_scrapable": False})]
    assert "etcd" in jobs and "kube-proxy" not in jobs and "prometheus-unimon" in jobs


def test_an_unknown_name_is_refused(flt):
    with pytest.raises(Exception) as err:
        flt.expected_scrape_jobs({"prometheus_scrape_schedular": True})
    assert "prometheus_scrape_schedular" in str(err.value)
