"""prometheus_operator (and site.yml as a whole) on the lab, as a user runs it: check mode writes
nothing, install, rerun changes nothing, the real operator reconciles, uninstall leaves nothing of
ours (CRDs only when asked). Bad input: test_bad_input.py."""
from __future__ import annotations

import pytest
from kubernetes import client, dynamic

SITE = "site.yml"


def ours(api) -> list[str]:
    """Every object labelled part-of=unimon that the role creates."""
    dyn = dynamic.DynamicClient(api)
    found = []
    for api_version, kind in [("v1", "ServiceAccount"), ("v1", "Service"), ("apps/v1", "Deployment"),
                              ("rbac.authorization.k8s.io/v1", "ClusterRole"),
                              ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"), ("v1", "Namespace")]:
        res = dyn.resources.get(api_version=api_version, kind=kind)
        for item in res.get(label_selector="app.kubernetes.io/part-of=unimon").items:
            found.append(f"{kind}/{item.metadata.name}")
    return found


def crds(api) -> list[str]:
    items = client.ApiextensionsV1Api(api).list_custom_resource_definition(
        label_selector="app.kubernetes.io/managed-by=unimon.stack").items
    return sorted(c.metadata.name for c in items)


@pytest.fixture(scope="module")
def clean(playbook, api):
    run = playbook("uninstall.yml", "-e", "unimon_remove_crds=true")
    assert run.rc == 0, run.out[-3000:]
    assert ours(api) == [] and crds(api) == []


def test_check_mode_on_empty_cluster_writes_nothing(clean, playbook, audit, api):
    run = playbook(SITE, "--check", "--diff")
    assert run.rc == 0, run.out[-3000:]
    assert "would create ['ServiceAccount/prometheus-operator'" in run.out
    assert audit.writes() == [], "check mode sent writes"
    assert ours(api) == [] and crds(api) == []


def test_install_then_rerun_is_idempotent(clean, playbook, api):
    first = playbook(SITE)
    assert first.rc == 0, first.out[-3000:]
    assert first.changed > 0
    assert len(crds(api)) == 10
    assert "Deployment/prometheus-operator" in ours(api)
    second = playbook(SITE)
    assert second.rc == 0, second.out[-3000:]
    assert second.changed == 0, f"rerun changed {second.changed} task(s):\n{second.out[-3000:]}"


def test_check_mode_after_install_reports_no_change(playbook, audit):
    run = playbook(SITE, "--check", "--diff")
    assert run.rc == 0 and run.changed == 0, run.out[-3000:]
    assert audit.writes() == []


def test_crds_established_and_operator_available(api):
    ext = client.ApiextensionsV1Api(api)
    for crd in ext.list_custom_resource_definition(label_selector="app.kubernetes.io/managed-by=unimon.stack").items:
        assert any(c.type == "Established" and c.status == "True" for c in crd.status.conditions), crd.metadata.name
    dep = client.AppsV1Api(api).read_namespaced_deployment("prometheus-operator", "unimon")
    assert dep.status.available_replicas == 1


def test_operator_reconciles_a_prometheus(api):
    """The CRDs we installed are the ones the real operator (running against the lab) serves."""
    custom = client.CustomObjectsApi(api)
    body = {"apiVersion": "monitoring.coreos.com/v1", "kind": "Prometheus",
            "metadata": {"name": "probe", "namespace": "unimon"},
            "spec": {"replicas": 1, "serviceMonitorSelector": {}}}
    custom.create_namespaced_custom_object("monitoring.coreos.com", "v1", "unimon", "prometheuses", body)
    try:
        from lab_fixtures import wait_until
        apps = client.AppsV1Api(api)
        wait_until("operator to create the StatefulSet", lambda: apps.read_namespaced_stateful_set(
            "prometheus-probe", "unimon"), 60)
        core = client.CoreV1Api(api)
        secret = wait_until("operator to write the generated config", lambda: core.read_namespaced_secret(
            "prometheus-probe", "unimon"), 30)
        assert "prometheus.yaml.gz" in secret.data
    finally:
        custom.delete_namespaced_custom_object("monitoring.coreos.com", "v1", "unimon", "prometheuses", "probe")


def test_uninstall_leaves_crds_unless_asked(playbook, api):
    run = playbook("uninstall.yml")
    assert run.rc == 0, run.out[-3000:]
    assert ours(api) == []
    assert len(crds(api)) == 10
    again = playbook("uninstall.yml")
    assert again.rc == 0 and again.changed == 0, again.out[-3000:]
