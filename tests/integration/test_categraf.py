"""categraf on the lab, through a playbook that runs only kubelet_auth and categraf (namespace unimon: the
DaemonSet must run as kubelet_auth's ServiceAccount, whose ClusterRoleBinding names that namespace).

Real: the apiserver's server-side apply, RBAC (SubjectAccessReviews), the DaemonSet controller and scheduler
placing a pod on every kwok node, the audit log proving --check writes nothing. Not here: categraf itself,
which runs in the peer tier (tests/peers/test_categraf.py, UNIMON_PEER_CATEGRAF: its Go module cannot be
fetched from the module proxy, so it is built from its public source outside the repository); kwok only
pretends the pods run. The configuration it would read is checked here, read back from the apiserver.

The host-mode test places files on this machine with a local stand-in file instead of the categraf binary
(see its docstring); it proves file placement, the unit and idempotency, not that categraf runs."""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tomllib
from pathlib import Path

import pytest
from kubernetes import client

from categraf_keys import PROMETHEUS_INSTANCE, unknown_config_keys, unknown_input_keys
from lab_fixtures import wait_until

HERE = Path(__file__).resolve().parent
PLAY = str(HERE / "categraf.yml")
NS = "unimon"


def _exists(fn, *args) -> bool:
    try:
        fn(*args)
        return True
    except client.ApiException as err:
        if err.status == 404:
            return False
        raise


@pytest.fixture(scope="module")
def installed(playbook, api):
    """Install; afterwards remove categraf, and kubelet_auth only when this test brought it."""
    had_identity = _exists(client.RbacAuthorizationV1Api(api).read_cluster_role, "unimon-kubelet-scraper")
    run = playbook(PLAY, "-v")
    assert run.rc == 0, run.out[-3000:]
    yield run
    extra = [] if had_identity else ["-e", "kubelet_auth_state=absent"]
    cleanup = playbook(PLAY, "-e", "categraf_state=absent", *extra)
    assert cleanup.rc == 0, cleanup.out[-3000:]


def daemonset(api) -> client.V1DaemonSet:
    return client.AppsV1Api(api).read_namespaced_daemon_set("categraf", NS)


def allowed(api, sa, verb, resource, subresource=None, namespace=None) -> bool:
    sar = client.V1SubjectAccessReview(spec=client.V1SubjectAccessReviewSpec(
        user=f"system:serviceaccount:{NS}:{sa}", groups=["system:serviceaccounts", f"system:serviceaccounts:{NS}"],
        resource_attributes=client.V1ResourceAttributes(verb=verb, resource=resource, subresource=subresource,
                                                        namespace=namespace)))
    return client.AuthorizationV1Api(api).create_subject_access_review(sar).status.allowed


@pytest.mark.parametrize("verb,resource,subresource,namespace,expected", [
    ("get", "nodes", "metrics", None, True),
    ("get", "nodes", "stats", None, True),
    ("get", "nodes", "proxy", None, False),
    ("get", "secrets", None, "kube-system", False),
    ("get", "secrets", None, NS, False),
    ("create", "pods", "exec", NS, False),
])
def test_daemonset_identity_is_least_privilege(installed, api, verb, resource, subresource, namespace, expected):
    sa = daemonset(api).spec.template.spec.service_account_name
    assert sa == "unimon-kubelet-scraper"
    assert allowed(api, sa, verb, resource, subresource, namespace) is expected


def test_config_read_back_from_the_apiserver(installed, core):
    config = tomllib.loads(core.read_namespaced_config_map("categraf-config", NS).data["config.toml"])
    assert unknown_config_keys(config) == []
    assert config["writers"][0]["url"] == "http://prometheus-unimon.unimon.svc:9090/api/v1/write"
    assert config["heartbeat"]["enable"] is False
    inputs = tomllib.loads(core.read_namespaced_config_map("categraf-inputs", NS).data["prometheus.toml"])
    assert unknown_input_keys(inputs, PROMETHEUS_INSTANCE) == []
    assert sorted(i["labels"]["job"] for i in inputs["instances"]) == [
        "categraf-cadvisor", "categraf-kube-proxy", "categraf-kubelet"]


def test_a_pod_per_node_with_its_node_name(installed, api, core, lab):
    want = sorted(n["name"] for n in lab["nodes"])

    def placed():
        pods = core.list_namespaced_pod(NS, label_selector="app.kubernetes.io/name=categraf").items
        return pods if sorted(p.spec.node_name for p in pods) == want else None
    pods = wait_until("a categraf pod on every node", placed, timeout=90)
    for pod in pods:
        assert pod.spec.host_network is True
        env = {e.name: e.value_from.field_ref.field_path for e in pod.spec.containers[0].env}
        assert env["HOSTNAME"] == "spec.nodeName"
        mounted = {v.name for v in pod.spec.volumes}
        assert "conf" in mounted and any(v.name.startswith("kube-api-access") for v in pod.spec.volumes)
    ds = daemonset(api)
    assert ds.status.desired_number_scheduled == len(want)


