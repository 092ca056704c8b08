"""unimon.stack.k8s_apply on the lab's API server: one call applies and deletes, a rerun changes nothing,
a field changed behind its back is put back, check mode writes nothing, deletion waits until the objects
are gone, the shared namespace is ensured first, and the waits a role asks for can fail. Every role applies
through it, so this is the contract they all rely on."""
from __future__ import annotations

import json

import pytest
from kubernetes import client

NS = "unimon-apply-test"
PLAY = "../tests/integration/playbooks/k8s_apply.yml"


def objects(value: str) -> list[dict]:
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "apply-a", "namespace": NS}, "data": {"key": value}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "apply-b", "namespace": NS}},
    ]


@pytest.fixture(scope="module")
def namespace(core):
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
    yield NS
    core.delete_namespace(NS)


def run(playbook, state: str, objs: list[dict], *args: str, namespace: str = NS, **extra_vars):
    extra = {"apply_state": state, "apply_objects": objs, "apply_namespace": namespace}
    extra.update({"apply_" + key: value for key, value in extra_vars.items()})
    return playbook(PLAY, "-e", json.dumps(extra), *args)


def test_check_mode_into_a_missing_namespace_lists_and_writes_nothing(playbook, audit, core):
    missing = [dict(o, metadata=dict(o["metadata"], namespace="unimon-apply-missing")) for o in objects("v1")]
    res = run(playbook, "present", missing, "--check", namespace="unimon-apply-missing")
    assert res.rc == 0, res.out[-3000:]
    assert "would create ['ConfigMap/apply-a', 'ServiceAccount/apply-b']" in res.out
    assert audit.writes() == []


def test_apply_rerun_drift_and_delete(namespace, playbook, core):
    first = run(playbook, "present", objects("v1"))
    assert first.rc == 0, first.out[-3000:]
    assert first.changed == 1
    assert core.read_namespaced_config_map("apply-a", NS).data == {"key": "v1"}

    again = run(playbook, "present", objects("v1"))
    assert again.rc == 0 and again.changed == 0, again.out[-3000:]

    # Someone edits a field we own (as kubectl edit would): the next run puts it back.
    core.patch_namespaced_config_map("apply-a", NS, {"data": {"key": "edited"}}, field_manager="kubectl-edit")
    repaired = run(playbook, "present", objects("v1"), "--diff")
    assert repaired.rc == 0 and repaired.changed == 1, repaired.out[-3000:]
    lines = repaired.out.splitlines()
    assert any(line.startswith("-") and '"key": "edited"' in line for line in lines), repaired.out[-3000:]
    assert any(line.startswith("+") and '"key": "v1"' in line for line in lines), repaired.out[-3000:]
    assert core.read_namespaced_config_map("apply-a", NS).data == {"key": "v1"}

    gone = run(playbook, "absent", objects("v1"))
    assert gone.rc == 0 and gone.changed == 1, gone.out[-3000:]
    assert core.list_namespaced_config_map(NS, field_selector="metadata.name=apply-a").items == []
    assert core.list_namespaced_service_account(NS, field_selector="metadata.name=apply-b").items == []
    again = run(playbook, "absent", objects("v1"))
    assert again.rc == 0 and again.changed == 0, again.out[-3000:]


def test_an_error_names_the_object_and_the_apis_reason(namespace, playbook):
    bad = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Bad_Name", "namespace": NS}}]
    res = run(playbook, "present", bad)
    assert res.rc != 0
    assert "present ConfigMap/unimon-apply-test/Bad_Name" in res.out, res.out[-3000:]


def test_the_shared_namespace_is_applied_first_and_kept_on_removal(playbook, core):
    ns = "unimon-apply-ensure"
    objs = [dict(o, metadata=dict(o["metadata"], namespace=ns)) for o in objects("v1")]
    try:
        first = run(playbook, "present", objs, namespace=ns, ensure_namespace=ns, pod_security_level="baseline")
        assert first.rc == 0, first.out[-3000:]
        labels = core.read_namespace(ns).metadata.labels
        assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
        assert labels["app.kubernetes.io/managed-by"] == "unimon.stack"
        again = run(playbook, "present", objs, namespace=ns, ensure_namespace=ns, pod_security_level="baseline")
        assert again.rc == 0 and again.changed == 0, again.out[-3000:]
        # Other roles' objects may live there: removing one role's objects leaves the namespace.
        gone = run(playbook, "absent", objs, namespace=ns, ensure_namespace=ns)
        assert gone.rc == 0 and gone.changed == 1, gone.out[-3000:]
        assert core.read_namespace(ns).status.phase == "Active"
    finally:
        core.delete_namespace(ns)


def test_wait_for_names_applied_objects_and_times_out_on_a_condition_never_met(namespace, playbook):
    ready = run(playbook, "present", objects("v1"), wait_for=[{"kind": "ConfigMap"}])
    assert ready.rc == 0, ready.out[-3000:]
    unknown = run(playbook, "present", objects("v1"), wait_for=[{"kind": "Deployment"}])
    assert unknown.rc != 0
    assert "wait_for Deployment: no such object among those applied" in unknown.out, unknown.out[-3000:]
    never = run(playbook, "present", objects("v1"), wait_timeout=3,
                wait_for=[{"kind": "ServiceAccount", "name": "apply-b", "condition": {"type": "Ready"}}])
    assert never.rc != 0
    assert "timed out after" in never.out and "ServiceAccount/unimon-apply-test/apply-b" in never.out, never.out[-3000:]
