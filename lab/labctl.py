"""Start, stop and inspect the unimon lab: a real Kubernetes control plane (etcd, kube-apiserver with the
aggregation layer, kube-controller-manager, kube-scheduler), kwok nodes backed by network namespaces (each
with a read-only kwok serving the kubelet's resource metrics), two real nodes (lab/realnode.py) and the lab's
own kube-state-metrics, Prometheus, Alertmanager, node-exporter and Elasticsearch processes. Standard library only, so it runs before any virtualenv exists.

Usage: labctl.py up|down [--purge]|status|env|real-up|real-down|stop NAME...
up starts the two real nodes too (kubelet, containerd, runc; lab/realnode.py), where the stack's pods run;
real-down removes them, real-up starts them again.
"""
from __future__ import annotations

import base64
import json
import os
import pwd
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("UNIMON_LAB_CACHE", Path.home() / ".cache" / "unimon-lab"))
BIN = CACHE / "bin"
STATE = Path(os.environ.get("UNIMON_LAB_STATE", CACHE / "run"))
PKI = STATE / "pki"
LOGS = STATE / "logs"
PIDS = STATE / "pids"
KUBECONFIG = STATE / "kubeconfig"
ES_USER = "unimonlab"
CLIENTS = {
    "admin": "/O=system:masters/CN=unimon-lab-admin",
    "controller-manager": "/CN=system:kube-controller-manager",
    "scheduler": "/CN=system:kube-scheduler",
    "kwok": "/O=system:masters/CN=unimon-lab-kwok",
    "observer": "/O=system:masters/CN=unimon-lab-observer",
    # Read-only (RBAC below): the kwok instances that stand in for the kubelets' /metrics/resource.
    "kwok-metrics": "/CN=unimon-lab-kwok-metrics",
    # The API server's client for the real kubelets (logs, exec, port-forward): lab/realnode.py binds it.
    "apiserver-kubelet-client": "/CN=unimon-lab-apiserver-kubelet-client",
}

# Addresses: a host bridge owns 10.250.0.1/16; node netns get 10.250.0.1x; non-hostNetwork pod IPs
# come from 10.250.128.0/17, which a "pods" netns answers (connection refused) so no scrape ever
# leaves the machine.
BRIDGE = "unimon-br0"
HOST_IP = "10.250.0.1"
PODS_NS = "unimon-pods"
PODS_NS_IP = "10.250.0.2"
POD_CIDR = "10.250.128.0/17"
SERVICE_CIDR = "10.96.0.0/16"
NODES = [("lab-node-1", "unimon-n1", "10.250.0.11"), ("lab-node-2", "unimon-n2", "10.250.0.12")]
# kwok nodes only pretend to run pods: tainted, so the roles' Deployments and StatefulSets land on the real
# nodes (lab/realnode.py) and only what tolerates every taint (DaemonSets of agents, scale tests) lands here.
KWOK_TAINT = {"key": "kwok.x-k8s.io/node", "value": "fake", "effect": "NoSchedule"}
# Each node's stand-in for the kubelet's resource metrics endpoint (what metrics-server scrapes) listens on
# <node ip>:KUBELET_METRICS_PORT with a serving certificate from the lab CA. Not 10250: kubelet scrapes there
# (Prometheus, categraf) must stay refused, as kwok runs no kubelet.
KUBELET_METRICS_PORT = 10350
RESOURCE_METRICS_PATH = "/metrics/nodes/{node}/metrics/resource"

API = "https://127.0.0.1:6443"
ETCD = "http://127.0.0.1:2379"
PROMETHEUS = "http://127.0.0.1:9090"
ALERTMANAGER = "http://127.0.0.1:9093"
ELASTICSEARCH = "http://127.0.0.1:9200"
KSM = "http://127.0.0.1:18080"


def versions() -> dict[str, str]:
    out = {}
    for line in (HERE / "versions.env").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip()
    return out


V = versions()


def binary(name: str, key: str) -> str:
    path = BIN / f"{name}-{V[key]}"
    if not path.exists():
        sys.exit(f"lab: {path} is missing; run lab/build.sh (make lab-build) first")
    return str(path)


