"""metrics_server on the lab, with the real metrics-server binary behind the real API server aggregator.

The role runs through preflight (playbooks/metrics_server.yml; the lab inventory's metrics_server_enabled:
false is left out, so preflight's fact decides, as in site.yml). The Deployment's pod runs on one of the lab's
real nodes (kubelet, containerd, runc) from the image the lab built of the real metrics-server binary.

Real here: the pod as the kubelet starts it (image, arguments, volumes, ServiceAccount token, readiness probe);
the Deployment's arguments and volumes as metrics-server parses them; its ServiceAccount's RBAC
(delegated authentication through TokenReview, authorization through SubjectAccessReview, the
extension-apiserver-authentication ConfigMap it reads in kube-system); the aggregator's front-proxy client
certificate and request headers; APIService availability as the API server computes it; the serving
certificate from a Secret verified against the APIService caBundle (and refused against another CA);
server-side apply, check mode and removal seen in the audit log; the aggregated reader role merged into
view by the controller-manager. `kubectl top nodes` and `kubectl top pods` read numbers metrics-server
scraped over HTTPS, with certificate verification on (against the cluster CA, the role's default), from
each node's address and the port the node reports (--kubelet-use-node-status-port): the real kubelets'
/metrics/resource on 10250, which authorize metrics-server's nodes/metrics request themselves.

Not real: the kwok nodes report port 10350, where kwok's emulation of /metrics/resource answers (lab/labctl.py
kwok-metrics), so their usage figures are kwok's (1m CPU and 1Mi per pod)."""
from __future__ import annotations

import base64
import json
import os
import re
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

import real_nodes
from lab_fixtures import REPO, PlaybookRun, wait_until

NS = "unimon"
PLAY = REPO / "tests" / "integration" / "playbooks" / "metrics_server.yml"
APISERVICE = "v1beta1.metrics.k8s.io"
SELECTOR = "app.kubernetes.io/name=metrics-server,app.kubernetes.io/part-of=unimon"
TEST_LABELS = {"app.kubernetes.io/part-of": "unimon-tests", "unimon.io/test": "metrics-server"}
# Every object the role writes (kind, namespace or None, name).
OBJECTS = [
    ("APIService", None, APISERVICE),
    ("ClusterRole", None, "unimon-aggregated-metrics-reader"),
    ("ClusterRole", None, "unimon-metrics-server"),
    ("ClusterRoleBinding", None, "unimon-metrics-server"),
    ("ClusterRoleBinding", None, "unimon-metrics-server:auth-delegator"),
    ("RoleBinding", "kube-system", "unimon-metrics-server-auth-reader"),
    ("ServiceAccount", NS, "metrics-server"),
    ("Service", NS, "metrics-server"),
    ("Deployment", NS, "metrics-server"),
]


def ours(event: dict) -> bool:
    """An audit event about one of metrics_server's objects."""
    uri = event.get("requestURI", "")
    return any(s in uri for s in ("metrics-server", "metrics.k8s.io", "unimon-aggregated-metrics-reader"))


