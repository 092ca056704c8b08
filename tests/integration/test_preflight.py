"""preflight on the lab: each cluster shape is built in the lab API server (kubeadm-like static pods,
a kube-proxy DaemonSet and its config, a Cilium config, CoreDNS's Service, KubeVirt's CRD and CR, nodes
reporting containerd, CRI-O or Docker, a served metrics.k8s.io, operator CRDs of other versions, a default
StorageClass, Pod Security labels) and the facts, the decisions and what the prometheus role makes of them
are asserted. A user with too few permissions is refused in preflight, listing what is missing, before
any write. Every object made here is removed again; shared objects changed for a shape are restored.

Stand-ins, and why: the KubeVirt CRD is a minimal one made here (the real CRDs come from kubevirt.io Go
modules, which the module proxy refuses with 403); metrics.k8s.io is served by a small local HTTPS server
behind a real APIService (the real metrics-server is tests/integration/test_metrics_server.py's), so the API
server's own availability check decides whether it is Available."""
from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

import real_nodes
from lab_fixtures import REPO, PlaybookRun, wait_until

NS = "preflight-test"
PLAY = REPO / "tests" / "integration" / "playbooks" / "preflight.yml"
LABELS = {"app.kubernetes.io/part-of": "unimon-tests", "unimon.io/test": "preflight"}


@pytest.fixture(scope="module")
def ns(core):
    """Our own namespace, labelled baseline, so the Pod Security report has something to see."""
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(
        name=NS, labels={**LABELS, "pod-security.kubernetes.io/enforce": "baseline"})))
    yield NS
    core.delete_namespace(NS)
    wait_until(f"namespace {NS} gone", lambda: _gone(lambda: core.read_namespace(NS)), 90)


def _gone(read) -> bool:
    try:
        read()
    except ApiException as err:
        return err.status == 404
    return False


def _ignore_404(call, *args, **kwargs):
    try:
        call(*args, **kwargs)
    except ApiException as err:
        if err.status != 404:
            raise


@pytest.fixture(scope="module")
def detect(lab, ns, tmp_path_factory):
    """detect(*ansible args) runs preflight alone and returns (detected, prometheus components, run)."""
    bindir = os.path.dirname(sys.executable)
    work = tmp_path_factory.mktemp("preflight")

    def _run(*args: str, expect_ok: bool = True):
        out = work / f"{uuid.uuid4().hex}.json"
        cmd = [os.path.join(bindir, "ansible-playbook"), "-i", str(REPO / "lab" / "inventory.yml"), str(PLAY),
               "-e", f"out={out}", "-e", f"unimon_namespace={ns}", *args]
        env = {**os.environ, "ANSIBLE_NOCOLOR": "1"}
        run = PlaybookRun(subprocess.run(cmd, capture_output=True, text=True, check=False, env=env, timeout=300))
        if not expect_ok:
            return None, None, run
        assert run.rc == 0, run.out[-3000:]
        data = json.loads(out.read_text())
        return data["detected"], data["prometheus"], run
    return _run


def table(run: PlaybookRun) -> dict:
    """The decision table's rows by their first column."""
    rows = {}
    for line in run.out.splitlines():
        line = line.strip().rstrip(",").strip('"')
        if line.count(" | ") == 3:
            what, detected, decided, override = line.split(" | ")
            rows[what] = {"detected": detected, "decided": decided, "override": override}
    return rows