def test_rerun_changes_nothing(installed, playbook):
    run = playbook(PLAY)
    assert run.rc == 0 and run.changed == 0, run.out[-3000:]


def test_check_mode_writes_nothing(installed, playbook, audit, api):
    before = daemonset(api).spec.template.metadata.annotations["unimon.io/config-checksum"]
    run = playbook(PLAY, "--check", "--diff", "-e", "categraf_interval=60")
    assert run.rc == 0, run.out[-3000:]
    assert run.changed > 0, "a changed interval should show as a change in check mode"
    # Only writes to categraf's objects count: other runs may share the lab (site.yml applies kubelet_auth too).
    ours = [e["requestURI"] for e in audit.writes() if "categraf" in e["requestURI"]]
    assert ours == []
    assert daemonset(api).spec.template.metadata.annotations["unimon.io/config-checksum"] == before


def test_config_change_rolls_the_pods(installed, playbook, api, core):
    before = daemonset(api).spec.template.metadata.annotations["unimon.io/config-checksum"]
    run = playbook(PLAY, "-e", "categraf_interval=60")
    try:
        assert run.rc == 0, run.out[-3000:]
        assert "interval = 60" in core.read_namespaced_config_map("categraf-config", NS).data["config.toml"]
        assert daemonset(api).spec.template.metadata.annotations["unimon.io/config-checksum"] != before
    finally:
        assert playbook(PLAY).rc == 0
    assert daemonset(api).spec.template.metadata.annotations["unimon.io/config-checksum"] == before


def test_credentials_move_config_into_a_secret_and_stay_out_of_output(installed, playbook, core):
    password = "cg-test-pw-4b1d"
    run = playbook(PLAY, "-e", "categraf_remote_write_username=agent", "-e", f"categraf_remote_write_password={password}",
                   "-v")
    try:
        assert run.rc == 0, run.out[-3000:]
        assert password not in run.out
        assert not _exists(core.read_namespaced_config_map, "categraf-config", NS)
        assert _exists(core.read_namespaced_secret, "categraf-config", NS)
    finally:
        back = playbook(PLAY)
        assert back.rc == 0, back.out[-3000:]
    assert not _exists(core.read_namespaced_secret, "categraf-config", NS)
    assert _exists(core.read_namespaced_config_map, "categraf-config", NS)


def test_absent_removes_everything(installed, playbook, api, core):
    # categraf alone: the identity is the module fixture's to remove.
    run = playbook(PLAY, "-e", "categraf_state=absent", "-e", "categraf_test_identity=false")
    try:
        assert run.rc == 0, run.out[-3000:]
        assert not _exists(client.AppsV1Api(api).read_namespaced_daemon_set, "categraf", NS)
        for name in ("categraf-config", "categraf-inputs"):
            assert not _exists(core.read_namespaced_config_map, name, NS)
        assert not _exists(core.read_namespaced_secret, "categraf-config", NS)
        again = playbook(PLAY, "-e", "categraf_state=absent", "-e", "categraf_test_identity=false")
        assert again.rc == 0 and again.changed == 0, again.out[-3000:]
    finally:
        assert playbook(PLAY).rc == 0  # the module fixture's teardown removes it for good


@pytest.fixture
def host_paths(tmp_path):
    return {"categraf_host_binary_path": str(tmp_path / "bin" / "categraf"),
            "categraf_host_config_dir": str(tmp_path / "etc" / "categraf" / "conf"),
            "categraf_host_unit_dir": str(tmp_path / "systemd"),
            "categraf_host_user": "unimon-cg-test"}


