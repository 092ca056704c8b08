"""kubevirt_monitoring on the lab's real kube-apiserver, against KubeVirt CRDs (the lab's stand-ins when
installed, else a minimal CRD this module creates and removes): only the monitor fields of an existing KubeVirt
CR change, owned by our field manager; discovery RBAC, VM rules, guest-metrics Service/ServiceMonitor and VM
resilience fields are applied; a rerun changes nothing; --check writes nothing; absent removes our objects and
exactly our fields; without KubeVirt the role skips with a message.

KubeVirt itself cannot run here (no virt-operator, no QEMU), so nothing acts on the patched fields; what is
proven is what the API server stores. Everything lives in its own namespace so the shared stack is untouched."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

NS = "kvmon-test"
SA = "kvmon-prometheus"
MANAGER = "unimon.stack.kubevirt_monitoring"
BEFORE = "unimon.io/run-strategy-before"
PLAY = "../tests/integration/playbooks/kubevirt_monitoring.yml"
VM_CRDS = {
    "kubevirts.kubevirt.io": ("KubeVirt", "kubevirts"),
    "virtualmachines.kubevirt.io": ("VirtualMachine", "virtualmachines"),
}


def minimal_crd(kind: str, plural: str) -> dict:
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.kubevirt.io", "labels": {"unimon.io/test": "kubevirt-monitoring"}},
            "spec": {"group": "kubevirt.io", "scope": "Namespaced",
                     "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
                     "versions": [{"name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
                                   "schema": {"openAPIV3Schema": {"type": "object",
                                                                  "x-kubernetes-preserve-unknown-fields": True}}}]}}


@pytest.fixture(scope="module")
def kubectl(lab):
    def _run(*args, stdin: str | None = None, check: bool = True):
        return subprocess.run([lab["kubectl"], "--kubeconfig", lab["kubeconfig"], *args], input=stdin,
                              capture_output=True, text=True, check=check)
    return _run


@pytest.fixture(scope="module")
def crds(lab, kubectl):
    """KubeVirt and VirtualMachine CRDs (created here only if none exists, and then removed again), plus the
    prometheus-operator CRDs the rules and ServiceMonitors need (same rule)."""
    created = []
    for name, (kind, plural) in VM_CRDS.items():
        if kubectl("get", "crd", name, check=False).returncode != 0:
            kubectl("apply", "--server-side", "--field-manager=kvmon-test", "-f", "-", stdin=json.dumps(minimal_crd(kind, plural)))
            created.append(name)
    if kubectl("get", "crd", "prometheusrules.monitoring.coreos.com", check=False).returncode != 0:
        crd_dir = sorted((Path(lab["state"]).parent / "crds").glob("prometheus-operator-*"))[-1]
        kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=kvmon-test", "-f", str(crd_dir))
        created.append(str(crd_dir))
    kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    yield
    for name in created:
        if name.startswith("/"):
            kubectl("delete", "-f", name, "--wait=true", check=False)
        else:
            kubectl("delete", "crd", name, "--wait=true", check=False)


@pytest.fixture(scope="module")
def env(crds, kubectl, tmp_path_factory):
    """Our namespace with what a KubeVirt install and a Prometheus would have put there: the KubeVirt CR
    (created by someone else, with fields of its own), the Prometheus ServiceAccount, two VMs."""
    kubectl("create", "namespace", NS)
    objs = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": SA, "namespace": NS}},
        {"apiVersion": "kubevirt.io/v1", "kind": "KubeVirt", "metadata": {"name": "kubevirt", "namespace": NS},
         "spec": {"imagePullPolicy": "IfNotPresent",
                  "configuration": {"developerConfiguration": {"featureGates": ["Snapshot"]}}}},
        {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"name": "db", "namespace": NS},
         "spec": {"runStrategy": "Halted",
                  "template": {"metadata": {"labels": {"unimon.io/guest-metrics": "shop"}},
                               "spec": {"domain": {"devices": {"disks": [{"name": "root", "disk": {"bus": "virtio"}}]},
                                                   "memory": {"guest": "1Gi"}}}}}},
        {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"name": "legacy", "namespace": NS},
         "spec": {"running": True, "template": {"spec": {"domain": {"devices": {}}}}}},
    ]
    for obj in objs:
        kubectl("create", "-f", "-", stdin=json.dumps(obj))
    settings = {
        "kubevirt_monitoring_kubevirt_namespace": NS,
        "kubevirt_monitoring_namespace": NS,
        "kubevirt_monitoring_monitor_namespace": NS,
        "kubevirt_monitoring_monitor_account": SA,
        "kubevirt_monitoring_service_monitor_namespace": NS,
        "kubevirt_monitoring_guest_metrics": [{"name": "shop", "namespace": NS, "port": 9200, "path": "/biz"}],
        "kubevirt_monitoring_resilient_vms": [{"name": "db", "namespace": NS}],
        "kubevirt_monitoring_watchdog_action": "reset",
        "kubevirt_monitoring_run_strategy": "RerunOnFailure",
        "kubevirt_monitoring_eviction_strategy": "LiveMigrate",
    }
    path = tmp_path_factory.mktemp("kvmon") / "vars.json"

    def write(**extra) -> str:
        path.write_text(json.dumps({**settings, **extra}))
        return "@" + str(path)
    yield write
    kubectl("delete", "namespace", NS, "--wait=true", "--timeout=120s", check=False)


def custom(api):
    return client.CustomObjectsApi(api)


def kubevirt_cr(api) -> dict:
    return custom(api).get_namespaced_custom_object("kubevirt.io", "v1", NS, "kubevirts", "kubevirt")


def vm(api, name="db") -> dict:
    return custom(api).get_namespaced_custom_object("kubevirt.io", "v1", NS, "virtualmachines", name)


def managers(obj: dict) -> set[str]:
    return {m["manager"] for m in obj["metadata"].get("managedFields", [])}


def writes_here(audit) -> list[str]:
    """Writes to this test's namespace, where every object the role is pointed at lives (it writes nothing
    cluster-scoped). The lab is shared: other sessions write elsewhere meanwhile, as the same admin user."""
    return [f"{e['verb']} {e['requestURI']}" for e in audit.writes() if f"/namespaces/{NS}" in e["requestURI"]]


def exists(fn, *args) -> bool:
    try:
        fn(*args)
        return True
    except ApiException as err:
        if err.status == 404:
            return False
        raise


def test_check_mode_writes_nothing_before_install(env, playbook, audit):
    run = playbook(PLAY, "--check", "-e", env())
    assert run.rc == 0, run.out[-3000:]
    assert writes_here(audit) == []


def test_install(env, playbook, api):
    run = playbook(PLAY, "-e", env())
    assert run.rc == 0, run.out[-3000:]
    assert run.changed > 0


def test_only_the_monitor_fields_of_the_kubevirt_cr_change(env, api):
    spec = kubevirt_cr(api)["spec"]
    assert spec["monitorNamespace"] == NS and spec["monitorAccount"] == SA and spec["serviceMonitorNamespace"] == NS
    assert spec["imagePullPolicy"] == "IfNotPresent"
    assert spec["configuration"]["developerConfiguration"]["featureGates"] == ["Snapshot"]
    entry = next(m for m in kubevirt_cr(api)["metadata"]["managedFields"] if m["manager"] == MANAGER)
    assert entry["operation"] == "Apply"
    assert set(entry["fieldsV1"]["f:spec"]) == {"f:monitorNamespace", "f:monitorAccount", "f:serviceMonitorNamespace"}
    assert "labels" not in kubevirt_cr(api)["metadata"], "the role labelled an object it does not own"


def test_prometheus_may_discover_endpointslices_in_the_kubevirt_namespace(env, api):
    for verb, group, resource in [("list", "discovery.k8s.io", "endpointslices"), ("watch", "", "pods"),
                                  ("get", "", "services"), ("list", "", "endpoints")]:
        sar = client.V1SubjectAccessReview(spec=client.V1SubjectAccessReviewSpec(
            user=f"system:serviceaccount:{NS}:{SA}", groups=["system:serviceaccounts"],
            resource_attributes=client.V1ResourceAttributes(verb=verb, group=group, resource=resource, namespace=NS)))
        assert client.AuthorizationV1Api(api).create_subject_access_review(sar).status.allowed, (verb, resource)
    sar = client.V1SubjectAccessReview(spec=client.V1SubjectAccessReviewSpec(
        user=f"system:serviceaccount:{NS}:{SA}", resource_attributes=client.V1ResourceAttributes(
            verb="list", resource="secrets", namespace=NS)))
    assert not client.AuthorizationV1Api(api).create_subject_access_review(sar).status.allowed


def test_rules_and_guest_metrics_objects_are_applied(env, api, core):
    rule = custom(api).get_namespaced_custom_object("monitoring.coreos.com", "v1", NS, "prometheusrules", "unimon-vms")
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r}
    assert {"VMVCPUIOWaitHigh", "VMGuestMemoryHigh", "VMDiskLatencyHigh", "VMGuestAgentDisconnected"} <= alerts
    svc = core.read_namespaced_service("guest-metrics-shop", NS)
    assert svc.spec.selector == {"unimon.io/guest-metrics": "shop"}
    assert svc.spec.ports[0].port == 9200
    assert svc.metadata.labels["app.kubernetes.io/part-of"] == "unimon"
    sm = custom(api).get_namespaced_custom_object("monitoring.coreos.com", "v1", NS, "servicemonitors",
                                                  "guest-metrics-shop")
    assert sm["spec"]["endpoints"][0]["path"] == "/biz"
    for obj in (svc.metadata.labels, sm["metadata"]["labels"]):
        assert obj["app.kubernetes.io/part-of"] == "unimon" and obj["app.kubernetes.io/managed-by"] == "unimon.stack"


def test_vm_gets_exactly_the_resilience_fields(env, api):
    obj = vm(api)
    assert obj["spec"]["runStrategy"] == "RerunOnFailure"
    assert obj["metadata"]["annotations"][BEFORE] == "Halted", "the VM's own run strategy is not kept"
    tspec = obj["spec"]["template"]["spec"]
    assert tspec["evictionStrategy"] == "LiveMigrate"
    assert tspec["domain"]["devices"]["watchdog"] == {"name": "unimon-watchdog", "i6300esb": {"action": "reset"}}
    assert tspec["domain"]["devices"]["disks"] == [{"name": "root", "disk": {"bus": "virtio"}}]
    assert tspec["domain"]["memory"] == {"guest": "1Gi"}
    assert obj["spec"]["template"]["metadata"]["labels"] == {"unimon.io/guest-metrics": "shop"}
    assert MANAGER in managers(obj)
    assert "spec" not in managers(vm(api, "legacy")) and MANAGER not in managers(vm(api, "legacy"))


def test_rerun_changes_nothing(env, playbook):
    run = playbook(PLAY, "-e", env())
    assert run.rc == 0 and run.changed == 0, run.out[-3000:]


def test_check_mode_after_install_writes_nothing(env, playbook, audit):
    run = playbook(PLAY, "--check", "-e", env(kubevirt_monitoring_watchdog_action="poweroff"))
    assert run.rc == 0, run.out[-3000:]
    assert writes_here(audit) == []


@pytest.mark.parametrize("extra,message", [
    ({"kubevirt_monitoring_resilient_vms": [{"name": "nosuchvm", "namespace": NS}]}, "does not exist"),
    ({"kubevirt_monitoring_resilient_vms": [{"name": "legacy", "namespace": NS}]}, "uses spec.running"),
    ({"kubevirt_monitoring_monitor_account": "nosuchaccount"}, "run the prometheus role first"),
])
def test_refuses_before_writing(env, playbook, audit, extra, message):
    run = playbook(PLAY, "-e", env(**extra))
    assert run.rc != 0 and message in run.out, run.out[-3000:]
    assert writes_here(audit) == []


def test_skips_without_the_crd(env, playbook, audit):
    run = playbook(PLAY, "-e", env(_kubevirt_monitoring_crd="kubevirts.absent.unimon.io"))
    assert run.rc == 0, run.out[-3000:]
    assert "kubevirt_monitoring skipped: KubeVirt is not installed (no CRD kubevirts.absent.unimon.io)" in run.out
    assert writes_here(audit) == []


def test_skips_when_preflight_found_no_kubevirt(env, playbook, audit, tmp_path):
    extra = tmp_path / "detected.json"
    extra.write_text(json.dumps({"unimon_detected": {"kubevirt": False}}))
    run = playbook(PLAY, "-e", env(), "-e", f"@{extra}")
    assert run.rc == 0, run.out[-3000:]
    assert "the preflight role found no KubeVirt" in run.out
    assert writes_here(audit) == []


def test_dropping_a_guest_metrics_group_removes_its_objects(env, playbook, api, core):
    run = playbook(PLAY, "-e", env(kubevirt_monitoring_guest_metrics=[
        {"name": "shop2", "namespace": NS, "port": 9300}]))
    assert run.rc == 0, run.out[-3000:]
    assert not exists(core.read_namespaced_service, "guest-metrics-shop", NS)
    assert not exists(custom(api).get_namespaced_custom_object, "monitoring.coreos.com", "v1", NS, "servicemonitors",
                      "guest-metrics-shop")
    assert core.read_namespaced_service("guest-metrics-shop2", NS).spec.ports[0].port == 9300
    back = playbook(PLAY, "-e", env())
    assert back.rc == 0, back.out[-3000:]
    assert not exists(core.read_namespaced_service, "guest-metrics-shop2", NS)
    assert exists(core.read_namespaced_service, "guest-metrics-shop", NS)


def test_lab_refuses_a_vm_without_run_strategy_as_virt_api_does(env, kubectl):
    """The lab's stand-in for virt-api's rule (lab/kubevirt_admission.py): the test below relies on it."""
    body = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"name": "norun", "namespace": NS},
            "spec": {"template": {"spec": {"domain": {"devices": {}}}}}}
    refused = kubectl("create", "--dry-run=server", "-f", "-", stdin=json.dumps(body), check=False)
    assert refused.returncode != 0 and "RunStrategy must be specified" in refused.stderr, refused.stderr
    body["spec"]["runStrategy"] = "Halted"
    assert kubectl("create", "--dry-run=server", "-f", "-", stdin=json.dumps(body), check=False).returncode == 0


def test_dropping_the_run_strategy_hands_the_vms_own_back(env, playbook, api):
    run = playbook(PLAY, "-e", env(kubevirt_monitoring_run_strategy=""))
    assert run.rc == 0, run.out[-3000:]
    obj = vm(api)
    assert obj["spec"]["runStrategy"] == "Halted" and BEFORE not in obj["metadata"].get("annotations", {})
    assert obj["spec"]["template"]["spec"]["evictionStrategy"] == "LiveMigrate"
    again = playbook(PLAY, "-e", env(kubevirt_monitoring_run_strategy=""))
    assert again.rc == 0 and again.changed == 0, again.out[-3000:]
    back = playbook(PLAY, "-e", env())
    assert back.rc == 0, back.out[-3000:]
    obj = vm(api)
    assert obj["spec"]["runStrategy"] == "RerunOnFailure" and obj["metadata"]["annotations"][BEFORE] == "Halted"


def test_absent_removes_our_objects_and_only_our_fields(env, playbook, api, core):
    # A group created by an earlier run with another list, no longer configured when removing.
    assert playbook(PLAY, "-e", env(kubevirt_monitoring_guest_metrics=[
        {"name": "shop", "namespace": NS, "port": 9200}, {"name": "old", "namespace": NS, "port": 9400}])).rc == 0
    run = playbook(PLAY, "-e", env(kubevirt_monitoring_state="absent"))
    assert run.rc == 0, run.out[-3000:]
    spec = kubevirt_cr(api)["spec"]
    assert not {"monitorNamespace", "monitorAccount", "serviceMonitorNamespace"} & set(spec)
    assert spec["imagePullPolicy"] == "IfNotPresent"
    assert spec["configuration"]["developerConfiguration"]["featureGates"] == ["Snapshot"]
    assert MANAGER not in managers(kubevirt_cr(api))
    obj = vm(api)
    # Dropping runStrategy would leave neither it nor spec.running, which virt-api (here the lab's policy) refuses.
    assert obj["spec"]["runStrategy"] == "Halted", "the VM's own run strategy was not handed back"
    assert BEFORE not in obj["metadata"].get("annotations", {})
    assert MANAGER not in managers(obj)
    tspec = obj["spec"]["template"]["spec"]
    assert "evictionStrategy" not in tspec and "watchdog" not in tspec["domain"]["devices"]
    assert tspec["domain"]["devices"]["disks"] == [{"name": "root", "disk": {"bus": "virtio"}}]
    assert not exists(custom(api).get_namespaced_custom_object, "monitoring.coreos.com", "v1", NS, "prometheusrules",
                      "unimon-vms")
    assert not exists(core.read_namespaced_service, "guest-metrics-shop", NS)
    assert not exists(custom(api).get_namespaced_custom_object, "monitoring.coreos.com", "v1", NS, "servicemonitors",
                      "guest-metrics-shop")
    assert not exists(core.read_namespaced_service, "guest-metrics-old", NS), "an unconfigured group's Service stayed"
    assert not exists(client.RbacAuthorizationV1Api(api).read_namespaced_role, "unimon-kubevirt-discovery", NS)
    again = playbook(PLAY, "-e", env(kubevirt_monitoring_state="absent"))
    assert again.rc == 0 and again.changed == 0, again.out[-3000:]
