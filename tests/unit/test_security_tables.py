"""tools/security_tables.py on hand-made objects: every rule of a bound role is a row, built-in roles are
named, aggregated ClusterRoles say so, and the page outside the markers is left alone."""
from __future__ import annotations

import importlib.util
from pathlib import Path

SPEC = importlib.util.spec_from_file_location(
    "security_tables", Path(__file__).resolve().parents[2] / "tools" / "security_tables.py")
tables = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(tables)

SA = [{"kind": "ServiceAccount", "name": "reader", "namespace": "unimon"}]
OBJECTS = {"demo": [
    {"kind": "ClusterRole", "metadata": {"name": "r"},
     "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}, {"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]},
    {"kind": "ClusterRoleBinding", "metadata": {"name": "r"}, "roleRef": {"kind": "ClusterRole", "name": "r"}, "subjects": SA},
    {"kind": "RoleBinding", "metadata": {"name": "b", "namespace": "kube-system"},
     "roleRef": {"kind": "Role", "name": "extension-apiserver-authentication-reader"}, "subjects": SA},
    {"kind": "ClusterRole", "metadata": {"name": "agg", "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
     "rules": [{"apiGroups": ["metrics.k8s.io"], "resources": ["pods"], "verbs": ["list"]}]},
    {"kind": "NetworkPolicy", "metadata": {"name": "p"},
     "spec": {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "x"}},
              "ingress": [{"from": [{"ipBlock": {"cidr": "192.0.2.0/24"}}], "ports": [{"port": 1}]}, {"ports": [{"port": 2}]}]}},
]}


def test_rbac_rows():
    rows = tables.rbac_rows(OBJECTS)[2:]
    assert rows == [
        "| demo | ServiceAccount unimon/reader | cluster | `core` | `pods` | `get` |",
        "| demo | ServiceAccount unimon/reader | cluster | — | URLs `/metrics` | `get` |",
        "| demo | ServiceAccount unimon/reader | namespace `kube-system` | built-in Role `extension-apiserver-authentication-reader` | | |",
        "| demo | aggregated into view | cluster | `metrics.k8s.io` | `pods` | `list` |",
    ]


def test_port_rows():
    assert tables.port_rows(OBJECTS)[2:] == [
        "| demo | x | 1/TCP | host network (`unimon_network_policies_host_cidrs`) |",
        "| demo | x | 2/TCP | any address |",
    ]


def test_fill_replaces_only_between_the_markers():
    text = "intro\n" + tables.MARK.format("rbac begin") + "\nold\n" + tables.MARK.format("rbac end") + "\noutro\n"
    out = tables.fill(text, "rbac", ["| a |"])
    assert out == "intro\n" + tables.MARK.format("rbac begin") + "\n| a |\n" + tables.MARK.format("rbac end") + "\noutro\n"