def log(msg: str) -> None:
    print(f"[lab {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=check, capture_output=True, text=True)


# ---------------------------------------------------------------- PKI
def openssl(*args: str) -> None:
    run("openssl", *args)


def make_pki() -> None:
    """Create what is missing, file by file: a lab started before a file was added to the PKI gets it too."""
    PKI.mkdir(parents=True, exist_ok=True)
    os.chdir(PKI)
    if not Path("ca.crt").exists():
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
                "-days", "3650", "-subj", "/CN=unimon-lab-ca")
    sans = "subjectAltName=IP:127.0.0.1,IP:10.96.0.1,IP:" + HOST_IP + \
           ",DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc," \
           "DNS:kubernetes.default.svc.cluster.local"
    Path("apiserver.ext").write_text(sans + "\nextendedKeyUsage=serverAuth\n")
    Path("client.ext").write_text("extendedKeyUsage=clientAuth\n")
    if not Path("apiserver.crt").exists():
        sign("apiserver", "/CN=kube-apiserver", "apiserver.ext")
    if not Path("sa.pub").exists():
        openssl("genrsa", "-out", "sa.key", "2048")
        openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub")
    # One identity per component, so the audit log tells who wrote what.
    for name, subj in CLIENTS.items():
        if not Path(f"{name}.crt").exists():
            sign(name, subj, "client.ext")
        # kwok-metrics runs inside the node namespaces, where 127.0.0.1 is not the host's.
        if not (KUBECONFIG if name == "admin" else PKI / f"{name}.kubeconfig").exists():
            kubeconfig_for(name, f"https://{HOST_IP}:6443" if name == "kwok-metrics" else API)
    # Aggregation layer: the API server proxies aggregated APIs (metrics.k8s.io) with this client certificate,
    # and the extension API servers trust requests carrying it (ConfigMap kube-system/extension-apiserver-authentication).
    if not Path("front-proxy-ca.crt").exists():
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "front-proxy-ca.key",
                "-out", "front-proxy-ca.crt", "-days", "3650", "-subj", "/CN=unimon-lab-front-proxy-ca")
    if not Path("front-proxy-client.crt").exists():
        sign("front-proxy-client", "/CN=front-proxy-client", "client.ext", ca="front-proxy-ca")
    # Serving certificates of the nodes' resource metrics endpoints, from the cluster CA (as kubelets with
    # serverTLSBootstrap have): metrics-server verifies them against its ServiceAccount's CA, as by default.
    for name, _ns, ip in NODES:
        if not Path(f"kubelet-{name}.crt").exists():
            Path(f"kubelet-{name}.ext").write_text(f"subjectAltName=IP:{ip},DNS:{name}\nextendedKeyUsage=serverAuth\n")
            sign(f"kubelet-{name}", f"/O=system:nodes/CN=system:node:{name}", f"kubelet-{name}.ext")
    os.chdir(HERE)


def sign(name: str, subj: str, ext: str, ca: str = "ca") -> None:
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subj)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key", "-CAcreateserial",
            "-out", f"{name}.crt", "-days", "3650", "-extfile", ext)


def kubeconfig_for(name: str, server: str = API) -> Path:
    b64 = {n: base64.b64encode((PKI / n).read_bytes()).decode() for n in ("ca.crt", f"{name}.crt", f"{name}.key")}
    path = KUBECONFIG if name == "admin" else PKI / f"{name}.kubeconfig"
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "unimon-lab",
        "clusters": [{"name": "unimon-lab", "cluster": {"server": server, "certificate-authority-data": b64["ca.crt"]}}],
        "users": [{"name": name,
                   "user": {"client-certificate-data": b64[f"{name}.crt"], "client-key-data": b64[f"{name}.key"]}}],
        "contexts": [{"name": "unimon-lab", "context": {"cluster": "unimon-lab", "user": name}}],
    }, indent=2))
    path.chmod(0o600)
    return path


# ---------------------------------------------------------------- HTTP
def ssl_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(PKI / "ca.crt"))
    ctx.load_cert_chain(str(PKI / "admin.crt"), str(PKI / "admin.key"))
    return ctx


def http(url: str, method: str = "GET", body=None, content_type: str = "application/json", timeout: float = 5):
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": content_type})
    ctx = ssl_context() if url.startswith(API) else None
    with urllib.request.urlopen(req, timeout=timeout, context=ctx) as resp:
        raw = resp.read()
        return json.loads(raw) if raw[:1] in (b"{", b"[") else raw.decode()


def up_url(url: str) -> bool:
    try:
        http(url, timeout=2)
        return True
    except (OSError, urllib.error.URLError, ValueError):
        return False


def wait_for(what: str, check, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.5)
    sys.exit(f"lab: {what} did not become ready within {timeout:.0f}s; see {LOGS}")