def test_lab_shape_control_plane_hidden_no_proxy_no_dns(detect, lab, api):
    detected, prom, run = detect()
    version = client.VersionApi(api).get_code()
    assert detected["kubernetes_version"] == version.git_version
    assert all(not c["visible"] for c in detected["control_plane"].values())
    assert detected["kube_proxy"]["state"] == "absent"
    assert not detected["coredns_scrapable"]
    assert prom == {"kubelet": True, "kube-apiserver": True, "kube-scheduler": False,
                    "kube-controller-manager": False, "kube-proxy": False, "coredns": False, "etcd": False}
    assert set(detected["node_runtimes"]) >= {n["name"] for n in lab["nodes"]}
    assert detected["namespaces"][NS] == {"exists": True, "enforce": "baseline", "managed_by": ""}
    rows = table(run)
    assert rows["kube-scheduler ServiceMonitor"] == {
        "detected": "no kube-scheduler pod in kube-system (managed or host process)", "decided": "false",
        "override": "prometheus_scrape_scheduler"}
    assert rows[f"Pod Security of namespace {NS}"]["detected"] == "enforce=baseline"
    assert rows[f"Pod Security of namespace {NS}"]["decided"] == "enforce=privileged"
    assert "permission reviews passed" in run.out
    ips = {a.address for n in client.CoreV1Api(api).list_node().items for a in n.status.addresses or []
           if a.type == "InternalIP"}
    assert detected["node_cidrs"] == sorted(f"{ip}/32" for ip in ips) and ips
    assert rows["NetworkPolicy host-network sources"]["detected"] == f"{len(ips)} node InternalIP(s)"


def test_a_variable_you_set_wins_over_the_detection(detect):
    _detected, prom, run = detect("-e", "prometheus_scrape_scheduler=true", "-e", "prometheus_scrape_coredns=true")
    assert prom["kube-scheduler"] is True and prom["coredns"] is True
    assert prom["kube-controller-manager"] is False
    assert table(run)["kube-scheduler ServiceMonitor"]["decided"] == "true (set by you)"


def _static_pod(name: str, command: list[str], node: str) -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=f"{name}-preflight-test", namespace="kube-system",
                                     labels={**LABELS, "component": name, "tier": "control-plane"}),
        spec=client.V1PodSpec(node_name=node, host_network=True, priority_class_name="system-node-critical",
                              containers=[client.V1Container(name=name, image=f"registry.k8s.io/{name}:test",
                                                             command=command)]))


def test_kubeadm_static_pods(detect, core, lab, ns):
    node = lab["nodes"][0]["name"]
    pods = [
        _static_pod("kube-scheduler", ["kube-scheduler", "--bind-address=127.0.0.1", "--leader-elect=true"], node),
        _static_pod("kube-controller-manager", ["kube-controller-manager", "--bind-address=0.0.0.0"], node),
        _static_pod("etcd", ["etcd", "--listen-client-urls=https://127.0.0.1:2379,https://10.250.0.11:2379",
                             "--listen-metrics-urls=http://127.0.0.1:2381"], node),
    ]
    secret = client.V1Secret(metadata=client.V1ObjectMeta(name="etcd-client", namespace=ns, labels=LABELS),
                             string_data={"ca.crt": "x", "tls.crt": "x", "tls.key": "x"})
    try:
        for pod in pods:
            core.create_namespaced_pod("kube-system", pod)
        detected, prom, run = detect()
        cp = detected["control_plane"]
        assert cp["kube-scheduler"] == {"visible": True, "pods": 1, "address": "127.0.0.1", "reach": "localhost",
                                        "host_network": True}
        assert cp["kube-controller-manager"]["reach"] == "service"
        assert cp["etcd"]["reach"] == "service"
        assert detected["localhost_components"] == ["kube-scheduler"]
        assert prom["kube-scheduler"] is False and prom["kube-controller-manager"] is True
        # etcd is reachable, but the prometheus role has no client certificate for it yet.
        assert prom["etcd"] is False and not detected["etcd_client_secret_found"]
        assert "no etcd client Secret" in table(run)["etcd ServiceMonitor"]["detected"]
        core.create_namespaced_secret(ns, secret)
        detected, prom, _run = detect()
        assert detected["etcd_scrapable"] is True and prom["etcd"] is True
    finally:
        for pod in pods:
            _ignore_404(core.delete_namespaced_pod, pod.metadata.name, "kube-system", grace_period_seconds=0)
        _ignore_404(core.delete_namespaced_secret, "etcd-client", ns)


