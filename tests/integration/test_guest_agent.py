"""guest_agent role through playbooks/hosts.yml (group unimon_vm_guests), with this machine as the guest.

Host part, real: qemu-guest-agent is installed from Debian for real (and removed again, unless it was
installed before the test), node-exporter through the node_exporter role's host mode (source=file, the lab
binary). Service start is switched off (guest_agent_manage_service / node_exporter_host_manage_service
false) because PID 1 here is not systemd, and the agent's unit needs the virtio serial port only a VM has.

Controller part, against the lab's real kube-apiserver: a VirtualMachineInstance object in a namespace of
its own, whose status the test sets as virt-handler would (condition AgentConnected, guestOSInfo) - through
the status subresource where the CRD has one, else through the object (KubeVirt's VMI CRD has none). If
the lab has no VMI CRD yet, the test creates a minimal one and deletes only what it created.
"""
from __future__ import annotations

import hashlib
import secrets
import subprocess
from pathlib import Path

import pytest

from hostmode import lab_node_exporter, run_hosts_playbook, user_exists

GROUP, VERSION, PLURAL = "kubevirt.io", "v1", "virtualmachineinstances"
CRD_NAME = f"{PLURAL}.{GROUP}"
OS_INFO = {"id": "debian", "name": "Debian GNU/Linux", "prettyName": "Debian GNU/Linux 12 (bookworm)",
           "version": "12", "versionId": "12", "kernelRelease": "6.1.0-28-amd64", "machine": "x86_64"}


def pkg_status(name: str) -> str:
    """dpkg's status line ('' when dpkg knows nothing of the package, i.e. purged or never installed)."""
    res = subprocess.run(["dpkg-query", "-W", "-f=${Status}", name], capture_output=True, text=True, check=False)
    return res.stdout.strip() if res.returncode == 0 else ""


def pkg_installed(name: str) -> bool:
    res = subprocess.run(["dpkg-query", "-W", "-f=${Status}", name], capture_output=True, text=True, check=False)
    return res.returncode == 0 and "install ok installed" in res.stdout


@pytest.fixture(scope="module")
def vmi_crd(api):
    from kubernetes import client  # pylint: disable=import-outside-toplevel
    ext = client.ApiextensionsV1Api(api)
    created = False
    try:
        crd = ext.read_custom_resource_definition(CRD_NAME)
    except client.ApiException as err:
        if err.status != 404:
            raise
        body = {
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": CRD_NAME, "labels": {"app.kubernetes.io/part-of": "unimon-tests"}},
            "spec": {"group": GROUP, "scope": "Namespaced",
                     "names": {"plural": PLURAL, "singular": "virtualmachineinstance", "kind": "VirtualMachineInstance",
                               "shortNames": ["vmi"]},
                     "versions": [{"name": VERSION, "served": True, "storage": True,
                                   "subresources": {"status": {}},
                                   "schema": {"openAPIV3Schema": {"type": "object",
                                                                  "x-kubernetes-preserve-unknown-fields": True}}}]}}
        ext.create_custom_resource_definition(body)
        created = True
        from lab_fixtures import wait_until  # pylint: disable=import-outside-toplevel
        wait_until("VMI CRD Established", lambda: any(
            c.type == "Established" and c.status == "True"
            for c in (ext.read_custom_resource_definition(CRD_NAME).status.conditions or [])), 60)
        crd = ext.read_custom_resource_definition(CRD_NAME)
    versions = [v for v in crd.spec.versions if v.name == VERSION]
    assert versions, f"{CRD_NAME} serves no {VERSION}"
    yield {"status_subresource": bool(versions[0].subresources and versions[0].subresources.status is not None)}
    if created:
        ext.delete_custom_resource_definition(CRD_NAME)


@pytest.fixture(scope="module")
def guest(api, core, lab, vmi_crd, tmp_path_factory):
    from kubernetes import client  # pylint: disable=import-outside-toplevel
    tmp = tmp_path_factory.mktemp("guest")
    tag = hashlib.sha1(str(tmp).encode()).hexdigest()[:6]
    ns = f"unimon-ga-{tag}"
    core.create_namespace({"metadata": {"name": ns, "labels": {"app.kubernetes.io/part-of": "unimon-tests"}}})
    custom = client.CustomObjectsApi(api)
    name = f"guest-{tag}"
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "VirtualMachineInstance",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"domain": {"devices": {}, "resources": {"requests": {"memory": "128Mi"}}}}})

    def set_status(status: dict) -> None:
        if vmi_crd["status_subresource"]:
            custom.patch_namespaced_custom_object_status(GROUP, VERSION, ns, PLURAL, name, {"status": status})
        else:
            custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name, {"status": status})

    had_agent = pkg_installed("qemu-guest-agent")
    hostvars = {
        # What the inventory plugin unimon.stack.cluster sets on a VMI host.
        "vmi_name": name, "vmi_namespace": ns,
        "unimon_kubeconfig": lab["kubeconfig"],
        "guest_agent_manage_service": False,
        "guest_agent_wait_timeout": 6,
        "node_exporter_host_source": "file",
        "node_exporter_host_file": str(lab_node_exporter()),
        "node_exporter_host_binary_name": f"node_exporter_g{tag}",
        "node_exporter_host_service_name": f"unimon-test-gne-{tag}",
        "node_exporter_host_user": f"unimon-gne{tag}",
        "node_exporter_host_group": f"unimon-gne{tag}",
        "node_exporter_host_manage_service": False,
    }
    yield {"tmp": tmp, "vars": hostvars, "ns": ns, "name": name, "set_status": set_status, "custom": custom,
           "had_agent": had_agent,
           "binary": Path("/usr/local/bin") / hostvars["node_exporter_host_binary_name"],
           "unit": Path("/etc/systemd/system") / f"{hostvars['node_exporter_host_service_name']}.service"}
    run_hosts_playbook(tmp, "unimon_vm_guests", {**hostvars, "guest_agent_state": "absent"})
    if had_agent and not pkg_installed("qemu-guest-agent"):
        subprocess.run(["apt-get", "install", "-y", "-q", "qemu-guest-agent"], check=False, capture_output=True)
    for f in (Path("/usr/local/bin") / hostvars["node_exporter_host_binary_name"],
              Path("/etc/systemd/system") / f"{hostvars['node_exporter_host_service_name']}.service"):
        f.unlink(missing_ok=True)
    subprocess.run(["userdel", hostvars["node_exporter_host_user"]], check=False, capture_output=True)
    subprocess.run(["groupdel", hostvars["node_exporter_host_group"]], check=False, capture_output=True)
    core.delete_namespace(ns)


