"""unimon.stack.cluster on the lab: real Node objects and KubeVirt VMIs (the lab's KubeVirt CRDs from
lab/kubevirt_crds.py) read by `ansible-inventory`; groups, hostvars, constructed features, caching and
pagination, with every API request counted by a reverse proxy in front of the lab apiserver
(lab/api_counter.py; the audit log records writes only).

Only this test's objects are read (label unimon-test=inventory on nodes and VMIs). Its nodes carry no
kwok annotation (kwok leaves them alone) and no kubernetes.io/os label (the stack's DaemonSets select
kubernetes.io/os=linux, so no pod lands on them). VMI status is written the way KubeVirt's own
controllers write it: VirtualMachineInstance has no status subresource upstream, so the test patches
the object; Node status goes through the nodes/status subresource.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "lab"))
from api_counter import ApiCounter  # noqa: E402  pylint: disable=wrong-import-position
from lab_fixtures import wait_until  # noqa: E402  pylint: disable=wrong-import-position

BIN = Path(sys.executable).parent
SEL = {"unimon-test": "inventory"}
NS1, NS2 = "unimon-inv-a", "unimon-inv-b"
NODES = [
    # name, roles, zone, InternalIP
    ("unimon-inv-cp", ["control-plane"], "zone-x", "10.251.0.1"),
    ("unimon-inv-w1", ["worker"], "zone-x", "10.251.0.2"),
    ("unimon-inv-w2", ["worker", "infra"], "zone-y", "10.251.0.3"),
]
VMIS = [
    # namespace, name, node, agent, interfaces, guest os, labels
    (NS1, "web-1", "unimon-inv-w1", "True",
     [{"name": "default", "ipAddress": "10.252.0.10", "ipAddresses": ["10.252.0.10"]},
      {"name": "storage", "ipAddress": "192.168.50.10", "ipAddresses": ["192.168.50.10"]}],
     {"id": "fedora", "name": "Fedora Linux", "prettyName": "Fedora Linux 41 (Cloud Edition)", "version": "41",
      "kernelRelease": "6.11.4-301.fc41.x86_64"}, {"app": "web"}),
    (NS1, "db-1", "unimon-inv-w2", "False",
     [{"name": "default", "ipAddress": "10.252.0.11", "ipAddresses": ["10.252.0.11"]}], None, {"app": "db"}),
    (NS2, "batch-1", "unimon-inv-cp", None, [], None, {"app": "batch"}),
]


def unwrap(value):
    """ansible-inventory marks plugin strings as unsafe ({"__ansible_unsafe": ...}); read through it."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


def vmi_body(ns, name, labels):
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
            "metadata": {"name": name, "namespace": ns, "labels": {**SEL, **labels}},
            "spec": {"domain": {"devices": {"interfaces": [{"name": "default", "masquerade": {}}]},
                                "resources": {"requests": {"memory": "128Mi"}}},
                     "networks": [{"name": "default", "pod": {}}]}}


@pytest.fixture(scope="module")
def objects(api, core):
    custom = client.CustomObjectsApi(api)
    cleanup()  # leftovers of an interrupted run
    for ns in (NS1, NS2):
        core.create_namespace({"metadata": {"name": ns, "labels": SEL}})
    for name, roles, zone, ip in NODES:
        labels = {**SEL, "topology.kubernetes.io/zone": zone, **{f"node-role.kubernetes.io/{r}": "" for r in roles}}
        core.create_node({"metadata": {"name": name, "labels": labels}, "spec": {}})
        core.patch_node_status(name, {"status": {
            "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
            "nodeInfo": {"osImage": "Lab Linux", "kubeletVersion": "v1.34.4", "machineID": "", "systemUUID": "",
                         "bootID": "", "kernelVersion": "", "containerRuntimeVersion": "", "kubeProxyVersion": "",
                         "operatingSystem": "linux", "architecture": "amd64"}}})
    for ns, name, node, agent, interfaces, guest, labels in VMIS:
        custom.create_namespaced_custom_object("kubevirt.io", "v1", ns, "virtualmachineinstances",
                                               vmi_body(ns, name, labels))
        conditions = [{"type": "Ready", "status": "True"}]
        if agent:
            conditions.append({"type": "AgentConnected", "status": agent})
        status = {"phase": "Running", "nodeName": node, "conditions": conditions, "interfaces": interfaces}
        if guest:
            status["guestOSInfo"] = guest
        custom.patch_namespaced_custom_object("kubevirt.io", "v1", ns, "virtualmachineinstances", name,
                                              {"status": status})
    yield custom
    cleanup()