def test_kube_proxy_present_local_public_or_replaced_by_cilium(detect, api, core):
    apps = client.AppsV1Api(api)
    sel = {"k8s-app": "kube-proxy"}
    ds = client.V1DaemonSet(
        metadata=client.V1ObjectMeta(name="kube-proxy", namespace="kube-system", labels={**LABELS, **sel}),
        spec=client.V1DaemonSetSpec(
            selector=client.V1LabelSelector(match_labels=sel),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=sel),
                # A selector no node matches: the shape needs the DaemonSet, not its pods.
                spec=client.V1PodSpec(node_selector={"unimon.io/preflight-test": "none"}, containers=[
                    client.V1Container(name="kube-proxy", image="registry.k8s.io/kube-proxy:v1.34.4")]))))

    def config(address: str) -> client.V1ConfigMap:
        conf = yaml.safe_dump({"apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
                               "metricsBindAddress": address, "mode": "iptables"})
        return client.V1ConfigMap(metadata=client.V1ObjectMeta(name="kube-proxy", namespace="kube-system",
                                                               labels=LABELS), data={"config.conf": conf})
    try:
        apps.create_namespaced_daemon_set("kube-system", ds)
        core.create_namespaced_config_map("kube-system", config(""))
        detected, prom, _run = detect()
        assert detected["kube_proxy"] == {"state": "present", "replacement": "", "scrapable": False,
                                          "metrics_address": "127.0.0.1:10249"}
        assert "kube-proxy" in detected["localhost_components"] and prom["kube-proxy"] is False

        core.replace_namespaced_config_map("kube-proxy", "kube-system", config("0.0.0.0:10249"))
        detected, prom, run = detect()
        assert detected["kube_proxy"]["scrapable"] is True and prom["kube-proxy"] is True
        assert "kube-proxy" not in detected["localhost_components"]
        assert table(run)["kube-proxy ServiceMonitor"]["detected"] == "DaemonSet kube-proxy, metrics on 0.0.0.0:10249"

        apps.delete_namespaced_daemon_set("kube-proxy", "kube-system")
        core.delete_namespaced_config_map("kube-proxy", "kube-system")
        core.create_namespaced_config_map("kube-system", client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="cilium-config", namespace="kube-system", labels=LABELS),
            data={"kube-proxy-replacement": "true", "prometheus-serve-addr": ":9962"}))
        detected, prom, run = detect()
        assert detected["kube_proxy"]["state"] == "replaced" and detected["kube_proxy"]["replacement"] == "cilium"
        assert prom["kube-proxy"] is False and "kube-proxy" not in detected["localhost_components"]
        assert table(run)["kube-proxy ServiceMonitor"]["detected"] == "no kube-proxy; replaced by cilium"
    finally:
        _ignore_404(apps.delete_namespaced_daemon_set, "kube-proxy", "kube-system")
        _ignore_404(core.delete_namespaced_config_map, "kube-proxy", "kube-system")
        _ignore_404(core.delete_namespaced_config_map, "cilium-config", "kube-system")


def test_coredns_service_with_a_metrics_port(detect, core):
    svc = client.V1Service(
        metadata=client.V1ObjectMeta(name="kube-dns", namespace="kube-system", labels={**LABELS, "k8s-app": "kube-dns"}),
        spec=client.V1ServiceSpec(cluster_ip="None", selector={"k8s-app": "kube-dns"}, ports=[
            client.V1ServicePort(name="dns", port=53, protocol="UDP"),
            client.V1ServicePort(name="metrics", port=9153, protocol="TCP")]))
    try:
        core.create_namespaced_service("kube-system", svc)
        detected, prom, _run = detect()
        assert detected["coredns_scrapable"] is True and prom["coredns"] is True
    finally:
        _ignore_404(core.delete_namespaced_service, "kube-dns", "kube-system")


