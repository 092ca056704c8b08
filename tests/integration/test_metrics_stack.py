"""The metrics roles together on the lab. The role's own operator Deployment, the Prometheus and Alertmanager
StatefulSets it generates (with their config-reloaders), kube-state-metrics and node-exporter run as pods on
the lab's real nodes, from images the lab built: the targets our ServiceMonitors define are scraped with the
pods' own ServiceAccount tokens and RBAC, the real kubelets included. The kwok nodes' node-exporters are the
lab's host processes; their kubelets do not exist."""
from __future__ import annotations

import base64
import gzip
import json
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml
from kubernetes import client

import metric_names
import real_nodes
from lab_fixtures import REPO, wait_until
from stack_prometheus import NS, PROXY, active_targets, proxied

PROMETHEUS_PLAY = str(REPO / "tests" / "integration" / "playbooks" / "prometheus.yml")
# The kubelet paths the prometheus role's kubelet ServiceMonitor scrapes.
KUBELET_PATHS = ("/metrics", "/metrics/cadvisor", "/metrics/probes")


@pytest.fixture(scope="module")
def stack(playbook, lab, core):
    run = playbook("site.yml")
    assert run.rc == 0, run.out[-3000:]
    # site.yml waits for the operator, not for the StatefulSets the operator then creates.
    for pod in ("prometheus-unimon-0", "alertmanager-unimon-0"):
        wait_until(f"{pod} Ready on a real node", lambda pod=pod: pod_ready(core, pod), 180, 2)
    return run


