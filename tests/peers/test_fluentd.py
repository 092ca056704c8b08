"""The real Fluentd on the fluent.conf the logging role installs (peer tier: needs UNIMON_PEER_FLUENTD).

UNIMON_PEER_FLUENTD is a Fluentd command line (v1.18 with fluent-plugin-elasticsearch, kubernetes_metadata_filter,
concat, parser-cri, dedot_filter and prometheus; docs/testing.md says how to get one). The test
- runs the logging role against the lab (external mode, its own namespace and index prefixes), so the
  templates are in the lab's real Elasticsearch and Fluentd's ServiceAccount, RBAC and ConfigMap in the real
  API server, and takes fluent.conf and the DaemonSet's environment back from the API server;
- starts Fluentd in a mount namespace that shows it what its pod sees: /var/log of the real node, the
  ServiceAccount token (a real TokenRequest for the role's ServiceAccount) at /var/run/secrets/..., the API
  server through KUBERNETES_SERVICE_HOST/PORT, and the store at LOGGING_STORE_URL;
- runs pods that print known lines (a pod with app and app.kubernetes.io labels; a pod shaped as KubeVirt's
  virt-launcher with the kubevirt.io/domain annotation; a pod whose label the store refuses).

The pods run on one of the lab's real nodes (tests/real_nodes.py): their log files, with the 16 KiB chunks of
long lines and both streams interleaved, are written by the real containerd and linked by the real kubelet,
and Fluentd sees that node's /var/log. Everything Fluentd talks to is real, but for `GET /` of the store
(see peer_env.StoreRoot)."""
from __future__ import annotations

import datetime
import json
import re
import shutil
import subprocess
import urllib.request
import uuid
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

import real_nodes
from cri_log import CHUNK
from fluentd_documents import VARIABLE_MAPS, container_document, field_paths, vm_console_document
from lab_fixtures import REPO, wait_until
from lab_versions import lab_versions
from peer_env import StoreRoot, free_port, in_pod_paths, peer_command, stop_process

LOG_NS = "unimon-peer-logging"
APP_NS = "unimon-peer-apps"
RUN = uuid.uuid4().hex[:6]
PREFIXES = {"logging_index_prefix": f"pf{RUN}-kubernetes", "logging_vm_index_prefix": f"pf{RUN}-virt-launcher",
            "logging_dead_letter_index_prefix": f"pf{RUN}-dead-letter"}
ROLE = {"logging_namespace": LOG_NS, "logging_ui": False, "logging_fluentd_service_monitor": False, **PREFIXES}
PLAY = str(REPO / "tests" / "integration" / "logging_role.yml")
METRICS_PORT = 24231
ES_VERSION = lab_versions()["ELASTICSEARCH_VERSION"]
# Longer than 16 KiB: the runtime writes them in chunks (P, P, F and P, F).
LONG_OUT, LONG_ERR = "o" * 40000, "e" * 20000


