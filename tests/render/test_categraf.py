"""categraf's rendered configuration: the TOML parses (tomllib), uses only keys categraf reads
(categraf_keys.py, from its source structs), carries what the issue asks for (cluster label, writer with
timeouts, heartbeat off without Nightingale, a job label per instance, TLS verified against the cluster CA),
and the DaemonSet is wired to it (host network, node name as HOSTNAME, kubelet_auth's ServiceAccount,
checksum annotation that changes with the configuration). The same templates serve host mode; its
systemd unit goes through the real `systemd-analyze verify`.

categraf itself is not run: it cannot be built here (flashcat.cloud/categraf and
github.com/flashcatcloud/categraf are 403 at the Go module proxy)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from categraf_keys import REQUIRED, PROMETHEUS_INSTANCE, unknown_config_keys, unknown_input_keys
from manifests import load_all

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def render_cg(tmp_path_factory):
    """render_cg(**vars) -> (objects by kind/name, directory) with categraf's templates rendered."""
    def _render(**extra):
        out = tmp_path_factory.mktemp("categraf")
        res = subprocess.run([str(BIN / "ansible-playbook"), str(HERE / "render.yml"), "-e", "role=categraf",
                              "-e", f"out={out}", "-e", json.dumps(extra)],
                             capture_output=True, text=True, check=False)
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
        objs = {f"{o['kind']}/{o['metadata']['name']}": o for o in load_all(out / "categraf.yaml")}
        return objs, out
    return _render


def config_of(objs) -> str:
    holder = objs.get("ConfigMap/categraf-config") or objs["Secret/categraf-config"]
    return (holder.get("data") or holder.get("stringData"))["config.toml"]


def check_keys(objs) -> tuple[dict, dict]:
    config = tomllib.loads(config_of(objs))
    assert unknown_config_keys(config) == []
    for table, keys in REQUIRED.items():
        entry = config[table][0] if isinstance(config[table], list) else config[table]
        assert keys <= set(entry), f"[{table}] lacks {keys - set(entry)}"
    inputs = {k: tomllib.loads(v) for k, v in objs["ConfigMap/categraf-inputs"]["data"].items()}
    for name, doc in inputs.items():
        assert unknown_input_keys(doc, PROMETHEUS_INSTANCE if name == "prometheus.toml" else None) == [], name
    return config, inputs


def daemonset_pod(objs) -> dict:
    return objs["DaemonSet/categraf"]["spec"]["template"]


def test_defaults(render_cg):
    objs, out = render_cg()
    config, inputs = check_keys(objs)
    assert config["global"]["hostname"] == "$HOSTNAME"
    assert config["global"]["labels"] == {"cluster": "unimon"}
    assert config["global"]["interval"] == 15
    (writer,) = config["writers"]
    assert writer["url"] == "http://prometheus-unimon.unimon.svc:9090/api/v1/write"
    assert writer["timeout"] > 0 and writer["dial_timeout"] > 0
    assert config["heartbeat"] == {"enable": False}
    assert config["http"]["enable"] is False and config["ibex"]["enable"] is False
    instances = {i["labels"]["job"]: i for i in inputs["prometheus.toml"]["instances"]}
    assert set(instances) == {"categraf-kube-proxy", "categraf-kubelet", "categraf-cadvisor"}
    assert instances["categraf-kube-proxy"]["urls"] == ["http://127.0.0.1:10249/metrics"]
    assert instances["categraf-kubelet"]["urls"] == ["https://${HOSTIP}:10250/metrics"]
    assert instances["categraf-cadvisor"]["urls"] == ["https://${HOSTIP}:10250/metrics/cadvisor"]
    for job in ("categraf-kubelet", "categraf-cadvisor"):
        i = instances[job]
        assert i["use_tls"] is True and i["insecure_skip_verify"] is False
        assert i["tls_ca"] == "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
        assert i["bearer_token_file"] == "/var/run/secrets/kubernetes.io/serviceaccount/token"
    # The same templates, rendered as files for host mode, are the same text.
    assert (out / "config.toml").read_text() == config_of(objs)
    assert (out / "prometheus.toml").read_text() == objs["ConfigMap/categraf-inputs"]["data"]["prometheus.toml"]


def test_daemonset_wiring(render_cg):
    objs = render_cg()[0]
    pod = daemonset_pod(objs)
    spec = pod["spec"]
    kubelet_auth = yaml.safe_load((REPO / "roles" / "kubelet_auth" / "defaults" / "main.yml").read_text())
    assert spec["serviceAccountName"] == kubelet_auth["kubelet_auth_service_account"]
    assert spec["hostNetwork"] is True and spec["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert spec["tolerations"] == [{"operator": "Exists"}]
    (ctr,) = spec["containers"]
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in ctr["env"]}
    assert env == {"HOSTNAME": "spec.nodeName", "HOSTIP": "status.hostIP"}
    assert ctr["resources"]["requests"] and ctr["resources"]["limits"]["memory"]
    assert ctr["image"] == "docker.io/flashcatcloud/categraf:v0.4.25"
    assert "--configs=/etc/categraf/conf" in ctr["args"]
    assert ctr["volumeMounts"] == [{"name": "conf", "mountPath": "/etc/categraf/conf", "readOnly": True}]
    paths = sorted(i["path"] for s in spec["volumes"][0]["projected"]["sources"] for i in next(iter(s.values()))["items"])
    assert paths == ["config.toml", "input.prometheus/prometheus.toml"]
    assert len(pod["metadata"]["annotations"]["unimon.io/config-checksum"]) == 64