def test_host_mode_places_files_and_removes_them(playbook, tmp_path, host_paths):
    """Host mode on this machine. A stand-in file (a copy of /usr/bin/true), not the categraf binary, is
    installed through categraf_host_source=file, because the release tarball cannot be downloaded (the peer
    tier runs the real categraf on the same templates); and the service is not started
    (categraf_host_manage_service=false: systemd is not PID 1 in this sandbox). What this proves: the binary,
    config.toml, the machine's inputs (and no empty input.prometheus) and the systemd unit land where they
    should with the right modes, the unit passes `systemd-analyze verify`, a rerun changes nothing, an input
    taken out of categraf_system_inputs loses its directory, and state=absent removes every file and the user."""
    stand_in = tmp_path / "categraf-stand-in"
    shutil.copy("/usr/bin/true", stand_in)
    (tmp_path / "bin").mkdir()
    (tmp_path / "systemd").mkdir()
    args = ["-e", "categraf_mode=host", "-e", "categraf_host_source=file", "-e", f"categraf_host_local_file={stand_in}",
            "-e", "categraf_host_manage_service=false",
            "-e", "categraf_remote_write_url=http://prometheus.example:9090/api/v1/write"]
    for key, value in host_paths.items():
        args += ["-e", f"{key}={value}"]
    run = playbook(PLAY, *args)
    try:
        assert run.rc == 0, run.out[-3000:]
        binary = Path(host_paths["categraf_host_binary_path"])
        conf = Path(host_paths["categraf_host_config_dir"])
        unit = Path(host_paths["categraf_host_unit_dir"]) / "categraf.service"
        assert stat.S_IMODE(binary.stat().st_mode) == 0o755
        assert binary.read_bytes() == stand_in.read_bytes()
        config = tomllib.loads((conf / "config.toml").read_text())
        assert unknown_config_keys(config) == []
        assert config["writers"][0]["url"] == "http://prometheus.example:9090/api/v1/write"
        assert stat.S_IMODE((conf / "config.toml").stat().st_mode) == 0o640
        inputs = sorted(p.name for p in conf.iterdir() if p.name.startswith("input."))
        assert inputs == sorted(f"input.{n}" for n in ("cpu", "mem", "disk", "diskio", "net", "netstat", "system", "kernel", "processes"))
        assert (conf / "input.mem" / "mem.toml").is_file()
        text = unit.read_text()
        assert f"ExecStart={binary} --configs={conf}" in text and "User=unimon-cg-test" in text
        verify = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False)
        assert verify.returncode == 0, verify.stderr
        again = playbook(PLAY, *args)
        assert again.rc == 0 and again.changed == 0, again.out[-3000:]
        fewer = playbook(PLAY, *args, "-e", json.dumps({"categraf_system_inputs": {"cpu": {}}}))
        assert fewer.rc == 0, fewer.out[-3000:]
        assert sorted(p.name for p in conf.iterdir() if p.name.startswith("input.")) == ["input.cpu"]
    finally:
        gone = playbook(PLAY, *args, "-e", "categraf_state=absent")
        assert gone.rc == 0, gone.out[-3000:]
    for key in ("categraf_host_binary_path", "categraf_host_config_dir"):
        assert not os.path.exists(host_paths[key])
    assert not (Path(host_paths["categraf_host_unit_dir"]) / "categraf.service").exists()
    assert subprocess.run(["id", "unimon-cg-test"], capture_output=True, check=False).returncode != 0


def test_verify_requires_up_on_every_node(playbook, lab, tmp_path):
    """The verify role's categraf check against the lab's real Prometheus. categraf runs only in the peer
    tier (tests/peers/test_categraf.py, which shows it writes up=0 with the job and node labels for a
    failed scrape), so `promtool push metrics` (Prometheus' own remote-write client) writes such samples
    here: one job up on one node, one job down. verify passes only for what is up on every node."""
    prefix = f"cgv{os.getpid()}-"
    for job, value in (("kubelet", 1), ("cadvisor", 0)):
        sample = tmp_path / f"{job}.prom"
        sample.write_text(f'# TYPE up gauge\nup{{node="lab-node-1",agent_hostname="lab-node-1"}} {value}\n')
        push = subprocess.run([lab["promtool"], "push", "metrics", f"--label=job={prefix}{job}", lab["prometheus"], str(sample)],
                              capture_output=True, text=True, check=False)
        assert push.returncode == 0, push.stdout + push.stderr
    derived = ["node-exporter", "kube-state-metrics", "prometheus-unimon", "alertmanager-unimon", "apiserver",
               "kubelet", "kube-scheduler", "kube-controller-manager", "kube-proxy", "kube-dns", "etcd", "grafana", "fluentd"]

    def verify(jobs, nodes=1, timeout=30):
        return playbook("verify.yml", "-e", json.dumps({
            "verify_prometheus_url": lab["prometheus"], "verify_categraf": True, "verify_timeout": timeout,
            "verify_skip_jobs": derived, "verify_categraf_jobs": [prefix + j for j in jobs], "verify_categraf_nodes": nodes}))

    found = verify(["kubelet"])
    assert found.rc == 0, found.out[-3000:]
    down = verify(["kubelet", "cadvisor"], timeout=5)
    assert down.rc != 0 and f'{prefix}cadvisor' in down.out and "is below 1" in down.out, down.out[-3000:]
    one_of_two = verify(["kubelet"], nodes=2, timeout=5)
    assert one_of_two.rc != 0 and "is below 2" in one_of_two.out, one_of_two.out[-3000:]
    missing = verify(["nobody"], timeout=5)
    assert missing.rc != 0 and f"{prefix}nobody" in missing.out, missing.out[-3000:]
    # Counting the DaemonSet's nodes where there is none must fail, not pass with "at least 0".
    nowhere = playbook("verify.yml", "-e", json.dumps({
        "verify_prometheus_url": lab["prometheus"], "verify_categraf": True, "verify_timeout": 5, "verify_skip_jobs": derived,
        "verify_categraf_jobs": [prefix + "kubelet"], "verify_categraf_namespace": "unimon-no-such-namespace"}))
    assert nowhere.rc != 0 and "does not exist" in nowhere.out, nowhere.out[-3000:]