def es(lab, path, method="GET", body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(lab["elasticsearch"] + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def docs(lab, prefix: str, marker: str) -> list[dict]:
    es(lab, f"/{prefix}-*/_refresh", "POST")
    status, body = es(lab, f"/{prefix}-*/_search", "POST", {"size": 100, "query": {"match_phrase": {"message": marker}}})
    return [h["_source"] for h in body.get("hits", {}).get("hits", [])] if status == 200 else []


def scripts() -> dict[str, str]:
    """What each real pod prints: the runtime writes the files, chunks and all."""
    m = f"peer-{RUN}"

    def fill(count: int, char: str) -> str:
        return f"head -c {count} /dev/zero | tr '\\0' {char}"

    return {
        # Both long lines at once, so the runtime interleaves the chunks of the two streams; then, on stderr, a
        # line whose end never comes (the container stops mid-line: only its full 16 KiB chunk is written).
        "web": f"""echo '{m} hello'; echo '{m} oops' >&2
( printf '%s' '{m} long-out '; {fill(len(LONG_OUT), 'o')}; echo ) &
( printf '%s' '{m} long-err '; {fill(len(LONG_ERR), 'e')}; echo ) >&2 &
wait
( printf '%s' '{m} dangling '; {fill(2 * CHUNK, 'd')} ) >&2
exec sleep 3600""",
        "vm": f"echo '[  OK  ] Reached target {m}.'; exec sleep 3600",
        "reject": f"echo '{m} refused by the store'; exec sleep 3600",
    }


@pytest.fixture(scope="module")
def fluentd_cmd():
    return peer_command("UNIMON_PEER_FLUENTD", "a Fluentd v1.18 command line with the plugins the logging role's image carries")


@pytest.fixture(scope="module")
def stack(fluentd_cmd, lab, api, core, playbook, tmp_path_factory):
    """Role applied, pods created, Fluentd started while the store is still unreachable; yields the run."""
    run = playbook(PLAY, "-e", json.dumps(ROLE))
    state: dict = {}
    try:
        assert run.rc == 0, run.out[-4000:]
        node = real_nodes.NODES[0]
        tmp = tmp_path_factory.mktemp("fluentd-peer")
        cm = core.read_namespaced_config_map("fluentd-config", LOG_NS)
        conf = tmp / "fluent.conf"
        conf.write_text(cm.data["fluent.conf"])
        ds = client.AppsV1Api(api).read_namespaced_daemon_set("fluentd", LOG_NS)
        env_names = [e.name for e in ds.spec.template.spec.containers[0].env]

        state["real"] = real_nodes.start(core, APP_NS)
        varlog = state["real"] / node / "varlog"
        shutil.rmtree(varlog / "unimon-fluentd", ignore_errors=True)  # pos files and buffers of an earlier run
        pods = {
            "web": (f"web-{RUN}", "app", {"app": "web", "app.kubernetes.io/name": "web", "app.kubernetes.io/part-of": "peer"}, {}),
            "vm": (f"virt-launcher-db-vm-{RUN[:5]}", "guest-console-log",
                   {"kubevirt.io": "virt-launcher", "vm.kubevirt.io/name": "db", "kubevirt.io/created-by": str(uuid.uuid4())},
                   {"kubevirt.io/domain": "db.vm"}),
            "reject": (f"reject-{RUN}", "app", {"unimon-peer/reject": "not-a-number"}, {}),
        }
        for key, (name, container, labels, annotations) in pods.items():
            real_nodes.busybox_pod(core, APP_NS, name, node, scripts()[key], container=container, labels=labels,
                                   annotations=annotations)

        # A template above ours for this run's container indices maps one label as a number: the store then
        # refuses the records of the "reject" pod, as it refused every dotted label before de-dotting.
        ours = es(lab, f"/_index_template/unimon-{PREFIXES['logging_index_prefix']}")[1]["index_templates"][0]["index_template"]
        ours["priority"] = 300
        ours["template"]["mappings"]["properties"]["kubernetes"]["properties"]["labels"] = {
            "properties": {"unimon-peer/reject": {"type": "long"}}}
        ours.pop("_meta", None)
        assert es(lab, f"/_index_template/peer-reject-{RUN}", "PUT", ours)[0] == 200

        sa = tmp / "serviceaccount"
        sa.mkdir()
        token = core.create_namespaced_service_account_token(
            "fluentd", LOG_NS, client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)))
        (sa / "token").write_text(token.status.token)
        (sa / "ca.crt").write_text(Path(lab["ca"]).read_text())
        (sa / "namespace").write_text(LOG_NS)
        files = {key: real_nodes.log_file(varlog, real_nodes.running(core, APP_NS, name))[0]
                 for key, (name, *_rest) in pods.items()}

        # The store's root is not served yet: Fluentd must tail at once anyway and lose nothing.
        store = StoreRoot(lab["elasticsearch"], ES_VERSION, port=free_port())
        api_host, api_port = lab["api"].split("//")[1].split(":")
        env = {"PATH": "/usr/bin:/bin", "K8S_NODE_NAME": node, "KUBERNETES_SERVICE_HOST": api_host, "KUBERNETES_SERVICE_PORT": api_port,
               "LOGGING_STORE_URL": store.url, "LOGGING_STORE_USERNAME": "unimon-lab", "LOGGING_STORE_PASSWORD": "ignored"}
        missing = [n for n in env_names if n not in env and n != "FLUENTD_CONF"]
        assert not missing, f"the DaemonSet sets {missing}, which this test does not give Fluentd"
        log = tmp / "fluentd.log"
        with open(log, "w") as out:
            proc = in_pod_paths([*fluentd_cmd, "-c", str(conf)],
                                {"/var/log": varlog, "/var/run/secrets/kubernetes.io/serviceaccount": sa},
                                env=env, stdout=out, stderr=subprocess.STDOUT)
        state.update(proc=proc, log=log, store=store, files=files, pods=pods, varlog=varlog, node=node)
        wait_until("Fluentd to start", lambda: "fluentd worker is now running" in log.read_text() or proc.poll() is not None, 60)
        assert proc.poll() is None, log.read_text()[-4000:]
        wait_until("Fluentd to tail the files before the store answers",
                   lambda: all(str(f.name) in (varlog / "unimon-fluentd" / "containers.pos").read_text()
                               for k, f in files.items() if k != "vm"), 60)
        store.start()
        yield state
    finally:
        if "proc" in state:
            stop_process(state["proc"])
            state["store"].stop()
        playbook(PLAY, "-e", json.dumps({**ROLE, "logging_state": "absent"}))
        es(lab, f"/pf{RUN}-*", "DELETE")
        es(lab, f"/_index_template/peer-reject-{RUN}", "DELETE")
        try:
            core.delete_namespace(LOG_NS)
        except ApiException:
            pass
        if "real" in state:
            real_nodes.stop(core, APP_NS)


