"""The real categraf on what the categraf role renders (peer tier: needs UNIMON_PEER_CATEGRAF, a categraf
v0.4.25 binary; docs/testing.md says how to build one from its public source).

The DaemonSet's volumes are laid out as the kubelet lays them out (tests/pod_view.py: symlinks into ..data,
nested mount points as real directories), the ServiceAccount token is a real TokenRequest token at
/var/run/secrets/kubernetes.io/serviceaccount (a mount namespace shows it there), and categraf remote-writes
into the lab's real Prometheus. The lab's nodes run no kubelet yet, so the kubelet's address is pointed at
the lab's kube-apiserver, which serves /metrics the same way (HTTPS with the cluster CA, bearer token,
RBAC), and answers /metrics/cadvisor with 404: categraf then writes up=0 for the cadvisor job, which is
what verify must refuse."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from lab_fixtures import REPO, wait_until
from manifests import load_all
from peer_env import in_pod_paths, peer_command, stop_process
from pod_view import lay_out

RUN = uuid.uuid4().hex[:6]
NS = "unimon-peer-categraf"
SA = "categraf-peer"
PREFIX = f"pc{RUN}-"


def query(lab, promql: str) -> list[dict]:
    url = lab["prometheus"] + "/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())["data"]["result"]


def render(tmp: Path, **extra) -> dict:
    out = tmp / "render"
    out.mkdir()
    res = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), str(REPO / "tests" / "render" / "render.yml"),
                          "-e", "role=categraf", "-e", f"out={out}", "-e", json.dumps(extra)],
                         capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    return {f"{o['kind']}/{o['metadata']['name']}": o for o in load_all(out / "categraf.yaml")}


@pytest.fixture(scope="module")
def categraf_bin():
    return peer_command("UNIMON_PEER_CATEGRAF", "a categraf v0.4.25 binary")


@pytest.fixture(scope="module")
def identity(lab, api, core):
    """A ServiceAccount allowed what the kubelet_auth role's identity is allowed on a kubelet, here on the
    apiserver's /metrics; its token from the TokenRequest API."""
    rbac = client.RbacAuthorizationV1Api(api)
    try:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
    except ApiException as err:
        if err.status != 409:
            raise
    core.create_namespaced_service_account(NS, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=SA)))
    rbac.create_cluster_role(client.V1ClusterRole(metadata=client.V1ObjectMeta(name=NS), rules=[
        client.V1PolicyRule(non_resource_ur_ls=["/metrics", "/metrics/cadvisor"], verbs=["get"])]))
    rbac.create_cluster_role_binding(client.V1ClusterRoleBinding(
        metadata=client.V1ObjectMeta(name=NS),
        role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=NS),
        subjects=[client.RbacV1Subject(kind="ServiceAccount", name=SA, namespace=NS)]))
    token = core.create_namespaced_service_account_token(SA, NS, client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600))).status.token
    yield token
    for delete in (lambda: rbac.delete_cluster_role_binding(NS), lambda: rbac.delete_cluster_role(NS),
                   lambda: core.delete_namespace(NS)):
        try:
            delete()
        except ApiException:
            pass


def start(categraf_bin, objs, tmp: Path, token: str, ca: str, node: str, api_port: str) -> tuple[subprocess.Popen, Path]:
    pod = objs["DaemonSet/categraf"]["spec"]["template"]["spec"]
    root = lay_out(pod, "categraf", objs, tmp / "pod")
    [arg] = [a for a in pod["containers"][0]["args"] if a.startswith("--configs=")]
    sa = tmp / "sa"
    sa.mkdir()
    (sa / "token").write_text(token)
    (sa / "ca.crt").write_text(Path(ca).read_text())
    # The pod's environment: HOSTNAME from spec.nodeName, HOSTIP from status.hostIP (here the apiserver's).
    env = {"PATH": "/usr/bin:/bin", "HOSTNAME": node, "HOSTIP": "127.0.0.1", "PEER_RUN": RUN}
    assert {e["name"] for e in pod["containers"][0]["env"]} <= set(env)
    log = tmp / "categraf.log"
    with open(log, "w") as out:
        proc = in_pod_paths([*categraf_bin, f"--configs={root}{arg.split('=', 1)[1]}"],
                            {"/var/run/secrets/kubernetes.io/serviceaccount": sa}, env=env, stdout=out, stderr=subprocess.STDOUT)
    return proc, log


