"""The grafana role on the lab, in a namespace of its own: every object applies server-side and the
Deployment becomes available (kwok reports its pod running), a rerun changes nothing and keeps the admin
password it generated, --check --diff after a variable change writes nothing (audit log), no password is
in the -v output of any run, state=absent removes everything the role made.

Grafana itself cannot run here: it is AGPL-licensed and not buildable in this environment (the Go module
proxy serves its server code, not the JavaScript build of its frontend), and the lab has no container
runtime, so kwok only pretends the pod runs. What Grafana
reads is checked by structure in tests/render/test_grafana.py. The logging role's read-only user is stood
in for by a Secret made here in its shape (logging-reader: username, password, ca.crt), so the copy of
its credentials and CA into the role's own Secret is exercised; the lab inventory's logging runs in
external mode, which has no reader user."""
from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from lab_fixtures import REPO, PlaybookRun

NS = "unimon-grafana-test"
READER = {"username": "unimon-reader", "password": "r3ader-Pa55word-in-the-lab",
          "ca.crt": "-----BEGIN CERTIFICATE-----\nMIIBlabCA\n-----END CERTIFICATE-----\n"}
EXTRA = {"grafana_namespace": NS, "grafana_wait_timeout": 120,
         "grafana_logs_reader_secret": "logging-reader", "grafana_logs_reader_namespace": NS}
LABELS = "app.kubernetes.io/part-of=unimon"
DASHBOARDS = sorted(p.stem for p in (REPO / "roles" / "grafana" / "files" / "dashboards").glob("*.json"))


def role(*args: str, extra: dict | None = None) -> PlaybookRun:
    if "ANSIBLE_COLLECTIONS_PATH" not in os.environ:
        pytest.fail("ANSIBLE_COLLECTIONS_PATH is not set: run the lab tiers through make (make integration)")
    cmd = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-v", "-i", str(REPO / "lab" / "inventory.yml"),
           str(REPO / "tests" / "integration" / "grafana_role.yml"), "-e", json.dumps({**EXTRA, **(extra or {})}), *args]
    env = {**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1"}
    return PlaybookRun(subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=600, env=env))


def secret(core, name: str) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in (core.read_namespaced_secret(name, NS).data or {}).items()}


def mine(events: list[dict]) -> list[dict]:
    """Writes of this test's own objects (other helpers may write to the lab at the same time)."""
    return [e for e in events if e.get("objectRef", {}).get("namespace") == NS or e.get("objectRef", {}).get("name") == NS]


def no_passwords(run: PlaybookRun, *passwords: str) -> None:
    for pw in passwords:
        assert pw not in run.out, "a password is in the ansible-playbook -v output"


@pytest.fixture(scope="module")
def converged(lab, core):
    try:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
    except ApiException as err:
        if err.status != 409:
            raise
    core.create_namespaced_secret(NS, client.V1Secret(
        metadata=client.V1ObjectMeta(name="logging-reader"), string_data=READER))
    run = role()
    assert run.rc == 0, run.out[-4000:]
    yield run
    try:  # everything the role makes is namespaced: the namespace takes what a failed test left
        core.delete_namespace(NS)
    except ApiException:
        pass