def dangling_text() -> str:
    return (f"peer-{RUN} dangling " + "d" * CHUNK)[:CHUNK]


def test_container_lines_arrive_with_labels_and_streams(stack, lab):
    prefix = PREFIXES["logging_index_prefix"]
    m = f"peer-{RUN}"
    whole = {f"{m} hello", f"{m} oops", f"{m} long-out {LONG_OUT}", f"{m} long-err {LONG_ERR}"}
    found = wait_until("the container lines in the store",
                       lambda: whole <= {d["message"] for d in docs(lab, prefix, m)} and docs(lab, prefix, m), 90)
    by_message = {d["message"]: d for d in found}
    assert set(by_message) - {dangling_text()} == whole, sorted(k[:60] for k in by_message)
    assert len(found) == len(by_message), "a line arrived twice"
    assert by_message[f"{m} hello"]["stream"] == "stdout" and by_message[f"{m} oops"]["stream"] == "stderr"
    # Chunks joined per stream, not across stdout and stderr.
    assert by_message[f"{m} long-out {LONG_OUT}"]["stream"] == "stdout"
    assert by_message[f"{m} long-err {LONG_ERR}"]["stream"] == "stderr"
    kube = by_message[f"{m} hello"]["kubernetes"]
    assert kube["pod_name"] == f"web-{RUN}" and kube["namespace_name"] == APP_NS and kube["container_name"] == "app"
    assert kube["host"] == stack["node"]
    assert kube["labels"] == {"app": "web", "app_kubernetes_io/name": "web", "app_kubernetes_io/part-of": "peer"}


def test_an_unended_partial_line_is_shipped_after_the_timeout(stack, lab):
    m = f"peer-{RUN} dangling"
    [doc] = wait_until("the dangling partial line", lambda: docs(lab, PREFIXES["logging_index_prefix"], m), 60)
    assert doc["message"] == dangling_text() and doc["stream"] == "stderr" and doc["kubernetes"]["pod_name"] == f"web-{RUN}"