# ---------------------------------------------------------------- processes
def _start_time(pid: int) -> str:
    """Kernel start time of a process: with the pid, it tells our process from a later one reusing the pid."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]


def pid_of(name: str) -> int | None:
    try:
        fields = (PIDS / f"{name}.pid").read_text().split()
        pid = int(fields[0])
        if len(fields) == 1:  # written before start times were recorded
            os.kill(pid, 0)
            return pid
        return pid if _start_time(pid) == fields[1] else None
    except (OSError, ValueError, IndexError):
        return None


def start(name: str, cmd: list[str], env: dict | None = None, user: str | None = None, cwd=None) -> None:
    if pid_of(name):
        return
    LOGS.mkdir(parents=True, exist_ok=True)
    PIDS.mkdir(parents=True, exist_ok=True)
    out = open(LOGS / f"{name}.log", "ab")
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env={**os.environ, **(env or {})}, start_new_session=True, cwd=cwd,
                            user=user, group=user, extra_groups=[] if user else None)
    (PIDS / f"{name}.pid").write_text(f"{proc.pid} {_start_time(proc.pid)}")
    log(f"started {name} (pid {proc.pid})")


def stop(name: str) -> None:
    pid = pid_of(name)
    if pid:
        try:
            os.killpg(pid, signal.SIGTERM)
        except OSError:
            pass
        deadline = time.time() + 20
        while time.time() < deadline and pid_of(name):
            time.sleep(0.2)
        if pid_of(name):
            os.killpg(pid, signal.SIGKILL)
    (PIDS / f"{name}.pid").unlink(missing_ok=True)


def stop_all() -> None:
    if not PIDS.exists():
        return
    pids = {}
    for f in PIDS.glob("*.pid"):
        pid = pid_of(f.stem)
        if pid:
            pids[f.stem] = pid
            try:
                os.killpg(pid, signal.SIGTERM)  # each process leads its own session/group
            except OSError:
                pass
    deadline = time.time() + 20
    for name, pid in pids.items():
        while time.time() < deadline and pid_of(name):
            time.sleep(0.2)
        if pid_of(name):
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
        log(f"stopped {name}")
    for f in PIDS.glob("*.pid"):
        f.unlink()


# ---------------------------------------------------------------- network namespaces
def join_bridge(ns: str, ip: str, host_end: str, ns_end: str, default_route: bool = True) -> None:
    """A new network namespace on the lab bridge: a veth pair, the address on the inner end, lo up."""
    run("ip", "netns", "add", ns)
    run("ip", "link", "add", host_end, "type", "veth", "peer", "name", ns_end)
    run("ip", "link", "set", ns_end, "netns", ns)
    run("ip", "link", "set", host_end, "master", BRIDGE, "up")
    run("ip", "-n", ns, "addr", "add", f"{ip}/16", "dev", ns_end)
    run("ip", "-n", ns, "link", "set", ns_end, "up")
    run("ip", "-n", ns, "link", "set", "lo", "up")
    if default_route:
        run("ip", "-n", ns, "route", "add", "default", "via", HOST_IP)


def netns_up() -> None:
    if run("ip", "link", "show", BRIDGE, check=False).returncode == 0:
        return
    run("ip", "link", "add", BRIDGE, "type", "bridge")
    run("ip", "addr", "add", f"{HOST_IP}/16", "dev", BRIDGE)
    run("ip", "link", "set", BRIDGE, "up")
    hosts = [(ns, ip) for _name, ns, ip in NODES] + [(PODS_NS, PODS_NS_IP)]
    for i, (ns, ip) in enumerate(hosts):
        join_bridge(ns, ip, f"unimon-v{i}h", f"unimon-v{i}n")
    # Every fake pod IP is local inside the pods netns: scrapes of fake pods are refused at once.
    run("ip", "-n", PODS_NS, "route", "add", "local", POD_CIDR, "dev", "lo", "table", "main")
    run("ip", "route", "add", POD_CIDR, "via", PODS_NS_IP)


def netns_down() -> None:
    run("ip", "route", "del", POD_CIDR, check=False)
    for ns in [ns for _name, ns, _ip in NODES] + [PODS_NS]:
        run("ip", "netns", "del", ns, check=False)
    for line in run("ip", "route", "show", "dev", BRIDGE, check=False).stdout.splitlines():
        if line.startswith(POD_CIDR.split(".", maxsplit=1)[0] + ".") and "/" not in line.split()[0]:
            run("ip", "route", "del", line.split()[0], check=False)
    run("ip", "link", "del", BRIDGE, check=False)


# ---------------------------------------------------------------- components
AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: None
    verbs: [get, list, watch]
  - level: None
    resources: [{group: coordination.k8s.io, resources: [leases]}]
  - level: None
    users: [unimon-lab-kwok, system:kube-scheduler, system:apiserver]
  - level: Metadata
"""


def kc(name: str) -> str:
    return str(PKI / f"{name}.kubeconfig")