class Lab:
    """The role's runs against the lab."""

    def __init__(self, lab: dict, api, work: Path):
        self.lab, self.api, self.work = lab, api, work
        self.core = client.CoreV1Api(api)
        self.reg = client.ApiregistrationV1Api(api)
        self.runs = 0
        # The lab inventory without its metrics_server_enabled: false (that line is for site.yml runs).
        inv = yaml.safe_load((REPO / "lab" / "inventory.yml").read_text())
        inv["all"]["vars"].pop("metrics_server_enabled")
        self.inventory = work / "inventory.yml"
        self.inventory.write_text(yaml.safe_dump(inv))
        self.common = {"metrics_server_metric_resolution": "10s", "metrics_server_kubelet_request_timeout": "5s",
                       "metrics_server_wait_timeout": 90}

    def play(self, *args: str, extra: dict | None = None, timeout: float = 300) -> PlaybookRun:
        self.runs += 1
        cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(self.inventory), str(PLAY),
               "-e", json.dumps({**self.common, **(extra or {})}), *args]
        env = {**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1"}
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                              timeout=timeout, check=False)
        (self.work / f"run-{self.runs}.log").write_text(proc.stdout)
        return PlaybookRun(subprocess.CompletedProcess(cmd, proc.returncode, proc.stdout, ""))

    def pods(self) -> list:
        return [p for p in self.core.list_namespaced_pod(NS, label_selector=SELECTOR).items
                if p.status.phase == "Running" and p.status.pod_ip and not p.metadata.deletion_timestamp]

    def apiservice(self):
        try:
            return self.reg.read_api_service(APISERVICE)
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    @staticmethod
    def until(what: str, check, timeout: float = 60, interval: float = 2):
        return wait_until(what, check, timeout, interval)

    def available(self) -> bool:
        svc = self.apiservice()
        return bool(svc) and any(c.type == "Available" and c.status == "True" for c in svc.status.conditions or [])

    def raw(self, path: str, *kubectl_args: str) -> subprocess.CompletedProcess:
        return self.kubectl("get", "--raw", path, *kubectl_args)

    def kubectl(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([self.lab["kubectl"], "--kubeconfig", self.lab["kubeconfig"], *args],
                              capture_output=True, text=True, check=False, timeout=60)

    def exists(self, kind: str, namespace: str | None, name: str) -> bool:
        rbac, apps = client.RbacAuthorizationV1Api(self.api), client.AppsV1Api(self.api)
        read = {"APIService": lambda: self.reg.read_api_service(name),
                "ClusterRole": lambda: rbac.read_cluster_role(name),
                "ClusterRoleBinding": lambda: rbac.read_cluster_role_binding(name),
                "RoleBinding": lambda: rbac.read_namespaced_role_binding(name, namespace),
                "ServiceAccount": lambda: self.core.read_namespaced_service_account(name, namespace),
                "Service": lambda: self.core.read_namespaced_service(name, namespace),
                "Deployment": lambda: apps.read_namespaced_deployment(name, namespace)}[kind]
        try:
            read()
            return True
        except ApiException as err:
            if err.status == 404:
                return False
            raise


@pytest.fixture(scope="module")
def ms(lab, api, tmp_path_factory):
    """Installed by the role; always removed again, so no APIService without a backend is left to break API
    discovery for the tests after this one."""
    ctx = Lab(lab, api, tmp_path_factory.mktemp("metrics-server"))
    existing = ctx.apiservice()
    if existing is not None and (existing.metadata.labels or {}).get("app.kubernetes.io/managed-by") != "unimon.stack":
        pytest.skip("the lab already has someone else's APIService v1beta1.metrics.k8s.io; not touching it")
    started = time.time()
    ctx.install = ctx.play("-v")
    ctx.install_seconds = time.time() - started
    try:
        yield ctx
    finally:
        try:
            if any(ctx.exists(*o) for o in OBJECTS):
                ctx.play("-e", "metrics_server_state=absent")
        finally:
            svc = ctx.apiservice()
            if svc is not None and (svc.metadata.labels or {}).get("app.kubernetes.io/managed-by") == "unimon.stack":
                ctx.reg.delete_api_service(APISERVICE)
            try:
                ctx.core.delete_namespaced_secret("metrics-server-tls", NS)
            except ApiException:
                pass


def test_install_registers_the_apiservice_once_the_deployment_is_available(ms):
    run = ms.install
    assert run.rc == 0, run.out[-4000:]
    assert ms.available()
    out = run.out
    # The Deployment's wait is part of its apply task (wait_for), which finishes before the APIService's.
    assert out.index("Apply or delete metrics-server (RBAC, Service, Deployment)") < out.index("Apply the APIService and wait")
    assert "metrics_server role | APIService v1beta1.metrics.k8s.io missing or not Available | true" in out
    svc = ms.apiservice()
    assert svc.spec.service.namespace == NS and svc.spec.service.name == "metrics-server"
    assert svc.spec.insecure_skip_tls_verify is True
    print(f"install took {ms.install_seconds:.0f}s")
    pod = ms.pods()[0]
    assert pod.spec.node_name in real_nodes.NODES, pod.spec.node_name


def test_metrics_api_is_served_through_the_aggregator(ms, lab):
    ms.until("APIService Available", ms.available)
    res = ms.raw("/apis/metrics.k8s.io/v1beta1")
    assert res.returncode == 0, res.stderr
    assert {r["name"] for r in json.loads(res.stdout)["resources"]} >= {"nodes", "pods"}
    res = ms.raw("/apis/metrics.k8s.io/v1beta1/nodes")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["kind"] == "NodeMetricsList"


def test_metrics_server_authorizes_the_forwarded_user(ms):
    """The aggregator forwards the caller in front-proxy request headers; metrics-server asks the API server
    (SubjectAccessReview, through system:auth-delegator) whether that user may read: one without rights may not."""
    ms.until("APIService Available", ms.available)
    res = ms.raw("/apis/metrics.k8s.io/v1beta1/nodes", "--as=unimon-test-nobody")
    assert res.returncode != 0
    assert "forbidden" in res.stderr.lower() and "unimon-test-nobody" in res.stderr


def _kwok_metrics_served(lab) -> bool:
    ctx = ssl.create_default_context(cafile=str(Path(lab["state"]) / "pki" / "ca.crt"))
    node = lab["nodes"][0]
    url = f"https://{node['ip']}:{lab['kubelet_metrics_port']}/metrics/nodes/{node['name']}/metrics/resource"
    try:
        with urllib.request.urlopen(url, timeout=3, context=ctx) as resp:
            return resp.status == 200
    except OSError:
        return False


def test_kubectl_top_nodes_and_pods(ms, lab):
    if not _kwok_metrics_served(lab):
        pytest.skip("this lab was started before kwok-metrics existed (no node resource metrics endpoint): "
                    "restart it with this checkout's lab/labctl.py")
    nodes = sorted([n["name"] for n in lab["nodes"]] + real_nodes.NODES)

    def top_nodes():
        res = ms.kubectl("top", "nodes", "--no-headers")
        rows = {line.split()[0]: line.split() for line in res.stdout.splitlines() if line.strip()}
        # A node is listed before its first scrape is in, with <unknown> values: wait for the numbers.
        known = all("<unknown>" not in row for row in rows.values())
        return rows if res.returncode == 0 and sorted(rows) == nodes and known else None
    rows = ms.until("kubectl top nodes to list every lab node", top_nodes, timeout=90, interval=3)
    for name in nodes:
        assert rows[name][1].endswith("m") and rows[name][3].endswith("Mi"), rows[name]
    # The real kubelets' figures: the machine's, not kwok's 1Mi per pod (the stack's pods alone use more).
    for name in real_nodes.NODES:
        assert int(rows[name][3][:-2]) > 50, rows[name]

    def top_pod():
        res = ms.kubectl("top", "pods", "-n", NS, "-l", SELECTOR, "--no-headers")
        return res.stdout if res.returncode == 0 and res.stdout.startswith("metrics-server-") else None
    assert ms.until("kubectl top pods to show metrics-server", top_pod, timeout=60, interval=3)


def test_readers_and_metrics_server_get_least_privilege(ms, api):
    rbac = client.RbacAuthorizationV1Api(api)

    def aggregated(role):
        rules = rbac.read_cluster_role(role).rules or []
        return any("metrics.k8s.io" in (r.api_groups or []) and {"nodes", "pods"} <= set(r.resources or [])
                   for r in rules)
    for role in ("view", "edit", "admin"):
        wait_until(f"metrics.k8s.io aggregated into ClusterRole {role}", lambda role=role: aggregated(role), 30)
    authz = client.AuthorizationV1Api(api)
    user = f"system:serviceaccount:{NS}:metrics-server"
    groups = ["system:serviceaccounts", f"system:serviceaccounts:{NS}", "system:authenticated"]

    def allowed(verb, resource, subresource=None, namespace=None, name=None):
        spec = client.V1SubjectAccessReviewSpec(user=user, groups=groups, resource_attributes=client.V1ResourceAttributes(
            verb=verb, resource=resource, subresource=subresource, namespace=namespace, name=name))
        return authz.create_subject_access_review(client.V1SubjectAccessReview(spec=spec)).status.allowed
    assert allowed("get", "nodes", "metrics") is True
    assert allowed("list", "pods") is True
    assert allowed("get", "nodes", "proxy") is False
    assert allowed("get", "secrets", namespace="kube-system") is False
    assert allowed("get", "configmaps", namespace="kube-system", name="extension-apiserver-authentication") is True
    assert allowed("get", "configmaps", namespace=NS) is False


def test_rerun_keeps_our_apiservice_and_changes_nothing(ms):
    """After ours serves, preflight sees metrics.k8s.io served; the APIService is ours, so the role stays on."""
    run = ms.play()
    assert run.rc == 0, run.out[-4000:]
    assert "metrics_server role | APIService v1beta1.metrics.k8s.io Available, ours (managed by unimon.stack) | true" in run.out
    assert "metrics_server skipped" not in run.out
    assert run.changed == 0, run.out[-4000:]


def test_check_mode_writes_nothing(ms, audit, api):
    run = ms.play("--check", "--diff", extra={"metrics_server_metric_resolution": "20s"})
    assert run.rc == 0, run.out[-4000:]
    assert run.changed > 0, "a changed resolution should show as a change in check mode"
    assert [e["requestURI"] for e in audit.writes() if ours(e)] == []
    args = client.AppsV1Api(api).read_namespaced_deployment("metrics-server", NS).spec.template.spec.containers[0].args
    assert "--metric-resolution=10s" in args


def test_someone_elses_apiservice_is_neither_replaced_nor_taken(ms, audit):
    """Relabelled as someone else's: preflight's decision turns the role off (served, not ours); forced on,
    the role refuses before writing."""
    def patch(who):
        ms.reg.patch_api_service(APISERVICE, {"metadata": {"labels": {"app.kubernetes.io/managed-by": who}}})
    patch("someone-else")
    try:
        audit.mark()
        run = ms.play()
        assert run.rc == 0, run.out[-4000:]
        assert ("metrics_server skipped: the preflight role found metrics.k8s.io served by an APIService that is not"
                f" ours (backend: {NS}/metrics-server)") in run.out
        run = ms.play(extra={"metrics_server_enabled": True})
        assert run.rc != 0
        assert "is not managed by unimon.stack" in run.out and "Nothing was written" in run.out
        assert [e["requestURI"] for e in audit.writes() if ours(e)] == []
    finally:
        patch("unimon.stack")


def _serving_cert(tmp: Path, cn: str) -> tuple[str, Path]:
    """A CA and a serving certificate for metrics-server.<ns>.svc signed by it; returns (CA PEM, directory)."""
    def ssl_(*args):
        subprocess.run(["openssl", *args], cwd=tmp, check=True, capture_output=True)
    ssl_("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "1",
         "-subj", f"/CN={cn}-ca")
    (tmp / "ext").write_text(f"subjectAltName=DNS:metrics-server.{NS}.svc\nextendedKeyUsage=serverAuth\n")
    ssl_("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "tls.key", "-out", "tls.csr", "-subj", f"/CN={cn}")
    ssl_("x509", "-req", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "1",
         "-out", "tls.crt", "-extfile", "ext")
    return (tmp / "ca.crt").read_text(), tmp


def test_serving_certificate_is_verified_with_the_ca_bundle(ms, tmp_path):
    ca, d = _serving_cert(tmp_path, "unimon-test-metrics-server")
    b64 = {k: base64.b64encode((d / k).read_bytes()).decode() for k in ("tls.crt", "tls.key")}
    ms.core.create_namespaced_secret(NS, client.V1Secret(
        metadata=client.V1ObjectMeta(name="metrics-server-tls", labels=TEST_LABELS), type="kubernetes.io/tls",
        data=b64))
    run = ms.play(extra={"metrics_server_tls_secret": "metrics-server-tls", "metrics_server_ca_bundle": ca})
    assert run.rc == 0, run.out[-4000:]
    svc = ms.apiservice()
    assert base64.b64decode(svc.spec.ca_bundle).decode() == ca and not svc.spec.insecure_skip_tls_verify
    # The rollout's new pod serves the Secret's certificate, and the aggregator accepts it.
    pod = ms.pods()[0]
    served = subprocess.run(["openssl", "s_client", "-connect", f"{pod.status.pod_ip}:10250", "-CAfile",
                             str(d / "ca.crt"), "-verify_return_error", "-servername", f"metrics-server.{NS}.svc"],
                            input="", capture_output=True, text=True, timeout=30, check=False)
    assert re.search(r"s:\s*CN\s*=\s*unimon-test-metrics-server$", served.stdout, re.M), served.stdout[-2000:]
    assert "Verify return code: 0 (ok)" in served.stdout, served.stdout[-2000:]
    ms.until("the metrics API through the verified connection",
             lambda: ms.raw("/apis/metrics.k8s.io/v1beta1/nodes").returncode == 0, 60, 2)
    # Another CA in the caBundle: requests proxied to metrics-server are refused (the availability check itself
    # skips verification, so the APIService stays Available; reading metrics is what fails).
    (tmp_path / "other").mkdir()
    other = _serving_cert(tmp_path / "other", "someone")[0]
    apiserver_log = Path(ms.lab["state"]) / "logs" / "kube-apiserver.log"
    offset = apiserver_log.stat().st_size
    ms.reg.patch_api_service(APISERVICE, {"spec": {"caBundle": base64.b64encode(other.encode()).decode()}})
    try:
        def refused():
            res = ms.raw("/apis/metrics.k8s.io/v1beta1/nodes")
            return res.stderr if res.returncode != 0 else None
        err = ms.until("reading metrics to fail with a caBundle of another CA", refused, 60, 2)
        assert "ServiceUnavailable" in err, err

        def why():  # kubectl shows only the 503; the API server logs the proxy's reason
            with open(apiserver_log, "rb") as fh:
                fh.seek(offset)
                return b"x509: certificate signed by unknown authority" in fh.read()
        wait_until("the API server to log the refused certificate", why, 30, 1)
    finally:
        ms.reg.patch_api_service(APISERVICE, {"spec": {"caBundle": svc.spec.ca_bundle}})
    ms.until("reading metrics again with the right caBundle",
             lambda: ms.raw("/apis/metrics.k8s.io/v1beta1/nodes").returncode == 0, 60, 2)


def test_absent_removes_the_apiservice_first_then_everything(ms, audit):
    run = ms.play("-e", "metrics_server_state=absent")
    assert run.rc == 0, run.out[-4000:]
    deletes = [e["objectRef"]["resource"] for e in audit.writes() if e["verb"] == "delete" and ours(e)]
    assert deletes and deletes[0] == "apiservices", deletes
    assert {"apiservices", "deployments", "services", "serviceaccounts", "clusterroles", "clusterrolebindings",
            "rolebindings"} <= set(deletes)
    left = [o for o in OBJECTS if ms.exists(*o)]
    assert left == []
    # API discovery is clean: no metrics.k8s.io group, and nothing reports an unavailable API.
    groups = json.loads(ms.raw("/apis").stdout)["groups"]
    assert "metrics.k8s.io" not in {g["name"] for g in groups}
    res = ms.kubectl("api-resources", "-o", "name")
    assert res.returncode == 0 and "metrics.k8s.io" not in res.stderr, res.stderr
