"""The roles' NetworkPolicies admit exactly the connections of docs/architecture.md's data-path table:
a connection in the table that no policy admits, or one a policy admits that the table lacks, fails."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from manifests import load_all

REPO = Path(__file__).resolve().parents[2]
ROLES = ["prometheus_operator", "prometheus", "node_exporter", "kube_state_metrics", "metrics_server", "categraf",
         "logging", "grafana"]
HOSTS = "192.0.2.0/24"
# The table names the log store and its UI by what they are, whichever backend renders them.
ALIASES = {"elasticsearch": "log-store", "opensearch": "log-store", "kibana": "log-ui", "opensearch-dashboards": "log-ui"}
TOKEN = re.compile(r"`([a-z-]+) → ([a-z-]+):(\d+)(/udp)?`")
WORKLOADS = ("Deployment", "DaemonSet", "StatefulSet")


def table_connections() -> set[tuple]:
    text = (REPO / "docs" / "architecture.md").read_text()
    section = text.split("## Data paths", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|") and not line.startswith("|---")]
    found = {(m[0], m[1], int(m[2]), "UDP" if m[3] else "TCP") for row in rows[1:] for m in TOKEN.findall(row)}
    assert found, "no connections parsed from the data-path table"
    return found


def component(labels: dict) -> str:
    name = labels["app.kubernetes.io/name"]
    return ALIASES.get(name, name)


def peer_name(peer: dict) -> str:
    if "ipBlock" in peer:
        assert peer["ipBlock"] == {"cidr": HOSTS}, peer
        return "hosts"
    labels = peer["podSelector"]["matchLabels"]
    assert labels.get("app.kubernetes.io/part-of") == "unimon", peer
    # Without a namespaceSelector a pod peer would only match in the policy's own namespace.
    assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "unimon"}, peer
    return component(labels)


def allowed(policies: list[dict]) -> set[tuple]:
    flows = set()
    for pol in policies:
        assert pol["spec"]["policyTypes"] == ["Ingress"], pol["metadata"]["name"]
        target = component(pol["spec"]["podSelector"]["matchLabels"])
        for rule in pol["spec"].get("ingress", []):
            # A rule without from (or with an empty one) admits every source.
            sources = [peer_name(p) for p in rule.get("from") or []] or ["any"]
            assert rule.get("ports"), f"{pol['metadata']['name']}: a rule without ports admits every port"
            flows |= {(s, target, int(p["port"]), p.get("protocol", "TCP")) for s in sources for p in rule["ports"]}
    return flows


def rendered(render, role: str, **extra) -> list[dict]:
    return [o for f in sorted(render(role, **extra).glob("*.yaml")) for o in load_all(f)]


def policies_of(objs: list[dict]) -> list[dict]:
    return [o for o in objs if o["kind"] == "NetworkPolicy"]


@pytest.fixture(scope="module")
def stack(render):
    return {role: rendered(render, role, unimon_network_policies_host_cidrs=[HOSTS]) for role in ROLES}


@pytest.fixture(scope="module")
def admitted(stack):
    return allowed([p for objs in stack.values() for p in policies_of(objs)])


def test_every_connection_in_the_table_is_admitted(admitted):
    missing = table_connections() - admitted
    assert not missing, f"in docs/architecture.md but admitted by no NetworkPolicy: {sorted(missing)}"


def test_no_policy_admits_a_connection_outside_the_table(admitted):
    extra = admitted - table_connections()
    assert not extra, f"admitted by a NetworkPolicy but not in docs/architecture.md: {sorted(extra)}"


def test_opensearch_needs_the_same_connections(render, admitted):
    objs = rendered(render, "logging", logging_backend="opensearch", unimon_network_policies_host_cidrs=[HOSTS])
    names = {p["metadata"]["name"] for p in policies_of(objs)}
    assert {"opensearch", "opensearch-dashboards"} <= names
    assert allowed(policies_of(objs)) <= admitted


def pod_labels(obj: dict) -> dict:
    if obj["kind"] in WORKLOADS:
        return obj["spec"]["template"]["metadata"]["labels"]
    return obj["spec"]["podMetadata"]["labels"]  # Prometheus, Alertmanager: the operator makes the pods


@pytest.mark.parametrize("role", ROLES)
def test_every_pod_we_run_is_selected_by_a_policy(stack, role):
    objs = stack[role]
    selectors = [p["spec"]["podSelector"]["matchLabels"] for p in policies_of(objs)]
    for obj in objs:
        if obj["kind"] not in (*WORKLOADS, "Prometheus", "Alertmanager"):
            continue
        labels = pod_labels(obj)
        assert any(sel.items() <= labels.items() for sel in selectors), f"{obj['kind']}/{obj['metadata']['name']}"


@pytest.mark.parametrize("role", ROLES)
def test_without_host_addresses_only_the_tables_any_connections_are_open(render, role):
    flows = allowed(policies_of(rendered(render, role)))
    assert not {f for f in flows if f[0] == "hosts"}
    assert {f for f in flows if f[0] == "any"} <= {c for c in table_connections() if c[0] == "any"}


@pytest.mark.parametrize("role", ROLES)
def test_switched_off_renders_no_policy(render, role):
    assert not policies_of(rendered(render, role, unimon_network_policies=False))