def test_registry_override_and_checksum_rollout(render_cg):
    base = render_cg()[0]
    other = render_cg(unimon_image_registry="mirror.example:5000", categraf_interval=30)[0]
    assert daemonset_pod(other)["spec"]["containers"][0]["image"] == "mirror.example:5000/flashcatcloud/categraf:v0.4.25"
    key = "unimon.io/config-checksum"
    assert daemonset_pod(base)["metadata"]["annotations"][key] != daemonset_pod(other)["metadata"]["annotations"][key]
    same = render_cg()[0]
    assert daemonset_pod(same)["metadata"]["annotations"][key] == daemonset_pod(base)["metadata"]["annotations"][key]


def test_other_receiver_credentials_and_nightingale(render_cg):
    objs = render_cg(categraf_remote_write_url="https://vm.example:8428/api/v1/write",
                     categraf_remote_write_username="agent", categraf_remote_write_password="s3cr\"et",
                     categraf_remote_write_headers={"X-Scope-OrgID": "team-a"},
                     categraf_remote_write_ca="/etc/ssl/vm-ca.pem",
                     categraf_nightingale_address="http://n9e.example:17000/",
                     categraf_labels={"region": "eu-1"})[0]
    assert "ConfigMap/categraf-config" not in objs, "credentials must not land in a ConfigMap"
    assert objs["Secret/categraf-config"]["type"] == "Opaque"
    assert "s3cr" not in json.dumps(objs["ConfigMap/categraf-inputs"])
    config = check_keys(objs)[0]
    (writer,) = config["writers"]
    assert writer["url"] == "https://vm.example:8428/api/v1/write"
    assert (writer["basic_auth_user"], writer["basic_auth_pass"]) == ("agent", 's3cr"et')
    assert writer["headers"] == ["X-Scope-OrgID", "team-a"]
    assert writer["use_tls"] is True and writer["tls_ca"] == "/etc/ssl/vm-ca.pem"
    assert config["heartbeat"]["enable"] is True
    assert config["heartbeat"]["url"] == "http://n9e.example:17000/v1/n9e/heartbeat"
    assert config["global"]["labels"] == {"cluster": "unimon", "region": "eu-1"}
    sources = daemonset_pod(objs)["spec"]["volumes"][0]["projected"]["sources"]
    assert sources[0]["secret"]["name"] == "categraf-config"


def test_extra_inputs_instances_and_insecure_opt_in(render_cg):
    objs = render_cg(
        categraf_kubelet_insecure_skip_verify=True, categraf_scrape_kube_proxy=False,
        categraf_prometheus_extra_instances=[{"urls": ["http://127.0.0.1:9100/metrics"], "labels": {"job": "node"},
                                              "ignore_metrics": ["go_*"]}],
        categraf_extra_inputs=[{"plugin": "mysql", "interval": 30,
                                "instances": [{"address": "db:3306", "username": "m", "labels": {"team": "db"},
                                               "gather_slave_status": True}]}])[0]
    inputs = check_keys(objs)[1]
    jobs = [i["labels"]["job"] for i in inputs["prometheus.toml"]["instances"]]
    assert jobs == ["categraf-kubelet", "categraf-cadvisor", "node"]
    assert all(i["insecure_skip_verify"] for i in inputs["prometheus.toml"]["instances"][:2])
    assert inputs["mysql.toml"] == {"interval": 30, "instances": [
        {"address": "db:3306", "gather_slave_status": True, "labels": {"team": "db"}, "username": "m"}]}
    paths = sorted(i["path"] for s in daemonset_pod(objs)["spec"]["volumes"][0]["projected"]["sources"]
                   for i in next(iter(s.values()))["items"])
    assert paths == ["config.toml", "input.mysql/mysql.toml", "input.prometheus/prometheus.toml"]


def test_host_mode_config(render_cg):
    out = render_cg(categraf_mode="host")[1]
    config = tomllib.loads((out / "config.toml").read_text())
    assert unknown_config_keys(config) == []
    assert config["global"]["hostname"] == ""  # categraf detects the host name itself
    prom = tomllib.loads((out / "prometheus.toml").read_text())
    assert prom.get("instances", []) == []  # no kubelet or kube-proxy on a plain host unless asked


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_unit_passes_systemd_analyze(render_cg):
    out = render_cg(categraf_mode="host", categraf_host_binary_path="/usr/bin/true")[1]
    res = subprocess.run(["systemd-analyze", "verify", str(out / "categraf.service")],
                         capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr


def test_key_checker_catches_unknown_keys():
    """Guards against a vacuous check: a misspelt key in either file is reported."""
    assert unknown_config_keys({"global": {"hostnmae": "x"}, "writers": [{"url": "u", "timeout_ms": 1}],
                                "heartbeat": {"enable": False}}) == ["global.hostnmae", "writers.timeout_ms"]
    assert unknown_input_keys({"instances": [{"urls": [], "bearer_token": "x"}]}, PROMETHEUS_INSTANCE) == [
        "instances[0].bearer_token"]