def test_agent_not_connected_fails_clearly_after_the_timeout(guest):
    guest["set_status"]({"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True"},
        {"type": "AgentConnected", "status": "False", "reason": "GuestAgentNotConnected"}]})
    run = run_hosts_playbook(guest["tmp"], "unimon_vm_guests", guest["vars"])
    assert run.rc != 0, run.out[-3000:]
    # The host part ran for real before the wait.
    assert pkg_installed("qemu-guest-agent")
    assert guest["binary"].is_file() and guest["unit"].is_file()
    assert user_exists(guest["vars"]["node_exporter_host_user"])
    assert f"{guest['ns']}/{guest['name']}" in run.out
    assert "no AgentConnected=True condition after 6s" in run.out, run.out[-3000:]
    assert "AgentConnected False GuestAgentNotConnected" in run.out, run.out[-3000:]


def test_missing_vmi_is_named(guest):
    run = run_hosts_playbook(guest["tmp"], "unimon_vm_guests", {**guest["vars"], "vmi_name": "no-such-vmi"})
    assert run.rc != 0
    assert f"{guest['ns']}/no-such-vmi" in run.out and "could not be read" in run.out, run.out[-3000:]


def test_agent_connected_reports_guest_os(guest):
    guest["set_status"]({"phase": "Running", "guestOSInfo": OS_INFO, "conditions": [
        {"type": "Ready", "status": "True"},
        {"type": "AgentConnected", "status": "True"}]})
    run = run_hosts_playbook(guest["tmp"], "unimon_vm_guests", guest["vars"])
    assert run.rc == 0, run.out[-4000:]
    assert "agent connected; guest OS Debian GNU/Linux 12 (bookworm)" in run.out, run.out[-3000:]
    assert "kernel 6.1.0-28-amd64" in run.out
    again = run_hosts_playbook(guest["tmp"], "unimon_vm_guests", guest["vars"])
    assert again.rc == 0 and again.changed == 0, again.out[-3000:]


def test_check_mode_skips_the_wait_and_writes_nothing(guest):
    guest["set_status"]({"phase": "Running", "conditions": [{"type": "AgentConnected", "status": "False"}]})
    before = guest["binary"].stat().st_mtime_ns, guest["unit"].read_text()
    run = run_hosts_playbook(guest["tmp"], "unimon_vm_guests", {**guest["vars"], "node_exporter_port": 9109},
                             "--check", "--diff")
    assert run.rc == 0, run.out[-3000:]
    assert run.changed > 0
    assert (guest["binary"].stat().st_mtime_ns, guest["unit"].read_text()) == before


@pytest.mark.parametrize("var,value", [("guest_agent_vmi_namespace", "Bad_NS"), ("guest_agent_wait_timeout", 0),
                                       ("guest_agent_state", "gone"), ("guest_agent_vmi_name", "UPPER"),
                                       ("node_exporter_host_file", "relative.tgz")])
def test_bad_input_fails_before_any_write(guest, var, value):
    tag = secrets.token_hex(3)
    v = {**guest["vars"], "node_exporter_host_binary_name": f"node_exporter_b{tag}", var: value}
    run = run_hosts_playbook(guest["tmp"], "unimon_vm_guests", v)
    assert run.rc != 0
    assert var in run.out, run.out[-3000:]
    assert "Install qemu-guest-agent and node-exporter in VM guests" not in run.out
    assert not (Path("/usr/local/bin") / f"node_exporter_b{tag}").exists()


def test_absent_removes_agent_and_node_exporter(guest):
    run = run_hosts_playbook(guest["tmp"], "unimon_vm_guests", {**guest["vars"], "guest_agent_state": "absent"})
    assert run.rc == 0, run.out[-3000:]
    assert not pkg_installed("qemu-guest-agent")
    assert "config-files" not in pkg_status("qemu-guest-agent"), "removed but not purged"
    assert not guest["binary"].exists() and not guest["unit"].exists()
    assert not user_exists(guest["vars"]["node_exporter_host_user"])
    again = run_hosts_playbook(guest["tmp"], "unimon_vm_guests", {**guest["vars"], "guest_agent_state": "absent"})
    assert again.rc == 0 and again.changed == 0, again.out[-3000:]