def pod_ready(core, name: str) -> bool:
    try:
        pod = core.read_namespaced_pod(name, NS)
    except client.ApiException:
        return False
    return pod.spec.node_name in real_nodes.NODES and any(
        c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def node_names(core) -> set[str]:
    return {n.metadata.name for n in core.list_node().items}


def test_exporters_and_components_are_scraped(stack, api, core):
    nodes = len(node_names(core))
    # The operator's own /metrics, and the config-reloader sidecars of Prometheus and Alertmanager (one pod each).
    want = {"apiserver": 1, "node-exporter": nodes, "kube-state-metrics": 2, "prometheus-unimon": 1,
            "alertmanager-unimon": 1, "kubelet": 3 * len(real_nodes.NODES), "prometheus-operator": 1,
            "config-reloader": 2}

    def all_up():
        up: dict[str, int] = {}
        for t in active_targets(api):
            if t["health"] == "up":
                up[t["labels"]["job"]] = up.get(t["labels"]["job"], 0) + 1
        return up if all(up.get(job, 0) >= n for job, n in want.items()) else None
    up = wait_until(f"targets up through our ServiceMonitors: {want}", all_up, 120, 3)
    assert up["node-exporter"] == nodes


def test_grafana_target_is_discovered_under_the_job_verify_expects(stack, api):
    """verify expects job `grafana` where the grafana role installs its ServiceMonitor. Grafana does not run in
    the lab (kwok pod), so its target is discovered but not up; the job name is what this proves."""
    def grafana():
        ts = [t for t in active_targets(api) if t["labels"].get("job") == "grafana"]
        return ts or None
    ts = wait_until("a target of job grafana", grafana, 90, 3)
    assert all(t["labels"]["namespace"] == NS and t["scrapeUrl"].endswith(":3000/metrics") for t in ts), ts


def test_node_exporter_series_carry_node_names(stack, api, core):
    want = node_names(core)

    def nodes():
        res = proxied(api, "/api/v1/query?query=node_uname_info")["data"]["result"]
        return {r["metric"].get("node") for r in res} == want or None
    assert wait_until(f"node_uname_info of every node: {sorted(want)}", nodes, 90, 3)


def test_kubevirt_labels_and_the_domain_annotation_are_exported(stack, api, core):
    """KubeVirt's own rules read kube_node_labels{label_kubevirt_io_schedulable}; the exact VMI name of a
    launcher pod is its kubevirt.io/domain annotation. The real kube-state-metrics, with the role's args."""
    node = "lab-node-1"
    core.patch_node(node, {"metadata": {"labels": {"kubevirt.io/schedulable": "true"}}})
    pod = client.V1Pod(metadata=client.V1ObjectMeta(name="virt-launcher-ksm-test-x1x2x", namespace=NS,
                                                    annotations={"kubevirt.io/domain": "ksm.test"}),
                       spec=client.V1PodSpec(node_name=node, containers=[client.V1Container(name="compute", image="local/x:1")]))
    core.create_namespaced_pod(NS, pod)
    try:
        def series(q):
            return proxied(api, "/api/v1/query?query=" + urllib.parse.quote(q))["data"]["result"] or None
        assert wait_until("the schedulable node label", lambda: series(
            f'kube_node_labels{{node="{node}",label_kubevirt_io_schedulable="true"}}'), 120, 5)
        assert wait_until("the domain annotation", lambda: series(
            'kube_pod_annotations{pod="virt-launcher-ksm-test-x1x2x",annotation_kubevirt_io_domain="ksm.test"}'), 120, 5)
    finally:
        core.delete_namespaced_pod("virt-launcher-ksm-test-x1x2x", NS, grace_period_seconds=0)
        core.patch_node(node, {"metadata": {"labels": {"kubevirt.io/schedulable": None}}})


def test_kubelet_endpoints_discovered_for_every_path(stack, api, core):
    """A target per node and path (operator-maintained kubelet Service); the kwok nodes' are refused."""
    want = 3 * len(node_names(core))

    def kubelet():
        ts = [t for t in active_targets(api) if t["labels"].get("job") == "kubelet"]
        return ts if len(ts) == want else None
    ts = wait_until(f"{want} kubelet targets (every node x 3 paths)", kubelet, 90, 3)
    assert {t["labels"]["metrics_path"] for t in ts} == set(KUBELET_PATHS)
    assert all(t["scrapeUrl"].startswith("https://") and ":10250/" in t["scrapeUrl"] for t in ts)


def generated_config(core) -> bytes:
    """The Prometheus configuration the operator generated (its Secret holds it gzipped)."""
    secret = core.read_namespaced_secret("prometheus-unimon", NS)
    return gzip.decompress(base64.b64decode(secret.data["prometheus.yaml.gz"]))


def test_generated_config_passes_promtool(stack, lab, core):
    config = generated_config(core)
    res = subprocess.run([lab["promtool"], "check", "config", "--syntax-only", "/dev/stdin"], input=config,
                         capture_output=True, check=False)
    assert res.returncode == 0, res.stdout.decode() + res.stderr.decode()
    text = config.decode()
    # One scrape job per ServiceMonitor endpoint of ours.
    for sm in client.CustomObjectsApi(core.api_client).list_namespaced_custom_object(
            "monitoring.coreos.com", "v1", NS, "servicemonitors")["items"]:
        for i, _endpoint in enumerate(sm["spec"]["endpoints"]):
            assert f"job_name: serviceMonitor/{NS}/{sm['metadata']['name']}/{i}" in text
    assert "cluster: unimon" in text
    assert "credentials_file: /var/run/secrets/kubernetes.io/serviceaccount/token" in text
    assert "bearer_token_file" not in text


def test_remote_write_receiver_is_enabled(stack, api):
    def posted():
        try:
            api.call_api(PROXY + "/api/v1/write", "POST", body="", auth_settings=["BearerToken"],
                         header_params={"Content-Type": "application/x-protobuf"}, _preload_content=False,
                         _return_http_data_only=True)
        except client.ApiException as err:
            return err.status
        return 204
    # An empty body is a bad request for an enabled receiver; a disabled one answers 404.
    assert wait_until("remote write endpoint", posted, 30) == 400


def test_alertmanager_runs_our_configuration(stack, core):
    pod = core.read_namespaced_pod("alertmanager-unimon-0", NS)
    with urllib.request.urlopen(f"http://{pod.status.pod_ip}:9093/api/v2/status", timeout=5) as resp:
        status = json.loads(resp.read())
    original = status["config"]["original"]
    assert "receiver: \"null\"" in original or "receiver: 'null'" in original or "receiver: null" in original
    assert "Watchdog" in original


@pytest.mark.parametrize("verb,resource,subresource,allowed", [
    ("get", "nodes", "metrics", True),
    ("list", "endpointslices", None, True),
    ("get", "nodes", "proxy", False),
    ("create", "pods", "exec", False),
    ("list", "secrets", None, False),
])
def test_prometheus_service_account_is_least_privilege(stack, api, verb, resource, subresource, allowed):
    group = "discovery.k8s.io" if resource == "endpointslices" else ""
    sar = client.V1SubjectAccessReview(spec=client.V1SubjectAccessReviewSpec(
        user=f"system:serviceaccount:{NS}:prometheus-unimon", groups=["system:serviceaccounts"],
        resource_attributes=client.V1ResourceAttributes(verb=verb, group=group, resource=resource,
                                                        subresource=subresource)))
    assert client.AuthorizationV1Api(api).create_subject_access_review(sar).status.allowed is allowed


def test_receiver_secrets_stay_out_of_the_output(stack, playbook, core):
    token = "hunter2-webhook-token"
    receivers = json.dumps([{"name": "ops", "webhook_url": f"https://hooks.example.invalid/{token}"}])
    # Preflight and the prometheus role only: the receivers pass through nothing else.
    run = playbook(PROMETHEUS_PLAY, "-e", f'{{"prometheus_alertmanager_receivers": {receivers}}}', "-v")
    assert run.rc == 0, run.out[-3000:]
    assert token not in run.out
    secret = core.read_namespaced_secret("alertmanager-unimon-config", NS)
    assert token in base64.b64decode(secret.data["alertmanager.yaml"]).decode()
    restore = playbook(PROMETHEUS_PLAY)
    assert restore.rc == 0, restore.out[-3000:]


def test_verify_playbook_reports_every_job(stack, playbook):
    run = playbook("verify.yml")
    assert run.rc == 0, run.out[-3000:]
    for job in ("node-exporter", "kube-state-metrics", "prometheus-unimon", "alertmanager-unimon", "apiserver"):
        assert job in run.out
    assert "skipped: kubelet" in run.out


# What pends or fires on the healthy lab, each for a reason of the lab's own: (labels an alert must carry, why).
NO_KUBELET = "the kwok nodes run no kubelet: their :10250 refuses the scrape"
LAB_ALERTS = [
    ({"alertname": "TargetDown", "job": "kubelet"}, NO_KUBELET),
    ({"alertname": "KubeletDown"}, NO_KUBELET),
    ({"alertname": "TargetDown", "job": "fluentd"}, "kwok only pretends Fluentd's pods run (no Fluentd image here)"),
    ({"alertname": "TargetDown", "job": "grafana"}, "kwok only pretends Grafana's pod runs (Grafana is not built here)"),
    ({"alertname": "KubePodNotReady", "namespace": "lab-tests"},
     "test_lab's DaemonSet lab-node-exporter asks for hostPort 9100, which the stack's node-exporter holds: Pending"),
    ({"alertname": "KubeDaemonSetRolloutStuck", "namespace": "lab-tests"}, "the same DaemonSet of test_lab"),
    ({"alertname": "NodeCPUHigh"},
     "every lab node's node-exporter reads the one 2-core machine, which the test run keeps busy (a true reading)"),
    ({"alertname": "NodeSystemSaturation"}, "the same machine's load, above 2 per CPU while the tests run (a true reading)"),
    ({"alertname": "NodeClockNotSynchronising"},
     "no NTP daemon disciplines the lab machine's clock: adjtimex reports it unsynchronised, maxerror 16 s (a true reading)"),
]


def test_a_healthy_stack_raises_only_watchdog_and_the_lab_alerts(stack, api):
    """kube-prometheus-stack's most reported problem is alerts that fire on a healthy cluster. A few minutes
    into this module every rule has been evaluated several times: pending alerts count too (they fire when
    their `for` runs out), except Watchdog and the ones the lab explains (LAB_ALERTS, each with its reason)."""
    groups = wait_until("the stack Prometheus to evaluate our rules", lambda: [
        g for g in proxied(api, "/api/v1/rules")["data"]["groups"] if g.get("lastEvaluation", "").startswith("2")], 90, 3)
    assert len(groups) > 10
    alerts = proxied(api, "/api/v1/alerts")["data"]["alerts"]
    assert any(a["labels"]["alertname"] == "Watchdog" and a["state"] == "firing" for a in alerts)
    shown = {"alertname", "job", "namespace", "pod", "daemonset", "instance"}
    unexplained = sorted({
        (a["state"], *(f"{k}={v}" for k, v in sorted(a["labels"].items()) if k in shown))
        for a in alerts if a["labels"]["alertname"] != "Watchdog"
        and not any(want.items() <= a["labels"].items() for want, _why in LAB_ALERTS)})
    assert not unexplained, f"alerts on the healthy lab that no lab reason explains: {unexplained}"


def test_verify_names_a_stopped_exporter(stack, playbook, lab, api, core):
    """Stop the node-exporter of one kwok node (a lab process): verify must fail and name that target."""
    nodes = len(node_names(core))
    node = lab["nodes"][1]
    labctl = [sys.executable, str(REPO / "lab" / "labctl.py")]
    subprocess.run(labctl + ["stop", f"node-exporter-{node['name']}"], check=True, capture_output=True)
    try:
        # Prometheus notices at its next scrape (30 s interval); verify reads what Prometheus knows.
        wait_until("Prometheus to see the stopped exporter down", lambda: any(
            t["labels"]["job"] == "node-exporter" and t["health"] == "down" for t in active_targets(api)), 90, 3)
        run = playbook("verify.yml", "-e", "verify_timeout=10")
        assert run.rc != 0
        assert f"{node['ip']}:9100" in run.out or node["name"] in run.out, run.out[-3000:]
        assert f"job 'node-exporter': {nodes - 1} of {nodes} targets up" in run.out
        assert "Traceback" not in run.out
    finally:
        subprocess.run(labctl + ["up"], check=True, capture_output=True)


# One object of each kind whose kube-state-metrics families only appear once such an object exists (the
# workload, storage and quota alerts read them): real objects, so the real exporter shows the names are real.
KSM_OBJECTS_NS = "lab-ksm-objects"
KSM_OBJECTS = f"""
apiVersion: v1
kind: Namespace
metadata: {{name: {KSM_OBJECTS_NS}}}
---
apiVersion: v1
kind: ResourceQuota
metadata: {{name: pods, namespace: {KSM_OBJECTS_NS}}}
spec: {{hard: {{pods: "10", requests.cpu: "1", requests.memory: 1Gi}}}}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {{name: web, namespace: {KSM_OBJECTS_NS}}}
spec: {{minAvailable: 1, selector: {{matchLabels: {{app: web}}}}}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {{name: web, namespace: {KSM_OBJECTS_NS}}}
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: web}}
  minReplicas: 1
  maxReplicas: 3
  metrics: [{{type: Resource, resource: {{name: cpu, target: {{type: Utilization, averageUtilization: 80}}}}}}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {{name: nightly, namespace: {KSM_OBJECTS_NS}}}
spec:
  schedule: "0 3 * * *"
  suspend: true
  jobTemplate: {{spec: {{template: {{spec: {{restartPolicy: Never, containers: [{{name: c, image: busybox}}]}}}}}}}}
---
apiVersion: batch/v1
kind: Job
metadata: {{name: once, namespace: {KSM_OBJECTS_NS}}}
spec:
  suspend: true
  template: {{spec: {{restartPolicy: Never, containers: [{{name: c, image: busybox}}]}}}}
---
apiVersion: v1
kind: PersistentVolume
metadata: {{name: {KSM_OBJECTS_NS}-pv}}
spec: {{capacity: {{storage: 1Gi}}, accessModes: [ReadWriteOnce], hostPath: {{path: /tmp/{KSM_OBJECTS_NS}}}, storageClassName: lab-none}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: data, namespace: {KSM_OBJECTS_NS}}}
spec: {{accessModes: [ReadWriteOnce], resources: {{requests: {{storage: 1Gi}}}}, storageClassName: lab-none}}
"""


@pytest.fixture
def ksm_objects(lab, tmp_path):
    kubectl = [lab["kubectl"], "--kubeconfig", lab["kubeconfig"]]
    manifest = tmp_path / "ksm-objects.yaml"
    manifest.write_text(KSM_OBJECTS)
    res = subprocess.run([*kubectl, "apply", "-f", str(manifest)], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr
    yield
    subprocess.run([*kubectl, "delete", "--wait=false", "-f", str(manifest)], capture_output=True, check=False)


def test_every_metric_a_dashboard_or_rule_queries_exists(stack, api, lab, tmp_path, ksm_objects):
    """Each metric name in our dashboards and in the rules the stack Prometheus loaded is a series that
    Prometheus holds, a family a scraped target declares (HELP/TYPE; kube-state-metrics declares e.g.
    kube_pod_container_status_waiting_reason though no lab container ever waits), a series one of those
    rules records, or a name only real kubelets/cAdvisor or KubeVirt export (metric_names.ALLOWED).
    Names come from the real parser's expression tree."""
    groups = wait_until("the stack Prometheus to load our rules",
                        lambda: proxied(api, "/api/v1/rules")["data"]["groups"], 90, 3)
    rules = {f"rule {g['name']}/{r['name']}": r["query"] for g in groups for r in g["rules"]}
    recorded = {r["name"] for g in groups for r in g["rules"] if r["type"] == "recording"}
    assert recorded and any(where.startswith("rule ") for where in rules), "the stack loaded no rules"
    vm_rules, vm_recorded = metric_names.rendered_rules("kubevirt_monitoring", tmp_path)
    recorded |= vm_recorded
    expressions = {**metric_names.dashboard_expressions(), **rules, **vm_rules}
    uses = metric_names.names_by_use(lab["prometheus"], expressions)
    assert len(uses) > 80

    # The check itself can fail: a misspelt name is reported.
    assert "node_cpu_seconds_totl" in metric_names.selector_names(
        metric_names.parse(lab["prometheus"], 'rate(node_cpu_seconds_totl{mode!="idle"}[5m])'))

    def missing():
        held = set(proxied(api, "/api/v1/label/__name__/values")["data"]) | set(proxied(api, "/api/v1/metadata")["data"])
        gone = {n: sorted(w) for n, w in uses.items() if n not in held | recorded | metric_names.ALLOWED}
        return gone or None

    # Series appear as their targets get scraped (30 s intervals): wait for the set to empty.
    deadline = time.time() + 120
    while (gone := missing()) and time.time() < deadline:
        time.sleep(5)
    assert not gone, "metrics queried but neither in Prometheus nor allow-listed:\n" + "\n".join(
        f"  {n}: {', '.join(w[:3])}" for n, w in sorted(gone.items()))
    stale = sorted(metric_names.ALLOWED - set(uses))
    assert not stale, f"allow-listed metrics nothing queries any more (drop them): {stale}"


# The last tests of this module run a workload of their own on a real node (tests/real_nodes.py).
REAL_NS = "lab-real-scrape"
# A container that wants a whole CPU under a 20m limit: CFS throttles it in nearly every period.
SPINNER = {"name": "spinner", "resources": {"limits": {"cpu": "20m", "memory": "16Mi"}},
           "script": "while :; do :; done"}


@pytest.fixture(scope="module")
def real(stack, core):
    real_nodes.start(core, REAL_NS)
    node = real_nodes.NODES[0]
    real_nodes.busybox_pod(core, REAL_NS, SPINNER["name"], node, SPINNER["script"], container=SPINNER["name"],
                           resources=SPINNER["resources"])
    real_nodes.running(core, REAL_NS, SPINNER["name"])
    yield {"node": node}
    real_nodes.stop(core, REAL_NS)


def kubelet_targets(api) -> dict[tuple[str, str], dict]:
    return {(t["labels"].get("node"), t["labels"]["metrics_path"]): t
            for t in active_targets(api) if t["labels"].get("job") == "kubelet"}


def test_prometheus_scrapes_the_real_kubelets(real, api, core):
    """The stack's Prometheus reaches each real kubelet on every path with its own ServiceAccount token,
    verifying the kubelet's serving certificate against the cluster CA (no insecure_skip_verify)."""
    want = {(node, path) for node in real_nodes.NODES for path in KUBELET_PATHS}

    def all_up():
        ts = kubelet_targets(api)
        return ts if all(ts.get(k, {}).get("health") == "up" for k in want) else None
    try:
        ts = wait_until("every real kubelet path up in the stack Prometheus", all_up, 240, 5)
    except AssertionError:
        seen = {k: (t["health"], t["lastError"]) for k, t in kubelet_targets(api).items() if k[0] in real_nodes.NODES}
        raise AssertionError(f"real kubelet targets: {seen}") from None
    for node in real_nodes.NODES:
        assert ts[(node, "/metrics")]["scrapeUrl"] == f"https://{real_nodes.NODE_IPS[node]}:10250/metrics"
    config = generated_config(core)
    jobs = {j["job_name"]: j for j in yaml.safe_load(config)["scrape_configs"]}
    kubelet_jobs = [j for name, j in jobs.items() if "/kubelet/" in name]
    assert len(kubelet_jobs) == len(KUBELET_PATHS)
    for job in kubelet_jobs:
        assert job["tls_config"]["ca_file"] == "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
        assert not job["tls_config"].get("insecure_skip_verify")
        assert job["authorization"]["credentials_file"] == "/var/run/secrets/kubernetes.io/serviceaccount/token"


def query(api, expr: str) -> list[dict]:
    return proxied(api, "/api/v1/query?" + urllib.parse.urlencode({"query": expr}))["data"]["result"]


def test_container_rules_evaluate_on_a_real_throttled_pod(real, api):
    """cAdvisor's series of a real pod carry pod, namespace and container; the container recording rules and
    CPUThrottlingHigh (pending: it waits 15 minutes before firing) evaluate on them."""
    pod = f'namespace="{REAL_NS}", pod="{SPINNER["name"]}", container="{SPINNER["name"]}"'
    for name in ("container_cpu_usage_seconds_total", "container_memory_working_set_bytes",
                 "container_cpu_cfs_throttled_periods_total"):
        wait_until(f"{name} of the spinner", lambda name=name: query(api, f"{name}{{{pod}}}"), 120, 5)
    wait_until("the CPU usage record of the spinner",
               lambda: query(api, f"namespace_pod_container:container_cpu_usage_seconds:rate5m{{{pod}}}"), 120, 5)
    alert = wait_until("CPUThrottlingHigh pending for the spinner", lambda: [
        a for a in proxied(api, "/api/v1/alerts")["data"]["alerts"]
        if a["labels"]["alertname"] == "CPUThrottlingHigh" and a["labels"].get("pod") == SPINNER["name"]], 180, 5)[0]
    assert alert["state"] in {"pending", "firing"}
    assert float(alert["value"]) > 0.25


# cAdvisor's per-container block I/O bytes come from the blkio controller's per-device counters. Where that
# controller counts nothing (this machine: io_service_bytes is "Total 0" even at the root) it has no row to
# export; on any machine that counts block I/O the test asks for them too.
BLKIO_NAMES = {"container_fs_reads_bytes_total", "container_fs_writes_bytes_total"}


def blkio_counts() -> bool:
    stats = Path("/sys/fs/cgroup/blkio/blkio.throttle.io_service_bytes")
    return not stats.exists() or stats.read_text().split() != ["Total", "0"]


def test_every_cadvisor_and_kubelet_name_we_allow_list_exists_on_a_real_kubelet(real, api):
    """metric_names.ONLY_REAL_KUBELETS (and the PLEG and pod start histograms) were allow-listed because kwok
    runs no kubelet: the real kubelets' series must hold every one of them."""
    names = metric_names.ONLY_REAL_KUBELETS | {
        "kubelet_pleg_relist_duration_seconds_bucket", "kubelet_pod_start_sli_duration_seconds_bucket"}
    if not blkio_counts():
        names -= BLKIO_NAMES

    def missing():
        held = set(proxied(api, '/api/v1/label/__name__/values?match[]={job="kubelet"}')["data"])
        return sorted(names - held) or None
    gone = None
    deadline = time.time() + 90
    while (gone := missing()) and time.time() < deadline:
        time.sleep(5)
    assert not gone, f"allow-listed as 'only on real kubelets', yet the real kubelets do not export: {gone}"