# The kwok nodes' runtimes are set here; the real nodes report their own containerd (a kubelet would put a
# patched value back), so "json" (docker everywhere) is left to tests/unit/test_cluster_facts.py.
@pytest.mark.parametrize("runtimes,log_format", [
    (["containerd://1.7.22", "cri-o://1.30.2"], "cri"),
    (["docker://24.0.7", "docker://24.0.7"], "mixed"),
    (["containerd://1.7.22", "docker://24.0.7"], "mixed"),
])
def test_node_runtimes_decide_the_log_format(detect, core, lab, runtimes, log_format):
    nodes = [n["name"] for n in lab["nodes"]]
    before = {n: core.read_node(n).status.node_info.container_runtime_version for n in nodes}

    def set_runtime(node: str, version: str):
        core.patch_node_status(node, {"status": {"nodeInfo": {"containerRuntimeVersion": version}}})
    try:
        for node, version in zip(nodes, runtimes):
            set_runtime(node, version)
        detected, _prom, run = detect()
        assert {n: detected["node_runtimes"][n] for n in nodes} == {
            n: v.split("://")[0] for n, v in zip(nodes, runtimes)}
        assert {detected["node_runtimes"][n] for n in real_nodes.NODES} == {"containerd"}
        assert detected["log_format"] == log_format
        assert table(run)["Fluentd container log parser"]["decided"] == log_format
    finally:
        for node, version in before.items():
            set_runtime(node, version)


def test_kubevirt_crd_and_cr(detect, api, ns):
    ext = client.ApiextensionsV1Api(api)
    custom = client.CustomObjectsApi(api)
    crd_name = "kubevirts.kubevirt.io"
    ours = False
    try:
        ext.read_custom_resource_definition(crd_name)
    except ApiException as err:
        assert err.status == 404
        ours = True
    try:
        if ours:
            detected, _prom, run = detect()
            assert detected["kubevirt"]["crd"] is False and detected["kubevirt_monitoring"] is False
            ext.create_custom_resource_definition({  # 409 if another test made it meanwhile: fails loudly
                "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                "metadata": {"name": crd_name, "labels": LABELS},
                "spec": {"group": "kubevirt.io", "scope": "Namespaced",
                         "names": {"plural": "kubevirts", "singular": "kubevirt", "kind": "KubeVirt", "listKind": "KubeVirtList"},
                         "versions": [{"name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
                                       "schema": {"openAPIV3Schema": {"type": "object",
                                                                      "x-kubernetes-preserve-unknown-fields": True}}}]}})
            wait_until("KubeVirt CRD established", lambda: any(
                c.type == "Established" and c.status == "True"
                for c in ext.read_custom_resource_definition(crd_name).status.conditions or []), 60)
            detected, _prom, run = detect()
            assert detected["kubevirt"]["crd"] is True and detected["kubevirt"]["installed"] is False
            assert table(run)["kubevirt_monitoring role"]["detected"] == "CRD kubevirts.kubevirt.io but no KubeVirt CR"
        custom.create_namespaced_custom_object("kubevirt.io", "v1", ns, "kubevirts", {
            "apiVersion": "kubevirt.io/v1", "kind": "KubeVirt", "metadata": {"name": "kubevirt", "labels": LABELS},
            "spec": {}})
        custom.patch_namespaced_custom_object_status("kubevirt.io", "v1", ns, "kubevirts", "kubevirt", {
            "status": {"observedKubeVirtVersion": "v1.6.2", "phase": "Deployed"}})
        detected, _prom, _run = detect()
        crs = custom.list_cluster_custom_object("kubevirt.io", "v1", "kubevirts")["items"]
        assert detected["kubevirt"]["installed"] is True and detected["kubevirt_monitoring"] is True
        if len(crs) == 1:
            assert detected["kubevirt"] == {"installed": True, "crd": True, "namespace": ns, "name": "kubevirt",
                                            "version": "v1.6.2", "phase": "Deployed"}
        else:  # another test's KubeVirt CR exists too: the first one listed is reported
            first = crs[0]
            assert detected["kubevirt"]["namespace"] == first["metadata"]["namespace"]
            assert detected["kubevirt"]["name"] == first["metadata"]["name"]
    finally:
        try:
            custom.delete_namespaced_custom_object("kubevirt.io", "v1", ns, "kubevirts", "kubevirt")
        except ApiException:
            pass
        if ours:
            _ignore_404(ext.delete_custom_resource_definition, crd_name)