@pytest.fixture(scope="module")
def running(categraf_bin, identity, lab, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("categraf-peer")
    api_port = lab["api"].rsplit(":", 1)[1]
    objs = render(tmp, categraf_kubelet_port=int(api_port), categraf_job_prefix=PREFIX, categraf_interval=2,
                  categraf_remote_write_url=lab["prometheus"] + "/api/v1/write", categraf_cluster_name=f"peer-{RUN}",
                  categraf_labels={"peer_run": "run-$PEER_RUN"}, unimon_detected={"kube_proxy_scrapable": False},
                  categraf_system_inputs={"mem": {"collect_platform_fields": True}})
    node = lab["nodes"][0]["name"]
    proc, log = start(categraf_bin, objs, tmp, identity, lab["ca"], node, api_port)
    yield {"proc": proc, "log": log, "node": node, "objs": objs}
    stop_process(proc, timeout=15)


def test_inputs_are_found_and_samples_arrive(running, lab):
    series = wait_until("categraf's kubelet-job samples in Prometheus",
                        lambda: query(lab, f'apiserver_request_total{{job="{PREFIX}kubelet"}}'), 60)
    labels = series[0]["metric"]
    assert labels["cluster"] == f"peer-{RUN}" and labels["node"] == running["node"]
    assert labels["agent_hostname"] == running["node"] and labels["instance"] == "127.0.0.1:" + lab["api"].rsplit(":", 1)[1]
    # $NAME in a label value is categraf's: it arrives expanded from the environment.
    assert labels["peer_run"] == f"run-{RUN}"
    text = running["log"].read_text()
    assert "no inputs" not in text and "input: local.prometheus started" in text, text[-3000:]
    # A machine input with its option at the top of its file.
    assert wait_until("mem samples", lambda: query(lab, f'mem_total{{cluster="peer-{RUN}"}}'), 30)


def test_up_is_written_for_failed_scrapes_and_verify_refuses_them(running, lab, playbook):
    ok = wait_until("up of the kubelet job", lambda: query(lab, f'up{{job="{PREFIX}kubelet"}}'), 60)
    bad = wait_until("up of the cadvisor job", lambda: query(lab, f'up{{job="{PREFIX}cadvisor"}}'), 60)
    assert ok[0]["value"][1] == "1" and bad[0]["value"][1] == "0"
    assert bad[0]["metric"]["node"] == running["node"]
    derived = ["node-exporter", "kube-state-metrics", "prometheus-unimon", "alertmanager-unimon", "apiserver",
               "kubelet", "kube-scheduler", "kube-controller-manager", "kube-proxy", "kube-dns", "etcd", "grafana", "fluentd"]
    base = {"verify_prometheus_url": lab["prometheus"], "verify_categraf": True, "verify_skip_jobs": derived,
            "verify_categraf_nodes": 1, "categraf_job_prefix": PREFIX, "unimon_detected": {"kube_proxy_scrapable": False}}
    # The jobs verify derives from the categraf role's defaults: kubelet and cadvisor (no kube-proxy here).
    refused = playbook("verify.yml", "-e", json.dumps({**base, "verify_timeout": 10}))
    assert refused.rc != 0 and f"{PREFIX}cadvisor" in refused.out, refused.out[-3000:]
    passed = playbook("verify.yml", "-e", json.dumps({**base, "verify_timeout": 30, "categraf_scrape_cadvisor": False}))
    assert passed.rc == 0, passed.out[-3000:]


def test_the_symlink_layout_gives_categraf_no_inputs(categraf_bin, running, tmp_path):
    """What tests/pod_view.py and the render test rely on, shown on categraf itself: input.* entries that are
    symlinks (one projected volume) are not read."""
    conf = tmp_path / "conf"
    (tmp_path / "data" / "input.prometheus").mkdir(parents=True)
    real = running["objs"]
    (conf).mkdir()
    (conf / "config.toml").write_text((real.get("ConfigMap/categraf-config") or {}).get("data", {}).get("config.toml", ""))
    (tmp_path / "data" / "input.prometheus" / "prometheus.toml").write_text(real["ConfigMap/categraf-inputs"]["data"]["prometheus.toml"])
    (conf / "input.prometheus").symlink_to(tmp_path / "data" / "input.prometheus")
    log = tmp_path / "categraf.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([*categraf_bin, f"--configs={conf}"], stdout=out, stderr=subprocess.STDOUT,
                                env={"PATH": "/usr/bin:/bin", "HOSTIP": "127.0.0.1", "HOSTNAME": "lab"})
    try:
        wait_until("categraf to report its inputs", lambda: "no inputs" in log.read_text() or "started" in log.read_text(), 30)
    finally:
        stop_process(proc, timeout=15)
    text = log.read_text()
    assert "no inputs" in text and not re.search(r"input: local\.prometheus started", text), text[-3000:]