def start_control_plane() -> None:
    k8s = V["KUBERNETES_VERSION"]
    start("etcd", [binary("etcd", "ETCD_VERSION"), "--data-dir", str(STATE / "etcd"),
                   "--listen-client-urls", ETCD, "--advertise-client-urls", ETCD,
                   "--listen-peer-urls", "http://127.0.0.1:2380", "--listen-metrics-urls", "http://127.0.0.1:2381",
                   "--quota-backend-bytes", str(2 * 1024**3)])
    wait_for("etcd", lambda: up_url(ETCD + "/health"), 60)
    (STATE / "audit-policy.yaml").write_text(AUDIT_POLICY)
    start("kube-apiserver", [
        binary("kube-apiserver", "KUBERNETES_VERSION"),
        "--etcd-servers", ETCD, "--bind-address", "0.0.0.0", "--advertise-address", HOST_IP, "--secure-port", "6443",
        "--service-cluster-ip-range", SERVICE_CIDR, "--allow-privileged=true",
        "--authorization-mode", "Node,RBAC", "--client-ca-file", str(PKI / "ca.crt"),
        "--tls-cert-file", str(PKI / "apiserver.crt"), "--tls-private-key-file", str(PKI / "apiserver.key"),
        "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
        "--service-account-key-file", str(PKI / "sa.pub"), "--service-account-signing-key-file", str(PKI / "sa.key"),
        "--enable-admission-plugins", "NodeRestriction,PodSecurity",
        "--audit-policy-file", str(STATE / "audit-policy.yaml"), "--audit-log-path", str(LOGS / "audit.log"),
        "--audit-log-format", "json", "--audit-log-maxsize", "200",
        "--profiling=false", "--endpoint-reconciler-type", "lease",
        # Aggregation layer (metrics.k8s.io): the front-proxy identity the aggregator presents, and the
        # request headers extension API servers read the user from.
        "--requestheader-client-ca-file", str(PKI / "front-proxy-ca.crt"),
        "--requestheader-allowed-names=front-proxy-client",
        "--requestheader-username-headers=X-Remote-User", "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        "--proxy-client-cert-file", str(PKI / "front-proxy-client.crt"),
        "--proxy-client-key-file", str(PKI / "front-proxy-client.key"),
        # No kube-proxy here: Service IPs route nowhere, so the aggregator dials the endpoints' pod IPs.
        "--enable-aggregator-routing=true",
        # The real nodes' kubelets (lab/realnode.py): verified against the lab CA, reached at their InternalIP.
        "--kubelet-client-certificate", str(PKI / "apiserver-kubelet-client.crt"),
        "--kubelet-client-key", str(PKI / "apiserver-kubelet-client.key"),
        "--kubelet-certificate-authority", str(PKI / "ca.crt"),
        "--kubelet-preferred-address-types=InternalIP",
    ])
    wait_for(f"kube-apiserver {k8s}", lambda: up_url(API + "/readyz"), 180)
    start("kube-controller-manager", [
        binary("kube-controller-manager", "KUBERNETES_VERSION"), "--kubeconfig", kc("controller-manager"),
        "--bind-address", "127.0.0.1", "--leader-elect=false", "--use-service-account-credentials",
        "--service-account-private-key-file", str(PKI / "sa.key"), "--root-ca-file", str(PKI / "ca.crt"),
        "--cluster-signing-cert-file", str(PKI / "ca.crt"), "--cluster-signing-key-file", str(PKI / "ca.key"),
        "--controllers", "*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-node-route-controller",
        # kwok sets a pod Ready once and never again: a node marked NotReady during a short API server
        # outage (the fault test) would leave every pod NotReady for good. Real kubelets re-report.
        "--node-monitor-grace-period", "5m",
        "--authentication-kubeconfig", kc("controller-manager"),
        "--authorization-kubeconfig", kc("controller-manager"),
    ])
    start("kube-scheduler", [
        binary("kube-scheduler", "KUBERNETES_VERSION"), "--kubeconfig", kc("scheduler"),
        "--bind-address", "127.0.0.1", "--leader-elect=false",
        "--authentication-kubeconfig", kc("scheduler"), "--authorization-kubeconfig", kc("scheduler"),
    ])
    start("kwok", [
        binary("kwok", "KWOK_VERSION"), "--kubeconfig", kc("kwok"),
        "--manage-all-nodes=false", "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
        "--cidr", POD_CIDR.replace(".0/", ".1/"), "--node-ip", HOST_IP,
        "--server-address", "127.0.0.1:10247",
        # Without node leases kube-controller-manager decides the nodes stopped heartbeating and
        # marks their pods NotReady.
        "--node-lease-duration-seconds", "40",
    ])


def resource_metrics_annotation(node: str) -> dict:
    """metrics-server (0.7+) scrapes the path this annotation names instead of /metrics/resource: each node's
    kwok-metrics serves its node under its own path."""
    return {"metrics.k8s.io/resource-metrics-path": RESOURCE_METRICS_PATH.format(node=node)}