class _MetricsAPI(BaseHTTPRequestHandler):
    """Answers discovery for metrics.k8s.io/v1beta1 the way metrics-server does."""

    def do_GET(self):  # noqa: N802 - http.server API
        bodies = {
            "/apis/metrics.k8s.io/v1beta1": {
                "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "metrics.k8s.io/v1beta1",
                "resources": [
                    {"name": "nodes", "singularName": "", "namespaced": False, "kind": "NodeMetrics", "verbs": ["get", "list"]},
                    {"name": "pods", "singularName": "", "namespaced": True, "kind": "PodMetrics", "verbs": ["get", "list"]}]},
            "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": [{
                "name": "metrics.k8s.io", "versions": [{"groupVersion": "metrics.k8s.io/v1beta1", "version": "v1beta1"}],
                "preferredVersion": {"groupVersion": "metrics.k8s.io/v1beta1", "version": "v1beta1"}}]},
        }
        body = bodies.get(self.path.split("?")[0])
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps(body or {}).encode())

    def log_message(self, *args):
        pass


def test_metrics_api_served_or_not(detect, api, core, ns, lab, tmp_path):
    """A real APIService; the API server's aggregator reaches the local server the way it reaches an extension
    API server's pod (the lab runs it with --enable-aggregator-routing: it dials the Service's endpoints): a
    Service without selector whose EndpointSlice names the lab host's bridge address. The API server marks
    it Available itself; someone else's APIService that serves means metrics_server is not needed."""
    reg = client.ApiregistrationV1Api(api)
    name = "v1beta1.metrics.k8s.io"
    try:
        reg.read_api_service(name)
        pytest.skip("the lab already serves metrics.k8s.io (another test's APIService); not touching it")
    except ApiException as err:
        assert err.status == 404
    detected, _prom, run = detect()
    assert detected["metrics_api_served"] is False and detected["metrics_server_needed"] is True
    host_ip = lab["host_ip"]  # the lab bridge's address on this machine
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "k", "-out", "c",
                    "-days", "1", "-subj", "/CN=metrics-stand-in", "-addext",
                    f"subjectAltName=DNS:metrics-stand-in.{ns}.svc,IP:{host_ip}"],
                   cwd=tmp_path, check=True, capture_output=True)
    srv = HTTPServer((host_ip, 0), _MetricsAPI)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "c", tmp_path / "k")
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    port = srv.server_address[1]
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    discovery = client.DiscoveryV1Api(api)
    try:
        core.create_namespaced_service(ns, client.V1Service(
            metadata=client.V1ObjectMeta(name="metrics-stand-in", labels=LABELS),
            spec=client.V1ServiceSpec(ports=[client.V1ServicePort(name="https", port=443, target_port=port)])))
        discovery.create_namespaced_endpoint_slice(ns, client.V1EndpointSlice(
            metadata=client.V1ObjectMeta(name="metrics-stand-in", labels={
                **LABELS, "kubernetes.io/service-name": "metrics-stand-in",
                "endpointslice.kubernetes.io/managed-by": "preflight-test"}),
            address_type="IPv4", ports=[client.DiscoveryV1EndpointPort(name="https", port=port, protocol="TCP")],
            endpoints=[client.V1Endpoint(addresses=[host_ip], conditions=client.V1EndpointConditions(ready=True))]))
        reg.create_api_service(client.V1APIService(
            metadata=client.V1ObjectMeta(name=name, labels=LABELS),
            spec=client.V1APIServiceSpec(group="metrics.k8s.io", version="v1beta1", group_priority_minimum=100,
                                         version_priority=100, insecure_skip_tls_verify=True,
                                         service=client.ApiregistrationV1ServiceReference(
                                             namespace=ns, name="metrics-stand-in", port=443))))

        def available():
            conds = reg.read_api_service(name).status.conditions or []
            return any(c.type == "Available" and c.status == "True" for c in conds)
        wait_until("APIService v1beta1.metrics.k8s.io Available", available, 60, 1)
        detected, _prom, run = detect()
        assert detected["metrics_api_served"] is True and detected["metrics_server_needed"] is False
        assert detected["metrics_api_ours"] is False
        assert detected["metrics_api_backend"] == f"{ns}/metrics-stand-in"
        assert table(run)["metrics_server role"]["detected"] == (
            f"APIService v1beta1.metrics.k8s.io Available, served by {ns}/metrics-stand-in")
        assert table(run)["metrics_server role"]["decided"].startswith("false")
    finally:
        _ignore_404(reg.delete_api_service, name)
        _ignore_404(discovery.delete_namespaced_endpoint_slice, "metrics-stand-in", ns)
        _ignore_404(core.delete_namespaced_service, "metrics-stand-in", ns)
        srv.shutdown()


