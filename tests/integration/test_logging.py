"""The logging role on the lab.

Install mode, in a namespace of its own: every object applies server-side and converges (kwok reports the
pods running; a PersistentVolume made here lets the store's claim bind), a rerun changes nothing and keeps
the generated CA, certificate and passwords, --check writes nothing, state=absent removes everything but
the data volume, which goes only with logging_remove_data.

External mode, against the lab's real Elasticsearch: the index templates the role puts are there with our
mappings, a rerun sends no write, --check sends none either; documents with the fields real Fluentd writes
on our fluent.conf (tests/fluentd_documents.py, which the peer tier checks against the real Fluentd:
tests/peers/test_fluentd.py) are mapped as the templates say, de-dotted label keys included, and are found
by the verify role's log-stream check (unimon.stack.log_flow); absent removes the templates. Fluentd itself
runs only in the peer tier, so here the documents are indexed by the test."""
from __future__ import annotations

import base64
import datetime
import json
import os
import subprocess
import sys
import urllib.request
import uuid

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from kubernetes import client
from kubernetes.client.rest import ApiException

from fluentd_documents import container_document, vm_console_document
from lab_fixtures import REPO, PlaybookRun

NS = "unimon-logtest"
EXT_NS = "unimon-logtest-ext"
RUN = uuid.uuid4().hex[:6]
PREFIXES = {"logging_index_prefix": f"lt{RUN}-kubernetes", "logging_vm_index_prefix": f"lt{RUN}-virt-launcher",
            "logging_dead_letter_index_prefix": f"lt{RUN}-dead-letter"}


def role(*args: str, extra: dict, playbook: str = "logging_role.yml") -> PlaybookRun:
    if "ANSIBLE_COLLECTIONS_PATH" not in os.environ:
        pytest.fail("ANSIBLE_COLLECTIONS_PATH is not set: run the lab tiers through make (make integration)")
    cmd = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", str(REPO / "lab" / "inventory.yml"),
           str(REPO / "tests" / "integration" / playbook), "-e", json.dumps(extra), *args]
    env = {**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1"}
    return PlaybookRun(subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=900, env=env))