def create_once(url: str, body: dict, attempts: int = 5) -> None:
    """POST that survives a slow first write of a freshly started etcd (seen: the API server's handler timed
    out on the first Node on a busy 2-core machine): retried, and 409 means an earlier try got through."""
    for attempt in range(1, attempts + 1):
        try:
            http(url, "POST", body, timeout=30)
            return
        except urllib.error.HTTPError as err:
            if err.code == 409:
                return
            if err.code < 500 or attempt == attempts:
                raise
        except (TimeoutError, urllib.error.URLError):
            if attempt == attempts:
                raise
        time.sleep(2)


def ensure_nodes() -> None:
    for name, _ns, ip in NODES:
        try:
            node = http(f"{API}/api/v1/nodes/{name}")
            want = resource_metrics_annotation(name)
            if any((node["metadata"].get("annotations") or {}).get(k) != v for k, v in want.items()):
                http(f"{API}/api/v1/nodes/{name}", "PATCH", {"metadata": {"annotations": want}},
                     content_type="application/merge-patch+json")
            if KWOK_TAINT not in (node["spec"].get("taints") or []):  # a lab state from before the taint
                http(f"{API}/api/v1/nodes/{name}", "PATCH", {"spec": {"taints": [KWOK_TAINT]}},
                     content_type="application/merge-patch+json")
            continue
        except urllib.error.HTTPError as err:
            if err.code != 404:
                raise
        create_once(f"{API}/api/v1/nodes", {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name,
                         "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0",
                                         **resource_metrics_annotation(name)},
                         "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                    "kubernetes.io/arch": "amd64", "type": "kwok",
                                    "node-role.kubernetes.io/worker": "",
                                    "topology.kubernetes.io/zone": "lab-zone-a"}},
            "spec": {"taints": [KWOK_TAINT]},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}]},
        })
        log(f"created node {name} ({ip})")

    def all_ready() -> bool:
        try:
            items = http(f"{API}/api/v1/nodes")["items"]
        except (OSError, ValueError):
            return False
        ready = {n["metadata"]["name"] for n in items
                 for c in n.get("status", {}).get("conditions", []) if c["type"] == "Ready" and c["status"] == "True"}
        return all(name in ready for name, _ns, _ip in NODES)
    wait_for("kwok nodes Ready", all_ready, 90)
    # The port the kwok nodes report for their "kubelet" is their kwok-metrics: metrics-server
    # (--kubelet-use-node-status-port) then reads it there, and the real kubelets on 10250.
    endpoint = {"status": {"daemonEndpoints": {"kubeletEndpoint": {"Port": KUBELET_METRICS_PORT}}}}
    for name, _ns, _ip in NODES:
        http(f"{API}/api/v1/nodes/{name}/status", "PATCH", endpoint, content_type="application/merge-patch+json")


# kwok-metrics: a second kwok per node, in the node's network namespace, that changes nothing (its stages match
# no object, no node lease, a read-only identity) and only serves kwok's emulation of the kubelet's
# /metrics/resource for its node: CPU and memory computed from the pods on it (1m and 1Mi per pod, or the
# pod's kwok.x-k8s.io/usage-cpu and usage-memory annotations). The main kwok keeps its flags.
KWOK_METRICS_CONFIG = """apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: lab-metrics-leaves-nodes-alone
spec:
  resourceRef: {apiGroup: v1, kind: Node}
  selector:
    matchLabels: {unimon.io/kwok-metrics-stage: never}
  next: {}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: lab-metrics-leaves-pods-alone
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchLabels: {unimon.io/kwok-metrics-stage: never}
  next: {}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterResourceUsage
metadata:
  name: lab-usage
spec:
  usages:
    - usage:
        cpu:
          expression: >-
            "kwok.x-k8s.io/usage-cpu" in pod.metadata.annotations
            ? Quantity(pod.metadata.annotations["kwok.x-k8s.io/usage-cpu"]) : Quantity("1m")
        memory:
          expression: >-
            "kwok.x-k8s.io/usage-memory" in pod.metadata.annotations
            ? Quantity(pod.metadata.annotations["kwok.x-k8s.io/usage-memory"]) : Quantity("1Mi")
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Metric
metadata:
  name: lab-resource-metrics
spec:
  path: "__PATH__"
  metrics:
    - {name: node_cpu_usage_seconds_total, kind: counter, dimension: node, help: "node CPU time",
       value: 'node.CumulativeUsage("cpu")'}
    - {name: node_memory_working_set_bytes, kind: gauge, dimension: node, help: "node working set",
       value: 'node.Usage("memory")'}
    - name: container_cpu_usage_seconds_total
      kind: counter
      dimension: container
      help: container CPU time
      labels: &container
        - {name: container, value: container.name}
        - {name: namespace, value: pod.metadata.namespace}
        - {name: pod, value: pod.metadata.name}
      value: 'pod.CumulativeUsage("cpu", container.name)'
    - {name: container_memory_working_set_bytes, kind: gauge, dimension: container, help: "container working set",
       labels: *container, value: 'pod.Usage("memory", container.name)'}
    - {name: container_start_time_seconds, kind: gauge, dimension: container, help: "container start time",
       labels: *container, value: 'pod.SinceSecond()'}
""".replace("__PATH__", RESOURCE_METRICS_PATH.format(node="{nodeName}"))

