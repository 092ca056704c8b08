"""The lab itself: a real control plane whose behaviour our roles rely on."""
from __future__ import annotations

import json
import time
import urllib.request
import uuid

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from lab_fixtures import wait_until

NS = "lab-tests"


def http_json(url: str, data: bytes | None = None, content_type: str = "application/json", timeout: float = 10):
    req = urllib.request.Request(url, data=data, headers={"Content-Type": content_type})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


def ensure(create, *args):
    """Create an object; one left by an earlier session is fine (the lab persists)."""
    try:
        create(*args)
    except ApiException as err:
        if err.status != 409:
            raise


def hostnet_daemonset(name: str, labels: dict, ports=None) -> client.V1DaemonSet:
    """A DaemonSet on every kwok node in the host network: its pod IP is the node's netns IP (the real nodes,
    where its made-up image cannot run, are left out)."""
    return client.V1DaemonSet(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1DaemonSetSpec(
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(host_network=True, tolerations=[client.V1Toleration(operator="Exists")],
                                      node_selector={"type": "kwok"},
                                      containers=[client.V1Container(name=name, image=f"example.invalid/{name}:1",
                                                                     ports=ports)]))))


@pytest.fixture(scope="module")
def namespace(core):
    ensure(core.create_namespace, client.V1Namespace(metadata=client.V1ObjectMeta(
        name=NS, labels={"pod-security.kubernetes.io/enforce": "privileged"})))
    return NS


def test_nodes_ready(lab, core):
    def ready():
        nodes = core.list_node().items
        return {n.metadata.name for n in nodes for c in n.status.conditions or []
                if c.type == "Ready" and c.status == "True"}
    names = wait_until("nodes Ready", lambda: ready() >= {n["name"] for n in lab["nodes"]} and ready())
    assert {n["name"] for n in lab["nodes"]} <= names
    ips = {n.metadata.name: [a.address for a in n.status.addresses if a.type == "InternalIP"]
           for n in core.list_node().items}
    for node in lab["nodes"]:
        assert ips[node["name"]] == [node["ip"]], "kwok must keep the node address of its network namespace"


def test_server_version_is_stamped(api):
    info = client.VersionApi(api).get_code()
    assert info.git_version.startswith("v1.") and info.git_version != "v0.0.0"


def test_hostnetwork_daemonset_becomes_ready_on_node_addresses(lab, api, namespace):
    apps = client.AppsV1Api(api)
    core = client.CoreV1Api(api)
    ensure(apps.create_namespaced_daemon_set, namespace,
           hostnet_daemonset("lab-ds-probe", {"app.kubernetes.io/name": "lab-ds-probe"}))

    def ready():
        st = apps.read_namespaced_daemon_set_status("lab-ds-probe", namespace).status
        return st.desired_number_scheduled == len(lab["nodes"]) and st.number_ready == st.desired_number_scheduled
    wait_until("DaemonSet desired == ready", ready, 90)
    pods = core.list_namespaced_pod(namespace, label_selector="app.kubernetes.io/name=lab-ds-probe").items
    by_node = {p.spec.node_name: p.status.pod_ip for p in pods}
    assert by_node == {n["name"]: n["ip"] for n in lab["nodes"]}


def test_crd_applied_server_side_becomes_established_and_accepts_a_resource(api, namespace):
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "probes.lab.unimon.io"},
        "spec": {"group": "lab.unimon.io", "scope": "Namespaced",
                 "names": {"plural": "probes", "singular": "probe", "kind": "Probe"},
                 "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                     "type": "object", "properties": {"spec": {"type": "object", "properties": {
                         "target": {"type": "string"}}, "required": ["target"]}}}}}]},
    }
    api.call_api("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/probes.lab.unimon.io", "PATCH",
                 query_params=[("fieldManager", "lab-tests"), ("force", "true")], body=crd,
                 header_params={"Content-Type": "application/apply-patch+yaml"}, _preload_content=False)
    ext = client.ApiextensionsV1Api(api)

    def established():
        conds = ext.read_custom_resource_definition("probes.lab.unimon.io").status.conditions or []
        return any(c.type == "Established" and c.status == "True" for c in conds)
    wait_until("CRD Established", established, 30)
    custom = client.CustomObjectsApi(api)
    obj = {"apiVersion": "lab.unimon.io/v1", "kind": "Probe", "metadata": {"name": f"p-{uuid.uuid4().hex[:6]}"},
           "spec": {"target": "node-exporter"}}
    created = custom.create_namespaced_custom_object("lab.unimon.io", "v1", namespace, "probes", obj)
    assert created["spec"]["target"] == "node-exporter"
    with pytest.raises(ApiException) as bad:  # the schema is enforced: a real apiserver, not a stub
        custom.create_namespaced_custom_object("lab.unimon.io", "v1", namespace, "probes",
                                               {**obj, "metadata": {"name": "bad"}, "spec": {}})
    assert bad.value.status == 422