def cleanup():
    from kubernetes import config
    env = json.loads(subprocess.run([sys.executable, str(REPO / "lab" / "labctl.py"), "env"], capture_output=True,
                                    text=True, check=True).stdout)
    core = client.CoreV1Api(config.new_client_from_config(config_file=env["kubeconfig"]))
    for node in NODES:
        try:
            core.delete_node(node[0])
        except ApiException as exc:
            if exc.status != 404:
                raise
    for ns in (NS1, NS2):
        try:
            core.delete_namespace(ns)
        except ApiException as exc:
            if exc.status != 404:
                raise

    def absent(ns: str) -> bool:
        try:
            core.read_namespace(ns)
        except ApiException as exc:
            return exc.status == 404
        return False

    def gone() -> bool:
        return absent(NS1) and absent(NS2)
    wait_until(f"namespaces {NS1} and {NS2} to be deleted", gone, 120)


def inventory(tmp_path: Path, config: dict, *args: str, name: str = "test.cluster.yml") -> dict:
    path = tmp_path / name
    path.write_text(json.dumps(config))
    env = {**os.environ, "ANSIBLE_INVENTORY_UNPARSED_FAILED": "1", "ANSIBLE_INVENTORY_ENABLED": "unimon.stack.cluster"}
    proc = subprocess.run([str(BIN / "ansible-inventory"), "-i", str(path), "--list", *args], capture_output=True,
                          text=True, env=env, check=False, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return unwrap(json.loads(proc.stdout))


def base(kubeconfig: str, **extra) -> dict:
    return {"plugin": "unimon.stack.cluster", "connections": [{"name": "lab", "kubeconfig": kubeconfig}],
            "node_label_selector": "unimon-test=inventory", "vmi_label_selector": "unimon-test=inventory", **extra}


def hosts(inv: dict, group: str) -> set[str]:
    return set(inv.get(group, {}).get("hosts", []))


def test_groups_by_kind_role_zone_namespace_and_agent(objects, lab, tmp_path):
    inv = inventory(tmp_path, base(lab["kubeconfig"]))
    assert hosts(inv, "nodes") == {"unimon-inv-cp", "unimon-inv-w1", "unimon-inv-w2"}
    assert hosts(inv, "vmis") == {"unimon-inv-a-web-1", "unimon-inv-a-db-1", "unimon-inv-b-batch-1"}
    assert hosts(inv, "cluster_lab") == hosts(inv, "nodes") | hosts(inv, "vmis")
    assert hosts(inv, "node_role_control_plane") == {"unimon-inv-cp"}
    assert hosts(inv, "node_role_worker") == {"unimon-inv-w1", "unimon-inv-w2"}
    assert hosts(inv, "node_role_infra") == {"unimon-inv-w2"}
    # a VMI is in its node's zone
    assert hosts(inv, "zone_zone_x") == {"unimon-inv-cp", "unimon-inv-w1", "unimon-inv-a-web-1", "unimon-inv-b-batch-1"}
    assert hosts(inv, "zone_zone_y") == {"unimon-inv-w2", "unimon-inv-a-db-1"}
    assert hosts(inv, "namespace_unimon_inv_a") == {"unimon-inv-a-web-1", "unimon-inv-a-db-1"}
    assert hosts(inv, "namespace_unimon_inv_b") == {"unimon-inv-b-batch-1"}
    assert hosts(inv, "agent_connected") == {"unimon-inv-a-web-1"}
    assert hosts(inv, "agent_disconnected") == {"unimon-inv-a-db-1", "unimon-inv-b-batch-1"}
    assert "lab-node-1" not in inv["_meta"]["hostvars"]  # the selector kept the lab's own nodes out


def test_hostvars_addresses_guest_os_and_labels(objects, lab, tmp_path):
    hv = inventory(tmp_path, base(lab["kubeconfig"]))["_meta"]["hostvars"]
    web = hv["unimon-inv-a-web-1"]
    assert web["ansible_host"] == "10.252.0.10"
    assert web["vmi_guest_os"]["prettyName"] == "Fedora Linux 41 (Cloud Edition)"
    assert web["vmi_guest_os"]["kernelRelease"] == "6.11.4-301.fc41.x86_64"
    assert web["vmi_labels"] == {**SEL, "app": "web"}
    assert (web["vmi_node"], web["vmi_zone"], web["vmi_phase"]) == ("unimon-inv-w1", "zone-x", "Running")
    assert web["vmi_agent_connected"] is True and web["unimon_kind"] == "vmi" and web["unimon_cluster"] == "lab"
    assert [i["name"] for i in web["vmi_interfaces"]] == ["default", "storage"]
    assert "ansible_host" not in hv["unimon-inv-b-batch-1"]  # no interface reported yet
    assert hv["unimon-inv-b-batch-1"]["vmi_guest_os"] == {}
    w2 = hv["unimon-inv-w2"]
    assert w2["ansible_host"] == "10.251.0.3"
    assert w2["node_roles"] == ["infra", "worker"] and w2["node_zone"] == "zone-y"
    assert w2["node_os_image"] == "Lab Linux" and w2["unimon_kind"] == "node"


def test_constructed_compose_groups_keyed_groups_label_groups_and_network(objects, lab, tmp_path):
    inv = inventory(tmp_path, base(
        lab["kubeconfig"], network_name="storage", label_groups=True,
        compose={"guest_family": "vmi_guest_os.id | default('unknown')"},
        groups={"fedora_guests": "vmi_guest_os.id | default('') == 'fedora'"},
        keyed_groups=[{"key": "vmi_labels.app | default(omit)", "prefix": "app"}],
        host_format="{cluster}-{namespace}-{name}"))
    hv = inv["_meta"]["hostvars"]
    assert hv["lab-unimon-inv-a-web-1"]["ansible_host"] == "192.168.50.10"   # the named network
    assert "ansible_host" not in hv["lab-unimon-inv-a-db-1"]                # has no "storage" interface
    assert hv["lab-unimon-inv-a-web-1"]["guest_family"] == "fedora"
    assert hv["lab-unimon-inv-a-db-1"]["guest_family"] == "unknown"
    assert hosts(inv, "fedora_guests") == {"lab-unimon-inv-a-web-1"}
    assert hosts(inv, "app_web") == {"lab-unimon-inv-a-web-1"} and hosts(inv, "app_batch") == {"lab-unimon-inv-b-batch-1"}
    assert hosts(inv, "label_app_db") == {"lab-unimon-inv-a-db-1"}
    assert hosts(inv, "label_unimon_test_inventory") == hosts(inv, "vmis")


def test_cluster_wide_paginated_lists_and_cache(objects, tmp_path):
    cache_dir = tmp_path / "cache"
    with ApiCounter() as counter:
        kubeconfig = str(counter.kubeconfig(tmp_path / "kc"))
        config = base(kubeconfig, limit=1, cache=True, cache_plugin="ansible.builtin.jsonfile",
                      cache_connection=str(cache_dir), cache_timeout=600)
        first = inventory(tmp_path, config)
        vmi_calls = [r for r in counter.requests if r["path"].endswith("/virtualmachineinstances")]
        node_calls = [r for r in counter.requests if r["path"] == "/api/v1/nodes"]
        # one cluster-wide list, one page per object at limit=1, each later page with a continue token
        assert {r["path"] for r in vmi_calls} == {"/apis/kubevirt.io/v1/virtualmachineinstances"}
        assert len(vmi_calls) == len(VMIS) and len(node_calls) == len(NODES)
        assert all("continue=" in r["query"] for r in vmi_calls[1:] + node_calls[1:])
        assert all(r["method"] == "GET" for r in counter.requests)
        assert len(counter.requests) == len(VMIS) + len(NODES)
        assert len(hosts(first, "vmis")) == len(VMIS) and len(hosts(first, "nodes")) == len(NODES)

        counter.reset()
        second = inventory(tmp_path, config)
        assert counter.requests == []          # served from the cache
        assert second == first

        flushed = inventory(tmp_path, config, "--flush-cache")
        assert len(counter.requests) == len(VMIS) + len(NODES)
        assert flushed == first


def test_namespaces_option_lists_per_named_namespace(objects, tmp_path):
    with ApiCounter() as counter:
        config = base(str(counter.kubeconfig(tmp_path / "kc")))
        config["connections"][0]["namespaces"] = [NS2]
        inv = inventory(tmp_path, config)
        assert hosts(inv, "vmis") == {"unimon-inv-b-batch-1"}
        vmi_paths = [r["path"] for r in counter.requests if "virtualmachineinstances" in r["path"]]
        assert vmi_paths == [f"/apis/kubevirt.io/v1/namespaces/{NS2}/virtualmachineinstances"]


def test_two_connections_in_one_inventory(objects, lab, tmp_path):
    with ApiCounter() as counter:
        config = base(lab["kubeconfig"], host_format="{cluster}-{namespace}-{name}", node_host_format="{cluster}-{name}")
        config["connections"] = [{"name": "east", "kubeconfig": lab["kubeconfig"]},
                                 {"name": "west", "kubeconfig": str(counter.kubeconfig(tmp_path / "kc"))}]
        inv = inventory(tmp_path, config)
        assert hosts(inv, "cluster_east") == {h.replace("west-", "east-", 1) for h in hosts(inv, "cluster_west")}
        assert len(hosts(inv, "cluster_west")) == len(NODES) + len(VMIS)
        assert inv["_meta"]["hostvars"]["west-unimon-inv-cp"]["unimon_cluster"] == "west"
        assert len(counter.requests) == 2


def test_unreadable_kubeconfig_fails_with_its_path(tmp_path):
    path = tmp_path / "bad.cluster.yml"
    path.write_text(json.dumps({"plugin": "unimon.stack.cluster",
                                "connections": [{"kubeconfig": str(tmp_path / "missing")}]}))
    env = {**os.environ, "ANSIBLE_INVENTORY_UNPARSED_FAILED": "1", "ANSIBLE_INVENTORY_ENABLED": "unimon.stack.cluster"}
    proc = subprocess.run([str(BIN / "ansible-inventory"), "-i", str(path), "--list"], capture_output=True, text=True,
                          env=env, check=False)
    assert proc.returncode != 0 and str(tmp_path / "missing") in proc.stderr


def test_kubevirt_crds_match_upstream_shape(objects, lab):
    """Printer columns and subresources as KubeVirt declares them: VMI without a status subresource."""
    kubectl = [lab["kubectl"], "--kubeconfig", lab["kubeconfig"]]
    out = subprocess.run([*kubectl, "get", "vmi", "-n", NS1, "-o", "wide"], capture_output=True, text=True, check=True)
    header, *rows = out.stdout.splitlines()
    assert header.split() == ["NAME", "AGE", "PHASE", "IP", "NODENAME", "READY", "LIVE-MIGRATABLE", "PAUSED"]
    web = next(r.split() for r in rows if r.startswith("web-1"))
    assert web[2:6] == ["Running", "10.252.0.10", "unimon-inv-w1", "True"]
    ext = client.ApiextensionsV1Api(objects.api_client)
    subresources = {c.metadata.name: (c.spec.versions[0].subresources and c.spec.versions[0].subresources.status)
                    for c in ext.list_custom_resource_definition().items if c.spec.group == "kubevirt.io"}
    assert subresources["virtualmachineinstances.kubevirt.io"] is None
    for name in ("virtualmachines", "virtualmachineinstancemigrations", "kubevirts"):
        assert subresources[f"{name}.kubevirt.io"] == {}
    # typed fields are validated: a string where the schema says integer is refused
    bad = vmi_body(NS1, "bad-1", {})
    bad["spec"]["domain"]["cpu"] = {"cores": "two"}
    with pytest.raises(ApiException) as err:
        objects.create_namespaced_custom_object("kubevirt.io", "v1", NS1, "virtualmachineinstances", bad)
    assert err.value.status == 422 and "spec.domain.cpu.cores" in err.value.body


@pytest.mark.parametrize("connections,message", [
    ([{"kubecofig": "/x"}], "connections[0] has unknown keys kubecofig"),
    (["/root/.kube/config"], "connections[0] must be a mapping"),
    ([{"namespaces": "default"}], "connections[0].namespaces must be a list"),
])
def test_bad_connections_are_refused_before_any_request(tmp_path, connections, message):
    path = tmp_path / "bad.cluster.yml"
    path.write_text(json.dumps({"plugin": "unimon.stack.cluster", "connections": connections}))
    env = {**os.environ, "ANSIBLE_INVENTORY_UNPARSED_FAILED": "1", "ANSIBLE_INVENTORY_ENABLED": "unimon.stack.cluster"}
    proc = subprocess.run([str(BIN / "ansible-inventory"), "-i", str(path), "--list"], capture_output=True, text=True,
                          env=env, check=False)
    assert proc.returncode != 0 and message in " ".join(proc.stderr.split()), proc.stderr[-2000:]