KWOK_METRICS_RBAC = [
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
     "metadata": {"name": "unimon-lab-kwok-metrics"},
     "rules": [{"apiGroups": [""], "resources": ["nodes", "pods"], "verbs": ["get", "list", "watch"]}]},
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
     "metadata": {"name": "unimon-lab-kwok-metrics"},
     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "unimon-lab-kwok-metrics"},
     "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "unimon-lab-kwok-metrics"}]},
]


def start_kwok_metrics() -> None:
    for obj in KWOK_METRICS_RBAC:
        create_once(f"{API}/apis/rbac.authorization.k8s.io/v1/{obj['kind'].lower()}s", obj)
    cfg = STATE / "kwok-metrics.yaml"
    cfg.write_text(KWOK_METRICS_CONFIG)
    for name, ns, ip in NODES:
        start(f"kwok-metrics-{name}", [
            "ip", "netns", "exec", ns, binary("kwok", "KWOK_VERSION"), "--kubeconfig", kc("kwok-metrics"),
            "--config", str(cfg), "--manage-single-node", name, "--node-lease-duration-seconds", "0",
            "--server-address", f"{ip}:{KUBELET_METRICS_PORT}",
            "--tls-cert-file", str(PKI / f"kubelet-{name}.crt"), "--tls-private-key-file", str(PKI / f"kubelet-{name}.key"),
        ])


def kwok_metrics_up(name: str, ip: str) -> bool:
    ctx = ssl.create_default_context(cafile=str(PKI / "ca.crt"))
    url = f"https://{ip}:{KUBELET_METRICS_PORT}{RESOURCE_METRICS_PATH.format(node=name)}"
    try:
        with urllib.request.urlopen(url, timeout=2, context=ctx) as resp:
            return b"node_memory_working_set_bytes" in resp.read()
    except (OSError, urllib.error.URLError):
        return False


def start_node_exporters() -> None:
    for name, ns, ip in NODES:
        start(f"node-exporter-{name}", ["ip", "netns", "exec", ns, binary("node_exporter", "NODE_EXPORTER_VERSION"),
                                        f"--web.listen-address={ip}:9100", "--collector.disable-defaults",
                                        "--collector.cpu", "--collector.meminfo", "--collector.loadavg",
                                        "--collector.filesystem", "--collector.netdev", "--collector.uname",
                                        "--collector.time", "--collector.stat", "--collector.diskstats"])


def install_operator_crds() -> None:
    """prometheus-operator only starts the controllers whose CRDs exist when it starts: install them
    first, as a cluster install would (our role's server-side apply takes them over later)."""
    crds = CACHE / "crds" / f"prometheus-operator-{V['PROMETHEUS_OPERATOR_VERSION']}"
    kubectl = [binary("kubectl", "KUBERNETES_VERSION"), "--kubeconfig", str(KUBECONFIG)]
    run(*kubectl, "apply", "--server-side", "--force-conflicts", "--field-manager=unimon-lab", "-f", str(crds))
    run(*kubectl, "wait", "--for=condition=Established", "crd", "--all", "--timeout=120s")


def install_kubevirt_crds() -> None:
    """KubeVirt's CRDs as the lab's stand-in for an installed KubeVirt (lab/kubevirt_crds.py says why
    they are generated here), so roles and tests find kubevirt.io/v1 VMIs, VMs and the KubeVirt CR."""
    import kubevirt_crds  # pylint: disable=import-outside-toplevel
    out = STATE / "crds" / "kubevirt"
    kubevirt_crds.main([str(out)])
    kubectl = [binary("kubectl", "KUBERNETES_VERSION"), "--kubeconfig", str(KUBECONFIG)]
    run(*kubectl, "apply", "--server-side", "--force-conflicts", "--field-manager=unimon-lab", "-f", str(out))
    run(*kubectl, "wait", "--for=condition=Established", "-f", str(out), "--timeout=120s")