def test_subject_access_review_allows_and_denies(api, namespace):
    core = client.CoreV1Api(api)
    ensure(core.create_namespaced_service_account, namespace,
           client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="sar")))
    rbac = client.RbacAuthorizationV1Api(api)
    role = client.V1Role(metadata=client.V1ObjectMeta(name="read-pods"),
                         rules=[client.V1PolicyRule(api_groups=[""], resources=["pods"], verbs=["get", "list"])])
    binding = client.V1RoleBinding(metadata=client.V1ObjectMeta(name="read-pods"),
                                   role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role",
                                                             name="read-pods"),
                                   subjects=[client.RbacV1Subject(kind="ServiceAccount", name="sar", namespace=namespace)])
    ensure(rbac.create_namespaced_role, namespace, role)
    ensure(rbac.create_namespaced_role_binding, namespace, binding)
    authz = client.AuthorizationV1Api(api)

    def review(verb, resource, subresource=None):
        attrs = client.V1ResourceAttributes(namespace=namespace, verb=verb, resource=resource, subresource=subresource)
        sar = client.V1SubjectAccessReview(spec=client.V1SubjectAccessReviewSpec(
            user=f"system:serviceaccount:{namespace}:sar", resource_attributes=attrs))
        return authz.create_subject_access_review(sar).status.allowed
    assert wait_until("RBAC to allow get pods", lambda: review("get", "pods"), 10)
    assert review("delete", "pods") is False
    assert review("get", "nodes", "proxy") is False


def test_token_request_token_authenticates(lab, api, namespace):
    core = client.CoreV1Api(api)
    ensure(core.create_namespaced_service_account, namespace,
           client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="tok")))
    tr = core.create_namespaced_service_account_token(
        "tok", namespace, client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(
            audiences=[], expiration_seconds=600)))
    token = tr.status.token
    assert token.count(".") == 2
    cfg = client.Configuration()
    cfg.host = lab["api"]
    cfg.ssl_ca_cert = lab["ca"]
    cfg.api_key = {"authorization": "Bearer " + token}
    who = client.AuthenticationV1Api(client.ApiClient(cfg)).create_self_subject_review(
        client.V1SelfSubjectReview())
    assert who.status.user_info.username == f"system:serviceaccount:{namespace}:tok"
    cfg.api_key = {"authorization": "Bearer not-a-token"}
    with pytest.raises(ApiException) as denied:
        client.CoreV1Api(client.ApiClient(cfg)).list_namespace()
    assert denied.value.status == 401


def test_audit_log_records_writes(lab, core, namespace):
    name = f"audit-{uuid.uuid4().hex[:8]}"
    core.create_namespaced_config_map(namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name)))

    def logged():
        with open(lab["audit_log"], encoding="utf-8") as fh:
            for line in fh:
                ev = json.loads(line)
                ref = ev.get("objectRef", {})
                if ev["verb"] == "create" and ref.get("resource") == "configmaps" and ref.get("name") == name:
                    return ev
        return None
    ev = wait_until("audit event for the ConfigMap create", logged, 20)
    assert ev["user"]["username"] == "unimon-lab-admin"
    assert ev["stage"] == "ResponseComplete"


def test_prometheus_scrapes_node_exporter_in_node_netns_via_kubernetes_sd(lab, api, namespace):
    apps = client.AppsV1Api(api)
    core = client.CoreV1Api(api)
    labels = {"app.kubernetes.io/name": "node-exporter", "app.kubernetes.io/part-of": "lab-tests"}
    ds = hostnet_daemonset("lab-node-exporter", labels, [client.V1ContainerPort(name="metrics", container_port=9100)])
    svc = client.V1Service(metadata=client.V1ObjectMeta(name="lab-node-exporter", labels=labels),
                           spec=client.V1ServiceSpec(cluster_ip="None", selector=labels, ports=[
                               client.V1ServicePort(name="metrics", port=9100, target_port="metrics")]))
    ensure(apps.create_namespaced_daemon_set, namespace, ds)
    ensure(core.create_namespaced_service, namespace, svc)
    want = {f"{n['ip']}:9100" for n in lab["nodes"]}

    def scraped():
        res = http_json(lab["prometheus"] + '/api/v1/query?query=up%7Bjob%3D%22lab-node-exporter%22%7D')
        up = {r["metric"]["instance"]: r["value"][1] for r in res["data"]["result"]}
        return up if want <= {i for i, v in up.items() if v == "1"} else None
    up = wait_until("Prometheus to scrape both node-exporters through EndpointSlices", scraped, 90, 2)
    assert all(up[i] == "1" for i in want)
    res = http_json(lab["prometheus"] + "/api/v1/query?query=count%20by%20(node)(node_uname_info)")
    assert {r["metric"].get("node") for r in res["data"]["result"]} >= {n["name"] for n in lab["nodes"]}


def test_elasticsearch_accepts_bulk_and_counts(lab):
    index = f"lab-test-{uuid.uuid4().hex[:8]}"
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    lines = []
    for i in range(5):
        lines.append(json.dumps({"index": {"_index": index}}))
        lines.append(json.dumps({"@timestamp": now, "message": f"line {i}", "kubernetes": {"namespace_name": "lab"}}))
    res = http_json(lab["elasticsearch"] + "/_bulk?refresh=true", ("\n".join(lines) + "\n").encode(),
                    "application/x-ndjson")
    assert res["errors"] is False and len(res["items"]) == 5
    count = http_json(lab["elasticsearch"] + f"/{index}/_count")
    assert count["count"] == 5
    hits = http_json(lab["elasticsearch"] + f"/{index}/_search",
                     json.dumps({"query": {"match": {"message": "line 3"}}}).encode())
    assert hits["hits"]["hits"][0]["_source"]["message"] == "line 3"
