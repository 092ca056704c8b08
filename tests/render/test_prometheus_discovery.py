"""prometheus_monitored_namespaces: cluster-wide discovery by default; when set, the operator's namespace
selectors and Prometheus's read access are limited to those namespaces (plus ours, kube-system, default)."""
from __future__ import annotations

from manifests import load_all

SELECTORS = ["serviceMonitorNamespaceSelector", "podMonitorNamespaceSelector", "probeNamespaceSelector",
             "ruleNamespaceSelector"]
NAMESPACED = {"services", "endpoints", "pods", "endpointslices", "configmaps", "ingresses"}


def objects(render, **extra) -> list[dict]:
    return load_all(render("prometheus", **extra) / "prometheus.yaml")


def granted(role: dict) -> set[str]:
    return {res for rule in role["rules"] for res in rule.get("resources", [])}


def test_default_discovers_every_namespace(render):
    objs = objects(render)
    [prom] = [o for o in objs if o["kind"] == "Prometheus"]
    assert all(prom["spec"][key] == {} for key in SELECTORS)
    [cluster_role] = [o for o in objs if o["kind"] == "ClusterRole"]
    assert NAMESPACED <= granted(cluster_role)
    assert not [o for o in objs if o["kind"] in ("Role", "RoleBinding")]


def test_listed_namespaces_limit_selectors_and_rbac(render):
    objs = objects(render, prometheus_monitored_namespaces=["apps", "db"])
    expected = ["apps", "db", "default", "kube-system", "unimon"]
    [prom] = [o for o in objs if o["kind"] == "Prometheus"]
    for key in SELECTORS:
        assert prom["spec"][key] == {"matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "In", "values": expected}]}, key
    [cluster_role] = [o for o in objs if o["kind"] == "ClusterRole"]
    # Only what has no namespace stays cluster-wide.
    assert granted(cluster_role) == {"nodes", "nodes/metrics"}
    roles = {o["metadata"]["namespace"]: o for o in objs if o["kind"] == "Role"}
    bindings = {o["metadata"]["namespace"]: o for o in objs if o["kind"] == "RoleBinding"}
    assert sorted(roles) == sorted(bindings) == expected
    for ns, role in roles.items():
        assert granted(role) == NAMESPACED, ns
        assert bindings[ns]["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                           "name": role["metadata"]["name"]}
        assert bindings[ns]["subjects"] == [{"kind": "ServiceAccount", "name": "prometheus-unimon", "namespace": "unimon"}]