def test_vm_console_lines_carry_the_exact_vmi_name(stack, lab):
    m = f"peer-{RUN}"
    [doc] = wait_until("the console line", lambda: docs(lab, PREFIXES["logging_vm_index_prefix"], m), 90)
    # The VMI is db.vm; the label vm.kubevirt.io/name (the sanitised hostname) says db.
    assert doc["vm_name"] == "db.vm"
    assert doc["kubernetes"]["container_name"] == "guest-console-log"
    assert doc["kubernetes"]["annotations"] == {"kubevirt_io/domain": "db.vm"}
    assert not docs(lab, PREFIXES["logging_index_prefix"], "Reached target"), "console line also in the container index"


def test_refused_records_land_in_the_dead_letter_index_and_are_counted(stack, lab):
    m = f"peer-{RUN} refused"
    [doc] = wait_until("the refused record in the dead-letter index",
                       lambda: docs(lab, PREFIXES["logging_dead_letter_index_prefix"], m), 90)
    original = json.loads(doc["original"])
    assert original["kubernetes"]["labels"] == {"unimon-peer/reject": "not-a-number"}
    assert doc["fluentd_tag"].startswith("kubernetes.")
    # The node, as the field kubernetes.host that container records have (a dotted key in _source).
    on_node = es(lab, f"/{PREFIXES['logging_dead_letter_index_prefix']}-*/_count", "POST", {"query": {"bool": {"filter": [
        {"term": {"kubernetes.host": stack["node"]}}, {"match_phrase": {"message": m}}]}}})[1]
    assert on_node["count"] == 1, on_node
    assert not docs(lab, PREFIXES["logging_index_prefix"], m)
    with urllib.request.urlopen(f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=10) as resp:
        metrics = resp.read().decode()
    counted = re.findall(r'^fluentd_unimon_dead_letter_records_total\{[^}]*\} (\S+)$', metrics, re.M)
    assert counted and sum(float(v) for v in counted) >= 1, metrics[:2000]
    assert "fluentd_output_status_buffer_queue_length" in metrics and "fluentd_output_status_retry_count" in metrics


def test_documents_have_the_fields_the_integration_tier_indexes(stack, lab):
    """tests/fluentd_documents.py stands in for Fluentd where it cannot run: it must match what it wrote."""
    m = f"peer-{RUN} hello"
    [real] = wait_until("the hello line", lambda: docs(lab, PREFIXES["logging_index_prefix"], m), 60)
    [real_vm] = docs(lab, PREFIXES["logging_vm_index_prefix"], f"peer-{RUN}")
    now = datetime.datetime.now(datetime.timezone.utc)
    for got, ours in ((real, container_document(now)), (real_vm, vm_console_document(now))):
        got, ours = field_paths(got, keep=VARIABLE_MAPS), field_paths(ours, keep=VARIABLE_MAPS)
        assert got == ours, f"only Fluentd wrote {sorted(got - ours)}; only the stand-in has {sorted(ours - got)}"


def test_fluentd_log_is_clean_and_the_metadata_watch_is_node_scoped(stack):
    text = stack["log"].read_text()
    # kubernetes_metadata_filter's warning when it does not know its node (it then watches every pod).
    assert "'K8S_NODE_NAME' is not set" not in text, "kubernetes_metadata does not know its node"
    errors = [line for line in text.splitlines() if "[error]" in line or "[warn]" in line and "dump an error event" in line]
    assert not errors, "\n".join(errors[:20])


def test_stops_promptly_on_sigterm(stack):
    took = stop_process(stack["proc"])
    assert took < 20, f"Fluentd took {took:.1f}s to stop on SIGTERM"
    assert stack["proc"].returncode == 0, stack["log"].read_text()[-3000:]