@pytest.mark.parametrize("version,action", [("0.80.1", "upgrade"), ("0.99.0", "newer-in-cluster")])
def test_operator_crd_versions(detect, api, version, action):
    ext = client.ApiextensionsV1Api(api)
    crd = "prometheuses.monitoring.coreos.com"
    try:
        before = ext.read_custom_resource_definition(crd).metadata.annotations or {}
    except ApiException as err:
        assert err.status == 404
        detected, _prom, _run = detect()
        assert detected["prometheus_operator_crds"] == {"present": False, "version": "", "managed_by": "",
                                                        "action": "install"}
        return
    key = "operator.prometheus.io/version"
    try:
        ext.patch_custom_resource_definition(crd, {"metadata": {"annotations": {key: version}}})
        detected, _prom, run = detect()
        assert detected["prometheus_operator_crds"]["version"] == version
        assert detected["prometheus_operator_crds"]["action"] == action
        assert table(run)["Prometheus Operator CRDs"]["decided"].startswith(action + " v")
    finally:
        ext.patch_custom_resource_definition(crd, {"metadata": {"annotations": {key: before.get(key)}}})


def test_default_storage_class(detect, api):
    storage = client.StorageV1Api(api)
    name = "preflight-test-default"
    try:
        storage.create_storage_class(client.V1StorageClass(
            metadata=client.V1ObjectMeta(name=name, labels=LABELS,
                                         annotations={"storageclass.kubernetes.io/is-default-class": "true"}),
            provisioner="example.invalid/none"))
        detected, _prom, _run = detect()
        assert detected["default_storage_class"] == name
    finally:
        _ignore_404(storage.delete_storage_class, name)


def _reviews_logged(audit, user: str) -> int:
    """The identity's SelfSubjectAccessReviews in the audit log since the mark (proves the filter sees it)."""
    with open(audit.path, encoding="utf-8") as fh:
        fh.seek(audit.offset)
        events = [json.loads(line) for line in fh if line.strip()]
    return sum(1 for e in events if e["user"]["username"] == user
               and e.get("objectRef", {}).get("resource") == "selfsubjectaccessreviews")


def test_check_mode_reads_only(detect, audit, admin_kubeconfig):
    """Under its own identity, so the audit log tells its requests from those of other tests sharing the lab."""
    detected, _prom, run = detect("--check", "-e", f"unimon_kubeconfig={admin_kubeconfig['path']}")
    assert detected["kubernetes_minor"] and "permission reviews passed" in run.out
    assert audit.writes(user=admin_kubeconfig["user"]) == [], "preflight wrote to the cluster"
    assert _reviews_logged(audit, admin_kubeconfig["user"]) > 0, "the run did not use the test identity"


def test_without_check_mode_it_writes_nothing_either(detect, audit, admin_kubeconfig):
    detected, _prom, _run = detect("-e", f"unimon_kubeconfig={admin_kubeconfig['path']}")
    assert detected["kubernetes_minor"]
    assert audit.writes(user=admin_kubeconfig["user"]) == [], "preflight wrote to the cluster"


def test_minimum_version_is_refused(detect):
    _detected, _prom, run = detect("-e", "preflight_min_kubernetes_version=1.99", expect_ok=False)
    assert run.rc != 0
    assert "supports 1.99 and later (preflight_min_kubernetes_version)" in run.out