def install_kubevirt_admission() -> None:
    """virt-api's runStrategy rule for VirtualMachines (lab/kubevirt_admission.py), so a write a real
    KubeVirt refuses is refused here too."""
    import kubevirt_admission  # pylint: disable=import-outside-toplevel
    out = STATE / "admission" / "kubevirt"
    kubevirt_admission.main([str(out)])
    kubectl = [binary("kubectl", "KUBERNETES_VERSION"), "--kubeconfig", str(KUBECONFIG)]
    run(*kubectl, "apply", "--server-side", "--force-conflicts", "--field-manager=unimon-lab", "-f", str(out))


def start_observers() -> None:
    """The lab's own observers (host processes, not the stack): kube-state-metrics, Prometheus and Alertmanager
    for the lab's tests. The stack's operator, Prometheus and Alertmanager run as pods on the real nodes."""
    stop("prometheus-operator")  # a lab started before the real nodes ran one on the host
    install_operator_crds()
    start("kube-state-metrics", [binary("kube-state-metrics", "KUBE_STATE_METRICS_VERSION"),
                                 "--kubeconfig", kc("observer"), "--host", "127.0.0.1", "--port", "18080",
                                 "--telemetry-host", "127.0.0.1", "--telemetry-port", "18082"])
    prom_dir = STATE / "prometheus"
    prom_dir.mkdir(parents=True, exist_ok=True)
    cfg = prom_dir / "prometheus.yml"
    if not cfg.exists():
        cfg.write_text(LAB_PROMETHEUS_CONFIG.format(kubeconfig=kc("observer")))
    start("prometheus", [binary("prometheus", "PROMETHEUS_VERSION"), f"--config.file={cfg}",
                         f"--storage.tsdb.path={prom_dir / 'data'}", "--web.listen-address=127.0.0.1:9090",
                         "--web.enable-lifecycle", "--web.enable-remote-write-receiver"])
    am_dir = STATE / "alertmanager"
    am_dir.mkdir(parents=True, exist_ok=True)
    (am_dir / "alertmanager.yml").write_text("route:\n  receiver: 'null'\nreceivers:\n  - name: 'null'\n")
    start("alertmanager", [binary("alertmanager", "ALERTMANAGER_VERSION"),
                           f"--config.file={am_dir / 'alertmanager.yml'}", f"--storage.path={am_dir / 'data'}",
                           "--web.listen-address=127.0.0.1:9093", "--cluster.listen-address="])


# The lab's own Prometheus discovers through the lab apiserver (kubeconfig) and scrapes what the
# lab runs; the stack's Prometheus config (operator-generated) is exercised by the integration tier.
LAB_PROMETHEUS_CONFIG = """global:
  scrape_interval: 5s
  evaluation_interval: 5s
scrape_configs:
  - job_name: lab-node-exporter
    kubernetes_sd_configs:
      - role: endpointslice
        kubeconfig_file: {kubeconfig}
    relabel_configs:
      - source_labels: [__meta_kubernetes_service_label_app_kubernetes_io_name]
        regex: node-exporter
        action: keep
      - source_labels: [__meta_kubernetes_endpointslice_port_name]
        regex: metrics
        action: keep
      - source_labels: [__meta_kubernetes_pod_node_name]
        target_label: node
"""


def es_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(ES_USER)
    except KeyError:
        run("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", ES_USER)
        return pwd.getpwnam(ES_USER)


def java_home() -> str:
    java = Path(shutil.which("java") or "/usr/bin/java").resolve()
    return str(java.parent.parent)


def start_elasticsearch() -> None:
    user = es_user()
    es_home = CACHE / f"elasticsearch-{V['ELASTICSEARCH_VERSION']}"
    if not (es_home / "bin" / "elasticsearch").exists():
        sys.exit(f"lab: {es_home} is missing; run lab/build.sh elasticsearch")
    es_dir = STATE / "elasticsearch"
    conf = es_dir / "config"
    if not conf.exists():
        shutil.copytree(es_home / "config", conf)
        (conf / "elasticsearch.yml").write_text(
            "cluster.name: unimon-lab\nnode.name: lab-es\ndiscovery.type: single-node\n"
            f"path.data: {es_dir / 'data'}\npath.logs: {es_dir / 'logs'}\n"
            "network.host: 127.0.0.1\nhttp.port: 9200\ntransport.port: 9300\n"
            "action.destructive_requires_name: false\nxpack.security.enabled: false\n")
    for sub in ("data", "logs"):
        (es_dir / sub).mkdir(parents=True, exist_ok=True)
    run("chown", "-R", f"{user.pw_uid}:{user.pw_gid}", str(es_dir))
    # The cache is root's; ES only needs to read it.
    for p in [CACHE, CACHE.parent, CACHE.parent.parent]:
        p.chmod(p.stat().st_mode | 0o005)
    start("elasticsearch", [str(es_home / "bin" / "elasticsearch")], user=ES_USER, cwd="/tmp", env={
        "ES_PATH_CONF": str(conf), "ES_JAVA_HOME": java_home(), "ES_JAVA_OPTS": "-Xms512m -Xmx512m",
        "HOME": "/tmp"})