def test_objects_apply_and_the_deployment_is_available(converged, api, core):
    apps = client.AppsV1Api(api)
    dep = apps.read_namespaced_deployment("grafana", NS)
    assert dep.status.available_replicas == 1
    objs = [dep, core.read_namespaced_service("grafana", NS), core.read_namespaced_service_account("grafana", NS),
            core.read_namespaced_secret("grafana-admin", NS), core.read_namespaced_secret("grafana-datasources", NS),
            core.read_namespaced_config_map("grafana-dashboard-provider", NS)]
    objs += [core.read_namespaced_config_map(f"grafana-dashboard-{name}", NS) for name in DASHBOARDS]
    for obj in objs:
        assert obj.metadata.labels["app.kubernetes.io/part-of"] == "unimon", obj.metadata.name
        assert obj.metadata.labels["app.kubernetes.io/managed-by"] == "unimon.stack", obj.metadata.name
    sm = client.CustomObjectsApi(api).get_namespaced_custom_object("monitoring.coreos.com", "v1", NS, "servicemonitors", "grafana")
    assert sm["spec"]["endpoints"][0]["path"] == "/metrics"
    assert core.read_namespaced_service_account("grafana", NS).automount_service_account_token is False

    admin = secret(core, "grafana-admin")
    assert admin["admin-user"] == "admin" and len(admin["admin-password"]) == 32
    ds = secret(core, "grafana-datasources")
    assert ds["logs-username"] == READER["username"] and ds["logs-password"] == READER["password"]
    sources = {d["uid"]: d for d in yaml.safe_load(ds["datasources.yaml"])["datasources"]}
    assert sources["unimon-vm-logs"]["jsonData"]["index"] == "virt-launcher-*"
    assert sources["unimon-logs"]["secureJsonData"] == {"basicAuthPassword": "${UNIMON_LOGS_PASSWORD}",
                                                        "tlsCACert": READER["ca.crt"]}
    env = {e.name: e for e in dep.spec.template.spec.containers[0].env}
    assert env["GF_SECURITY_ADMIN_PASSWORD"].value_from.secret_key_ref.name == "grafana-admin"
    assert env["UNIMON_LOGS_PASSWORD"].value_from.secret_key_ref.key == "logs-password"
    no_passwords(converged, admin["admin-password"], READER["password"])


def test_rerun_changes_nothing_and_keeps_the_password(converged, core):
    before = secret(core, "grafana-admin")
    checksum = client.AppsV1Api(core.api_client).read_namespaced_deployment("grafana", NS) \
        .spec.template.metadata.annotations["unimon.io/config-checksum"]
    run = role()
    assert run.rc == 0 and run.changed == 0, run.out[-4000:]
    assert secret(core, "grafana-admin") == before
    assert client.AppsV1Api(core.api_client).read_namespaced_deployment("grafana", NS) \
        .spec.template.metadata.annotations["unimon.io/config-checksum"] == checksum
    no_passwords(run, before["admin-password"], READER["password"])


def test_check_mode_after_a_change_writes_nothing(converged, core, audit):
    provider = core.read_namespaced_config_map("grafana-dashboard-provider", NS).data
    run = role("--check", "--diff", extra={"grafana_dashboards_folder": "unimon-check"})
    assert run.rc == 0 and run.changed > 0, run.out[-4000:]
    assert "unimon-check" in run.out  # the diff shows the change
    assert mine(audit.writes()) == []
    assert core.read_namespaced_config_map("grafana-dashboard-provider", NS).data == provider
    no_passwords(run, secret(core, "grafana-admin")["admin-password"], READER["password"])


def test_absent_removes_everything(converged, api, core):
    password = secret(core, "grafana-admin")["admin-password"]
    run = role(extra={"grafana_state": "absent"})
    assert run.rc == 0, run.out[-4000:]
    apps = client.AppsV1Api(api)
    left = [o.metadata.name for o in core.list_namespaced_secret(NS, label_selector=LABELS).items]
    left += [o.metadata.name for o in core.list_namespaced_config_map(NS, label_selector=LABELS).items]
    left += [o.metadata.name for o in core.list_namespaced_service(NS).items]
    left += [o.metadata.name for o in core.list_namespaced_service_account(NS, label_selector=LABELS).items]
    left += [o.metadata.name for o in apps.list_namespaced_deployment(NS).items]
    left += [o["metadata"]["name"] for o in client.CustomObjectsApi(api).list_namespaced_custom_object(
        "monitoring.coreos.com", "v1", NS, "servicemonitors")["items"]]
    assert left == []
    assert core.read_namespaced_secret("logging-reader", NS)  # not the role's: left alone
    no_passwords(run, password, READER["password"])
    run = role(extra={"grafana_state": "absent"})
    assert run.rc == 0 and run.changed == 0, run.out[-4000:]