def es(lab, path: str, method: str = "GET", body=None, ndjson: bool = False):
    data = None
    if body is not None:
        data = (body if ndjson else json.dumps(body)).encode()
    req = urllib.request.Request(lab["elasticsearch"] + path, data=data, method=method, headers={
        "Content-Type": "application/x-ndjson" if ndjson else "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def mine(events: list[dict], namespace: str) -> list[dict]:
    """Writes of this test's own objects (other helpers may write to the lab at the same time)."""
    return [e for e in events if e.get("objectRef", {}).get("namespace") == namespace
            or e.get("objectRef", {}).get("name") in ("unimon-fluentd", namespace)]


# ----------------------------------------------------------------------------------------- install mode
INSTALL = {"logging_namespace": NS, "logging_store_mode": "install", "logging_api_setup": False,
           "logging_wait_timeout": 180}


@pytest.fixture(scope="module")
def installed(lab, core):
    pv = client.V1PersistentVolume(
        metadata=client.V1ObjectMeta(name=f"{NS}-data-0"),
        spec=client.V1PersistentVolumeSpec(
            capacity={"storage": "30Gi"}, access_modes=["ReadWriteOnce"], persistent_volume_reclaim_policy="Retain",
            host_path=client.V1HostPathVolumeSource(path=f"/tmp/{NS}-data-0"),
            claim_ref=client.V1ObjectReference(namespace=NS, name="data-elasticsearch-0")))
    try:
        core.create_persistent_volume(pv)
    except ApiException as err:
        if err.status != 409:
            raise
    run = role(extra=INSTALL)
    assert run.rc == 0, run.out[-4000:]
    yield run
    role(extra={**INSTALL, "logging_state": "absent", "logging_remove_data": True})
    for delete in (lambda: core.delete_namespace(NS), lambda: core.delete_persistent_volume(f"{NS}-data-0")):
        try:
            delete()
        except ApiException:
            pass


def secret(core, name: str, namespace: str = NS) -> dict:
    return {k: base64.b64decode(v) for k, v in (core.read_namespaced_secret(name, namespace).data or {}).items()}


def test_objects_apply_and_are_ready(installed, api, core):
    apps = client.AppsV1Api(api)
    sts = apps.read_namespaced_stateful_set("elasticsearch", NS)
    assert sts.status.ready_replicas == 1
    ds = apps.read_namespaced_daemon_set("fluentd", NS)
    assert ds.status.number_ready == ds.status.desired_number_scheduled == 2
    assert apps.read_namespaced_deployment("kibana", NS).status.available_replicas == 1
    objs = [sts, ds, apps.read_namespaced_deployment("kibana", NS), core.read_namespaced_config_map("fluentd-config", NS),
            core.read_namespaced_service("elasticsearch", NS), core.read_namespaced_service("kibana", NS)]
    objs += [core.read_namespaced_secret(n, NS) for n in ("logging-ca", "logging-tls", "logging-credentials", "logging-fluentd")]
    objs += [client.RbacAuthorizationV1Api(api).read_cluster_role("unimon-fluentd")]
    for obj in objs:
        assert obj.metadata.labels["app.kubernetes.io/part-of"] == "unimon", obj.metadata.name
        assert obj.metadata.labels["app.kubernetes.io/managed-by"] == "unimon.stack", obj.metadata.name
    assert core.read_namespaced_persistent_volume_claim("data-elasticsearch-0", NS).status.phase == "Bound"
    env = {e.name: e for e in ds.spec.template.spec.containers[0].env}
    assert env["LOGGING_STORE_URL"].value == f"https://elasticsearch.{NS}.svc:9200"
    assert env["LOGGING_STORE_PASSWORD"].value_from.secret_key_ref.name == "logging-fluentd"


def test_certificate_is_signed_by_the_generated_ca_for_the_service_names(installed, core):
    tls, ca = secret(core, "logging-tls"), secret(core, "logging-ca")
    ca_cert = x509.load_pem_x509_certificate(ca["tls.crt"])
    cert = x509.load_pem_x509_certificate(tls["tls.crt"])
    assert tls["ca.crt"] == ca["tls.crt"] == secret(core, "logging-fluentd")["ca.crt"]
    assert ca_cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert cert.issuer == ca_cert.subject
    ca_cert.public_key().verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert {f"elasticsearch.{NS}.svc", f"*.elasticsearch-headless.{NS}.svc", f"kibana.{NS}.svc"} <= set(names)
    creds = secret(core, "logging-credentials")
    assert all(len(creds[k]) == 32 for k in ("admin-password", "ui-password", "fluentd-password"))
    assert secret(core, "logging-fluentd")["username"] == b"unimon-fluentd"
    for value in list(creds.values()) + [ca["tls.key"]]:
        assert value.decode() not in installed.out


def test_rerun_changes_nothing_and_keeps_the_secrets(installed, core):
    before = {n: secret(core, n) for n in ("logging-ca", "logging-tls", "logging-credentials")}
    run = role(extra=INSTALL)
    assert run.rc == 0 and run.changed == 0, run.out[-4000:]
    assert {n: secret(core, n) for n in before} == before


def test_check_mode_writes_nothing(installed, core, audit):
    cm = core.read_namespaced_config_map("fluentd-config", NS).data["fluent.conf"]
    run = role("--check", "--diff", extra={**INSTALL, "logging_fluentd_flush_interval": "9s"})
    assert run.rc == 0 and run.changed > 0, run.out[-4000:]
    assert mine(audit.writes(), NS) == []
    assert core.read_namespaced_config_map("fluentd-config", NS).data["fluent.conf"] == cm


def test_absent_removes_everything_and_the_data_only_when_asked(installed, api, core):
    run = role(extra={**INSTALL, "logging_state": "absent"})
    assert run.rc == 0, run.out[-4000:]
    left = [o.metadata.name for o in core.list_namespaced_secret(NS, label_selector="app.kubernetes.io/part-of=unimon").items]
    left += [o.metadata.name for o in client.AppsV1Api(api).list_namespaced_stateful_set(NS).items]
    left += [o.metadata.name for o in client.AppsV1Api(api).list_namespaced_daemon_set(NS).items]
    left += [o.metadata.name for o in client.AppsV1Api(api).list_namespaced_deployment(NS).items]
    left += [o.metadata.name for o in core.list_namespaced_service(NS).items]
    left += [o.metadata.name for o in core.list_namespaced_config_map(NS, label_selector="app.kubernetes.io/part-of=unimon").items]
    assert left == []
    with pytest.raises(ApiException):
        client.RbacAuthorizationV1Api(api).read_cluster_role("unimon-fluentd")
    assert core.read_namespaced_persistent_volume_claim("data-elasticsearch-0", NS)  # data kept
    run = role(extra={**INSTALL, "logging_state": "absent", "logging_remove_data": True})
    assert run.rc == 0, run.out[-4000:]
    assert core.list_namespaced_persistent_volume_claim(NS).items == []
    run = role(extra={**INSTALL, "logging_state": "absent", "logging_remove_data": True})
    assert run.rc == 0 and run.changed == 0, run.out[-4000:]


# ----------------------------------------------------------------------------------------- external mode
# The lab inventory points the role at the lab's Elasticsearch (external mode); this run uses its own
# index prefixes so that it touches only its own templates and indices.
EXTERNAL = {"logging_namespace": EXT_NS, "logging_wait_timeout": 120, **PREFIXES}


@pytest.fixture(scope="module")
def external(lab, core):
    run = role(extra=EXTERNAL)
    assert run.rc == 0, run.out[-4000:]
    yield run
    role(extra={**EXTERNAL, "logging_state": "absent"})
    es(lab, f"/lt{RUN}-*", "DELETE")
    for name in PREFIXES.values():
        es(lab, f"/_index_template/unimon-{name}", "DELETE")
    try:
        core.delete_namespace(EXT_NS)
    except ApiException:
        pass


def test_templates_are_in_the_real_elasticsearch(external, lab):
    for prefix in PREFIXES.values():
        status, body = es(lab, f"/_index_template/unimon-{prefix}")
        assert status == 200, body
        tpl = body["index_templates"][0]["index_template"]
        assert tpl["index_patterns"] == [f"{prefix}-*"]
        assert tpl["_meta"]["managed_by"] == "unimon.stack" and tpl["_meta"]["checksum"].startswith("unimon-")
        props = tpl["template"]["mappings"]["properties"]
        assert props["@timestamp"]["type"] == "date" and props["message"]["type"] == "text"


def test_rerun_sends_no_write_and_check_mode_none_either(external, lab):
    run = role(extra=EXTERNAL)
    assert run.rc == 0 and run.changed == 0, run.out[-4000:]
    name = PREFIXES["logging_vm_index_prefix"]
    assert es(lab, f"/_index_template/unimon-{name}", "DELETE")[0] == 200
    run = role("--check", extra=EXTERNAL)
    assert run.rc == 0 and run.changed > 0 and f"would PUT /_index_template/unimon-{name}" in run.out, run.out[-4000:]
    assert es(lab, f"/_index_template/unimon-{name}")[0] == 404
    run = role(extra=EXTERNAL)
    assert run.rc == 0 and run.changed == 1, run.out[-4000:]
    assert es(lab, f"/_index_template/unimon-{name}")[0] == 200


def fluentd_documents(now: datetime.datetime) -> list[tuple[str, dict]]:
    """A container line and a VM console line, in the logstash_format index <prefix>-YYYY.MM.DD (UTC)."""
    day = now.strftime("%Y.%m.%d")
    return [(f"{PREFIXES['logging_index_prefix']}-{day}", container_document(now)),
            (f"{PREFIXES['logging_vm_index_prefix']}-{day}", vm_console_document(now))]


def test_fluentd_shaped_documents_are_mapped_and_found_by_verify(external, lab):
    now = datetime.datetime.now(datetime.timezone.utc)
    docs = fluentd_documents(now)
    lines = "".join(json.dumps({"index": {"_index": index}}) + "\n" + json.dumps(doc) + "\n" for index, doc in docs)
    status, body = es(lab, "/_bulk?refresh=true", "POST", lines, ndjson=True)
    assert status == 200 and body["errors"] is False, body
    container_index, vm_index = docs[0][0], docs[1][0]
    mapping = es(lab, f"/{vm_index}/_mapping")[1][vm_index]["mappings"]["properties"]
    assert mapping["message"]["type"] == "text" and mapping["vm_name"]["type"] == "keyword"
    kube = mapping["kubernetes"]["properties"]
    assert kube["container_name"]["type"] == "keyword" and kube["namespace_name"]["type"] == "keyword"
    assert kube["labels"]["properties"]["vm_kubevirt_io/name"]["type"] == "keyword"
    assert kube["annotations"]["properties"]["kubevirt_io/domain"]["type"] == "keyword"
    assert kube["namespace_labels"]["properties"]["kubernetes_io/metadata_name"]["type"] == "keyword"
    assert es(lab, f"/{container_index}/_settings")[1][container_index]["settings"]["index"]["number_of_replicas"] == "0"
    # The word search Kibana users do works on message (text), exact filters on kubernetes.* (keyword).
    hits = es(lab, f"/{PREFIXES['logging_vm_index_prefix']}-*/_search", "POST",
              {"query": {"bool": {"must": [{"match": {"message": "multi-user"}}],
                                  "filter": [{"term": {"vm_name": "db.vm"}}]}}})[1]["hits"]["total"]["value"]
    assert hits == 1

    run = role(extra={**EXTERNAL, "verify_timeout": 30}, playbook="verify_logs.yml")
    assert run.rc == 0, run.out[-4000:]
    assert "containers" in run.out and "vm-consoles" in run.out

    run = role(extra={**EXTERNAL, "verify_timeout": 5, "logging_vm_index_prefix": f"lt{RUN}-nothing"},
               playbook="verify_logs.yml")
    assert run.rc != 0 and "stream 'vm-consoles'" in run.out and "no documents" in run.out, run.out[-4000:]
    assert "stream 'containers'" not in run.out.split("log streams not flowing")[-1]


def test_absent_removes_the_templates_and_then_changes_nothing(external, lab):
    run = role(extra={**EXTERNAL, "logging_state": "absent"})
    assert run.rc == 0, run.out[-4000:]
    for prefix in PREFIXES.values():
        assert es(lab, f"/_index_template/unimon-{prefix}")[0] == 404
    run = role(extra={**EXTERNAL, "logging_state": "absent"})
    assert run.rc == 0 and run.changed == 0, run.out[-4000:]