# ---------------------------------------------------------------- commands
CHECKS = {
    "etcd": lambda: up_url(ETCD + "/health"),
    "kube-apiserver": lambda: up_url(API + "/readyz"),
    "kube-controller-manager": lambda: pid_of("kube-controller-manager") is not None,
    "kube-scheduler": lambda: pid_of("kube-scheduler") is not None,
    "kwok": lambda: pid_of("kwok") is not None,
    "kube-state-metrics": lambda: up_url(KSM + "/metrics"),
    "prometheus": lambda: up_url(PROMETHEUS + "/-/ready"),
    "alertmanager": lambda: up_url(ALERTMANAGER + "/-/ready"),
    "elasticsearch": lambda: up_url(ELASTICSEARCH + "/_cluster/health"),
    **{f"node-exporter-{n}": (lambda ip=ip: up_url(f"http://{ip}:9100/metrics")) for n, _ns, ip in NODES},
    **{f"kwok-metrics-{n}": (lambda n=n, ip=ip: kwok_metrics_up(n, ip)) for n, _ns, ip in NODES},
}


def cmd_up() -> int:
    t0 = time.time()
    STATE.mkdir(parents=True, exist_ok=True)
    make_pki()
    netns_up()
    start_elasticsearch()  # slowest to start: first, so it boots while the rest comes up
    start_control_plane()
    ensure_nodes()
    install_kubevirt_crds()
    install_kubevirt_admission()
    start_node_exporters()
    start_kwok_metrics()
    start_observers()
    for name, check in CHECKS.items():
        wait_for(name, check, 180)
    import realnode  # pylint: disable=import-outside-toplevel
    realnode.up()
    log(f"lab is up in {time.time() - t0:.1f}s; export KUBECONFIG={KUBECONFIG}")
    return 0


def cmd_down(purge: bool) -> int:
    import realnode  # pylint: disable=import-outside-toplevel
    realnode.down(delete_nodes=False)  # before stop_all: its cgroups, mounts and namespaces go too
    stop_all()
    netns_down()
    if purge and STATE.exists():
        shutil.rmtree(STATE)
        log(f"removed {STATE}")
    return 0


def cmd_status() -> int:
    bad = 0
    for name, check in CHECKS.items():
        ok = check()
        bad += not ok
        print(f"{name:32} {'up' if ok else 'DOWN'}")
    if PIDS.exists() and any(PIDS.glob("kubelet-*.pid")):
        import realnode  # pylint: disable=import-outside-toplevel
        for name, ready, mib in realnode.status():
            bad += not ready
            print(f"{'real node ' + name:32} {'Ready' if ready else 'NOT READY'}  {mib} MiB (kubelet, containerd, pods)")
    print(f"KUBECONFIG={KUBECONFIG}")
    return 1 if bad else 0


def cmd_env() -> int:
    print(json.dumps({"kubeconfig": str(KUBECONFIG), "ca": str(PKI / "ca.crt"), "api": API, "prometheus": PROMETHEUS,
                      "alertmanager": ALERTMANAGER, "elasticsearch": ELASTICSEARCH, "state": str(STATE),
                      "audit_log": str(LOGS / "audit.log"), "bin": str(BIN),
                      "kubectl": str(BIN / f"kubectl-{V['KUBERNETES_VERSION']}"),
                      "promtool": str(BIN / f"promtool-{V['PROMETHEUS_VERSION']}"),
                      "nodes": [{"name": n, "netns": ns, "ip": ip} for n, ns, ip in NODES],
                      "host_ip": HOST_IP, "kubelet_metrics_port": KUBELET_METRICS_PORT}, indent=2))
    return 0


def cmd_stop(args: list[str]) -> int:
    for name in args:
        stop(name)
        log(f"stopped {name}")
    return 0


def main(argv: list[str]) -> int:
    import realnode  # pylint: disable=import-outside-toplevel
    commands = {"real-up": realnode.up, "real-down": realnode.down,
                "stop": lambda: cmd_stop(argv[1:]), "up": cmd_up, "down": lambda: cmd_down("--purge" in argv),
                "status": cmd_status, "env": cmd_env}
    if not argv or argv[0] not in commands:
        print(__doc__, file=sys.stderr)
        return 2
    return commands[argv[0]]()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
