"""categraf's rendered configuration: the TOML parses (tomllib), uses only keys categraf reads
(categraf_keys.py, from its source structs), carries what the issue asks for (cluster label, writer with
timeouts, heartbeat off without Nightingale, a job label per instance, TLS verified against the cluster CA),
and the DaemonSet is wired to it (host network, node name as HOSTNAME, kubelet_auth's ServiceAccount,
checksum annotation that changes with the configuration). The same templates serve host mode; its
systemd unit goes through the real `systemd-analyze verify`.

The pod's view of its volumes is laid out as the kubelet lays it out (tests/pod_view.py): categraf keeps
only real directories named input.*, so each input must be one. categraf itself runs on these files in the
peer tier (tests/peers/test_categraf.py, UNIMON_PEER_CATEGRAF)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from categraf_keys import REQUIRED, PROMETHEUS_INSTANCE, SYSTEM_INPUT_KEYS, unknown_config_keys, unknown_input_keys
from manifests import load_all
from pod_view import lay_out

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
        plugin = name.removesuffix(".toml")
        assert unknown_input_keys(doc, PROMETHEUS_INSTANCE if plugin == "prometheus" else None,
                                  SYSTEM_INPUT_KEYS.get(plugin, frozenset())) == [], name
    return config, inputs


def daemonset_pod(objs) -> dict:
    return objs["DaemonSet/categraf"]["spec"]["template"]


def conf_dir_as_the_pod_sees_it(objs, tmp: Path) -> Path:
    """The --configs directory inside the container, laid out as the kubelet would; every input.* checked
    to be what categraf takes (a real directory holding <name>.toml)."""
    pod = daemonset_pod(objs)["spec"]
    [arg] = [a for a in pod["containers"][0]["args"] if a.startswith("--configs=")]
    conf = lay_out(pod, "categraf", objs, tmp) / arg.split("=", 1)[1].lstrip("/")
    assert (conf / "config.toml").read_text() == config_of(objs)
    for name in objs["ConfigMap/categraf-inputs"]["data"]:
        entry = conf / f"input.{name.removesuffix('.toml')}"
        assert entry.is_dir() and not entry.is_symlink(), f"{entry.name} is not a real directory: categraf skips it"
        assert (entry / name).read_text() == objs["ConfigMap/categraf-inputs"]["data"][name]
    return conf


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
    # kube-proxy's instance is 127.0.0.1:10249 on every node: the node label (categraf expands $HOSTNAME,
    # the pod's spec.nodeName) tells the nodes apart, and verify counts nodes by it.
    assert {i["labels"]["node"] for i in instances.values()} == {"$HOSTNAME"}
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
    # The kubelet_auth role's ServiceAccount, defined in roles/_common because categraf reads it.
    shared = yaml.safe_load((REPO / "roles" / "_common" / "defaults" / "main.yml").read_text())
    assert spec["serviceAccountName"] == shared["kubelet_auth_service_account"] == "unimon-kubelet-scraper"
    assert spec["hostNetwork"] is True and spec["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert spec["tolerations"] == [{"operator": "Exists"}]
    (ctr,) = spec["containers"]
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in ctr["env"]}
    assert env == {"HOSTNAME": "spec.nodeName", "HOSTIP": "status.hostIP"}
    assert ctr["resources"]["requests"] and ctr["resources"]["limits"]["memory"]
    assert ctr["image"] == "docker.io/flashcatcloud/categraf:v0.4.25"
    assert "--configs=/etc/categraf/conf" in ctr["args"]
    assert {m["mountPath"] for m in ctr["volumeMounts"]} == {"/etc/categraf/conf", "/etc/categraf/conf/input.prometheus"}
    assert all(m["readOnly"] for m in ctr["volumeMounts"])
    assert len(pod["metadata"]["annotations"]["unimon.io/config-checksum"]) == 64


def test_inputs_are_real_directories_in_the_pod(render_cg, tmp_path):
    objs = render_cg(categraf_extra_inputs=[{"plugin": "mem", "instances": [{}]}, {"plugin": "net_response", "instances": [{}]}])[0]
    conf = conf_dir_as_the_pod_sees_it(objs, tmp_path)
    assert sorted(p.name for p in conf.iterdir() if p.name.startswith("input.")) == [
        "input.mem", "input.net_response", "input.prometheus"]


def test_the_checker_sees_what_categraf_skips(tmp_path):
    """The layout of one projected volume (inputs as items input.x/x.toml) is what categraf found no input in."""
    objs = {"ConfigMap/c": {"data": {"config.toml": "", "prometheus.toml": "x"}}}
    pod = {"containers": [{"name": "categraf", "volumeMounts": [{"name": "v", "mountPath": "/conf"}]}],
           "volumes": [{"name": "v", "projected": {"sources": [{"configMap": {"name": "c", "items": [
               {"key": "config.toml", "path": "config.toml"},
               {"key": "prometheus.toml", "path": "input.prometheus/prometheus.toml"}]}}]}}]}
    entry = lay_out(pod, "categraf", objs, tmp_path) / "conf" / "input.prometheus"
    assert entry.is_symlink() and (entry / "prometheus.toml").read_text() == "x"


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
                     categraf_remote_write_ca_cert="-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
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
    # The CA given as PEM is mounted where tls_ca points (categraf exits when the file is missing).
    assert writer["use_tls"] is True and writer["tls_ca"] == "/etc/categraf/writer-ca/ca.crt"
    assert objs["ConfigMap/categraf-writer-ca"]["data"]["ca.crt"].startswith("-----BEGIN CERTIFICATE-----")
    [ctr] = daemonset_pod(objs)["spec"]["containers"]
    assert {"name": "writer-ca", "mountPath": "/etc/categraf/writer-ca", "readOnly": True} in ctr["volumeMounts"]
    assert config["heartbeat"]["enable"] is True
    assert config["heartbeat"]["url"] == "http://n9e.example:17000/v1/n9e/heartbeat"
    assert config["global"]["labels"] == {"cluster": "unimon", "region": "eu-1"}
    [conf] = [v for v in daemonset_pod(objs)["spec"]["volumes"] if v["name"] == "conf"]
    assert conf["secret"]["secretName"] == "categraf-config"


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
    mounts = sorted(m["mountPath"] for m in daemonset_pod(objs)["spec"]["containers"][0]["volumeMounts"])
    assert mounts == ["/etc/categraf/conf", "/etc/categraf/conf/input.mysql", "/etc/categraf/conf/input.prometheus"]


def test_host_mode_config(render_cg):
    objs, out = render_cg(categraf_mode="host", categraf_system_inputs={"mem": {"collect_platform_fields": True}, "cpu": {}})
    config = tomllib.loads((out / "config.toml").read_text())
    assert unknown_config_keys(config) == []
    assert config["global"]["hostname"] == ""  # categraf detects the host name itself
    inputs = check_keys(objs)[1]
    # No kubelet or kube-proxy on a plain host unless asked: no input.prometheus at all (categraf would skip
    # it without a word); the machine's own inputs instead, their options at the top of the file.
    assert sorted(inputs) == ["cpu.toml", "mem.toml"]
    assert inputs["mem.toml"] == {"collect_platform_fields": True} and inputs["cpu.toml"] == {}


def test_host_mode_collects_the_machine_by_default(render_cg):
    inputs = check_keys(render_cg(categraf_mode="host")[0])[1]
    assert sorted(inputs) == sorted(f"{p}.toml" for p in SYSTEM_INPUT_KEYS)


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