def _token_kubeconfig(core, lab, ns, sa, path):
    token = core.create_namespaced_service_account_token(sa, ns, client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600))).status.token
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": sa,
        "clusters": [{"name": "lab", "cluster": {"server": lab["api"], "certificate-authority": lab["ca"]}}],
        "users": [{"name": sa, "user": {"token": token}}],
        "contexts": [{"name": sa, "context": {"cluster": "lab", "user": sa}}]}))
    path.chmod(0o600)
    return {"path": str(path), "user": f"system:serviceaccount:{ns}:{sa}"}


@pytest.fixture
def admin_kubeconfig(core, api, lab, ns, tmp_path):
    """A ServiceAccount bound to cluster-admin for the length of a test: every review passes."""
    sa = "preflight-admin"
    rbac = client.RbacAuthorizationV1Api(api)
    core.create_namespaced_service_account(ns, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=sa, labels=LABELS)))
    rbac.create_cluster_role_binding(client.V1ClusterRoleBinding(
        metadata=client.V1ObjectMeta(name=f"{ns}-{sa}", labels=LABELS),
        role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="cluster-admin"),
        subjects=[client.RbacV1Subject(kind="ServiceAccount", name=sa, namespace=ns)]))
    yield _token_kubeconfig(core, lab, ns, sa, tmp_path / "admin.kubeconfig")
    _ignore_404(rbac.delete_cluster_role_binding, f"{ns}-{sa}")
    _ignore_404(core.delete_namespaced_service_account, sa, ns)


@pytest.fixture
def limited_kubeconfig(core, api, lab, ns, tmp_path):
    """A ServiceAccount that may manage Services and ServiceAccounts in our namespace, and nothing else;
    a kubeconfig with its TokenRequest token."""
    sa = "preflight-limited"
    rbac = client.RbacAuthorizationV1Api(api)
    core.create_namespaced_service_account(ns, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=sa, labels=LABELS)))
    rbac.create_namespaced_role(ns, client.V1Role(metadata=client.V1ObjectMeta(name=sa, labels=LABELS), rules=[
        client.V1PolicyRule(api_groups=[""], resources=["services", "serviceaccounts"],
                            verbs=["get", "list", "create", "patch", "delete"])]))
    rbac.create_namespaced_role_binding(ns, client.V1RoleBinding(
        metadata=client.V1ObjectMeta(name=sa, labels=LABELS),
        role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name=sa),
        subjects=[client.RbacV1Subject(kind="ServiceAccount", name=sa, namespace=ns)]))
    yield _token_kubeconfig(core, lab, ns, sa, tmp_path / "limited.kubeconfig")
    _ignore_404(rbac.delete_namespaced_role_binding, sa, ns)
    _ignore_404(rbac.delete_namespaced_role, sa, ns)
    _ignore_404(core.delete_namespaced_service_account, sa, ns)


def test_too_few_permissions_fail_in_preflight_before_any_write(playbook, limited_kubeconfig, audit, ns):
    run = playbook("site.yml", "-e", f"unimon_kubeconfig={limited_kubeconfig['path']}", "-e", f"unimon_namespace={ns}")
    assert run.rc != 0
    assert "lacks" in run.out and "nothing was written" in run.out, run.out[-3000:]
    for needed in ("create apiextensions.k8s.io/customresourcedefinitions",
                   "patch rbac.authorization.k8s.io/clusterroles",
                   f"create apps/daemonsets in {ns}",
                   f"create monitoring.coreos.com/prometheuses in {ns}",
                   "create services in kube-system",
                   "create namespaces"):
        assert needed in run.out, f"{needed!r} not listed as missing"
    # What the Role grants is not listed.
    assert f"create services in {ns}" not in run.out
    assert f"patch serviceaccounts in {ns}" not in run.out
    assert "Learn what the cluster exposes" in run.out
    assert "Install the unimon monitoring stack" not in run.out, "the install play started"
    assert "Traceback" not in run.out
    assert audit.writes(user=limited_kubeconfig["user"]) == [], "the limited user wrote before the refusal"
    assert _reviews_logged(audit, limited_kubeconfig["user"]) > 0, "the play did not run as the limited user"
