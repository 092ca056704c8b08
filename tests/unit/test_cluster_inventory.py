"""The pure parts of the unimon.stack.cluster inventory plugin: what it keeps of a Node and a VMI, roles,
zones, the address chosen for ansible_host, and pagination over continue tokens (driven by a page
function, which is how the plugin calls the API; the lab tier runs the same code against the lab
apiserver)."""
from __future__ import annotations

import importlib
import os
import sys

import pytest

# From the built collection (make collection): the plugin imports the collection's module_utils.
sys.path.insert(0, os.environ.get("ANSIBLE_COLLECTIONS_PATH", "").split(":")[0])
cluster = importlib.import_module("ansible_collections.unimon.stack.plugins.inventory.cluster")

NODE = {
    "metadata": {"name": "n1", "uid": "u1", "labels": {
        "node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/worker": "",
        "node-role.kubernetes.io/": "", "topology.kubernetes.io/zone": "z1", "kubernetes.io/role": "infra"}},
    "spec": {"unschedulable": True},
    "status": {"addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "10.0.0.1"},
                             {"type": "InternalIP", "address": "fd00::1"}],
               "conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
               "nodeInfo": {"osImage": "Debian GNU/Linux 12", "kubeletVersion": "v1.34.4"}},
}

VMI = {
    "metadata": {"name": "vm1", "namespace": "ns", "uid": "u2", "labels": {"app": "web"}},
    "status": {"phase": "Running", "nodeName": "n1",
               "conditions": [{"type": "Ready", "status": "True"}, {"type": "AgentConnected", "status": "True"}],
               "guestOSInfo": {"id": "fedora", "prettyName": "Fedora Linux 41"},
               "interfaces": [{"name": "default", "ipAddresses": ["10.0.2.2"]},
                              {"name": "storage", "ipAddress": "192.168.7.4", "mac": "02:00:00:00:00:01",
                               "interfaceName": "eth1"}]},
}


def test_node_summary_keeps_roles_zone_first_address_of_each_type_and_readiness():
    node = cluster.summarize_node(NODE)
    assert node["roles"] == ["control-plane", "worker", "infra"]
    assert node["zone"] == "z1"
    assert node["addresses"] == {"Hostname": "n1", "InternalIP": "10.0.0.1"}
    assert node["ready"] is True and node["unschedulable"] is True
    assert (node["os_image"], node["kubelet_version"]) == ("Debian GNU/Linux 12", "v1.34.4")
    assert cluster.node_address(node) == "10.0.0.1"


def test_node_without_status_or_labels():
    node = cluster.summarize_node({"metadata": {"name": "bare"}})
    assert node == {"name": "bare", "uid": None, "labels": {}, "roles": [], "zone": None, "addresses": {},
                    "ready": False, "unschedulable": False, "os_image": None, "kubelet_version": None}
    assert cluster.node_address(node) is None


def test_legacy_zone_label_and_address_fallbacks():
    assert cluster.zone_of({"failure-domain.beta.kubernetes.io/zone": "old"}) == "old"
    assert cluster.zone_of({"topology.kubernetes.io/zone": "new", "failure-domain.beta.kubernetes.io/zone": "old"}) \
        == "new"
    assert cluster.node_address({"addresses": {"ExternalIP": "1.2.3.4", "Hostname": "h"}}) == "1.2.3.4"


def test_vmi_summary_agent_guest_os_and_interfaces():
    vmi = cluster.summarize_vmi(VMI)
    assert vmi["agent_connected"] is True and vmi["ready"] is True
    assert vmi["guest_os"]["id"] == "fedora"
    assert vmi["interfaces"][0]["ip_addresses"] == ["10.0.2.2"]
    assert vmi["interfaces"][1]["ip_addresses"] == ["192.168.7.4"]
    assert (vmi["node"], vmi["phase"], vmi["labels"]) == ("n1", "Running", {"app": "web"})


@pytest.mark.parametrize("status,connected", [
    ({"conditions": [{"type": "AgentConnected", "status": "False"}]}, False),
    ({"conditions": [{"type": "AgentConnected", "status": "Unknown"}]}, False),
    ({"conditions": []}, False),
    ({}, False),
    (None, False),
])
def test_agent_connected_only_when_condition_is_true(status, connected):
    assert cluster.summarize_vmi({"metadata": {"name": "x"}, "status": status})["agent_connected"] is connected


def test_vmi_address_first_interface_with_one_or_the_named_network():
    vmi = cluster.summarize_vmi(VMI)
    assert cluster.vmi_address(vmi) == "10.0.2.2"
    assert cluster.vmi_address(vmi, "storage") == "192.168.7.4"
    assert cluster.vmi_address(vmi, "missing") is None
    vmi["interfaces"][0]["ip_addresses"] = []
    assert cluster.vmi_address(vmi) == "192.168.7.4"


def pages(items, expire_at=None):
    """A page function over items that hands out continue tokens like the apiserver (offset strings);
    expire_at makes that token answer 410 once, as an expired continue token does."""
    calls = []

    def fetch(limit, token):
        calls.append((limit, token))
        if token is not None and token == expire_at and not any(c[1] is None for c in calls[1:]):
            raise cluster.ApiException(status=410, reason="Gone")
        start = int(token or 0)
        chunk = items[start:start + limit]
        more = start + limit < len(items)
        return {"items": chunk, "metadata": {"continue": str(start + limit) if more else ""}}
    return fetch, calls


def test_paginate_follows_continue_tokens_until_none():
    fetch, calls = pages(list(range(7)))
    assert (cluster.paginate(fetch, 3)) == list(range(7))
    assert calls == [(3, None), (3, "3"), (3, "6")]


def test_paginate_single_page():
    fetch, calls = pages(list(range(2)))
    assert (cluster.paginate(fetch, 500)) == [0, 1]
    assert calls == [(500, None)]


def test_paginate_restarts_once_when_the_continue_token_expired():
    fetch, calls = pages(list(range(5)), expire_at="2")
    assert cluster.paginate(fetch, 2) == list(range(5))
    assert calls[:3] == [(2, None), (2, "2"), (2, None)]


def test_paginate_does_not_swallow_other_errors():
    def fetch(limit, token):
        raise cluster.ApiException(status=403, reason="Forbidden")
    with pytest.raises(cluster.ApiException):
        (cluster.paginate(fetch, 10))
