"""The kubevirt_monitoring role's bodies for objects it does not own, rendered with real Ansible: the watchdog
model follows each VM's architecture (virt-api accepts i6300esb on amd64, only diag288 on s390x, none on arm64),
and the KubeVirt CR is looked for where the preflight role found it (openshift-cnv under HyperConverged), the
explicit variables overriding that. Also the role's input validation for the architecture variable, and the
checks present.yml makes before its first write (arm64 VMs named, an unknown architecture refused)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from manifests import load_all

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PARTIALS = ["_vm-patches.yaml.j2", "_kubevirt-patch.yaml.j2"]


def looked_up(*vms: tuple[str, str, str | None]) -> dict:
    """What present.yml registers as _kubevirt_monitoring_vms for (namespace, name, architecture) VMs."""
    results = []
    for namespace, name, arch in vms:
        spec = {"runStrategy": "Always", "template": {"spec": {"domain": {"devices": {}}}}}
        if arch:
            spec["template"]["spec"]["architecture"] = arch
        results.append({"item": {"namespace": namespace, "name": name},
                        "resources": [{"metadata": {"namespace": namespace, "name": name}, "spec": spec}]})
    return {"results": results}


def vm_patches(render, vms, **extra) -> dict[str, dict]:
    out = render("kubevirt_monitoring", partials=PARTIALS, kubevirt_monitoring_watchdog_action="reset",
                 kubevirt_monitoring_resilient_vms=[{"namespace": ns, "name": n} for ns, n, _arch in vms],
                 _kubevirt_monitoring_vms=looked_up(*vms), **extra)
    return {f"{o['metadata']['namespace']}/{o['metadata']['name']}": o for o in load_all(out / "_vm-patches.yaml")}


def watchdog(body: dict):
    return (body.get("spec", {}).get("template", {}).get("spec", {}).get("domain", {}).get("devices", {})
            .get("watchdog"))


VMS = [("vms", "plain", None), ("vms", "x86", "amd64"), ("vms", "mainframe", "s390x"), ("vms", "graviton", "arm64")]


def test_watchdog_model_follows_the_vm_architecture(render):
    bodies = vm_patches(render, VMS, kubevirt_monitoring_eviction_strategy="LiveMigrate")
    assert watchdog(bodies["vms/plain"]) == {"name": "unimon-watchdog", "i6300esb": {"action": "reset"}}
    assert watchdog(bodies["vms/x86"]) == {"name": "unimon-watchdog", "i6300esb": {"action": "reset"}}
    assert watchdog(bodies["vms/mainframe"]) == {"name": "unimon-watchdog", "diag288": {"action": "reset"}}
    # arm64: no watchdog at all (virt-api would reject the VM), the other resilience fields still set.
    assert watchdog(bodies["vms/graviton"]) is None
    assert bodies["vms/graviton"]["spec"]["template"]["spec"]["evictionStrategy"] == "LiveMigrate"


def test_vms_without_architecture_follow_the_cluster_default(render):
    bodies = vm_patches(render, VMS, kubevirt_monitoring_default_architecture="s390x")
    assert watchdog(bodies["vms/plain"]) == {"name": "unimon-watchdog", "diag288": {"action": "reset"}}
    assert watchdog(bodies["vms/x86"]) == {"name": "unimon-watchdog", "i6300esb": {"action": "reset"}}
    bodies = vm_patches(render, VMS, kubevirt_monitoring_default_architecture="arm64")
    assert watchdog(bodies["vms/plain"]) is None and "spec" not in bodies["vms/plain"]
    assert watchdog(bodies["vms/mainframe"]) == {"name": "unimon-watchdog", "diag288": {"action": "reset"}}


def kubevirt_cr_and_rbac(render, **extra) -> tuple[dict, list[dict]]:
    out = render("kubevirt_monitoring", partials=PARTIALS, **extra)
    (cr,) = load_all(out / "_kubevirt-patch.yaml")
    return cr, load_all(out / "rbac.yaml")


HYPERCONVERGED = {"kubevirt": {"installed": True, "crd": True, "namespace": "openshift-cnv",
                               "name": "kubevirt-kubevirt-hyperconverged", "version": "v1.5.0", "phase": "Deployed"}}


def test_kubevirt_cr_where_preflight_found_it(render):
    cr, rbac = kubevirt_cr_and_rbac(render, unimon_detected=HYPERCONVERGED)
    assert cr["metadata"] == {"name": "kubevirt-kubevirt-hyperconverged", "namespace": "openshift-cnv"}
    assert cr["spec"]["monitorAccount"] == "prometheus-unimon"
    assert {o["metadata"]["namespace"] for o in rbac} == {"openshift-cnv"}


def test_explicit_variables_override_what_preflight_found(render):
    cr, rbac = kubevirt_cr_and_rbac(render, unimon_detected=HYPERCONVERGED,
                                    kubevirt_monitoring_kubevirt_namespace="virt",
                                    kubevirt_monitoring_kubevirt_name="kv")
    assert cr["metadata"] == {"name": "kv", "namespace": "virt"}
    assert {o["metadata"]["namespace"] for o in rbac} == {"virt"}


@pytest.mark.parametrize("detected", [None, {}, {"kubevirt": True}, {"kubevirt": {"installed": False, "namespace": ""}}],
                         ids=["no-preflight", "empty", "boolean", "not-installed"])
def test_kubevirt_cr_defaults_without_a_finding(render, detected):
    extra = {} if detected is None else {"unimon_detected": detected}
    cr, rbac = kubevirt_cr_and_rbac(render, **extra)
    assert cr["metadata"] == {"name": "kubevirt", "namespace": "kubevirt"}
    assert {o["metadata"]["namespace"] for o in rbac} == {"kubevirt"}


def run_validate(tmp_path: Path, **extra) -> subprocess.CompletedProcess:
    """The role's validate entry point as site.yml's first play runs it (argument_specs, then validate.yml);
    it reads no cluster."""
    play = tmp_path / "validate.yml"
    play.write_text(json.dumps([{"name": "validate", "hosts": "localhost", "connection": "local",
                                 "gather_facts": False,
                                 "tasks": [{"ansible.builtin.include_role": {"name": "unimon.stack.kubevirt_monitoring",
                                                                             "tasks_from": "validate"}}]}]))
    return subprocess.run([str(BIN / "ansible-playbook"), str(play), "-e", json.dumps(extra)],
                          capture_output=True, text=True, check=False)


def test_default_architecture_is_validated(tmp_path):
    ok = run_validate(tmp_path, kubevirt_monitoring_default_architecture="s390x")
    assert ok.returncode == 0, ok.stdout[-2000:] + ok.stderr[-2000:]
    bad = run_validate(tmp_path, kubevirt_monitoring_default_architecture="ppc64le")
    assert bad.returncode != 0
    assert "kubevirt_monitoring_default_architecture" in bad.stdout + bad.stderr


def run_present_checks(tmp_path: Path, vms, **extra) -> subprocess.CompletedProcess:
    """present.yml's checks between the VM lookup and the first write, run on localhost with the role's defaults
    and vars and a stand-in for the lookup (_kubevirt_monitoring_vms): they read no cluster."""
    role = REPO / "roles" / "kubevirt_monitoring"
    tasks = yaml.safe_load((role / "tasks" / "present.yml").read_text())
    checks = [t for t in tasks if t["name"].startswith(("Require every listed VM", "Say which VMs get no watchdog"))]
    assert len(checks) == 2
    play = [{"name": "checks", "hosts": "localhost", "connection": "local", "gather_facts": False,
             "tasks": [{"ansible.builtin.include_vars": {"file": str(REPO / "roles" / "_common" / "defaults" / "main.yml")}},
                       {"ansible.builtin.include_vars": {"file": str(role / "defaults" / "main.yml")}},
                       {"ansible.builtin.include_vars": {"file": str(role / "vars" / "main.yml")}},
                       {"ansible.builtin.set_fact": {"_kubevirt_monitoring_vms": looked_up(*vms)}}] + checks}]
    (tmp_path / "checks.yml").write_text(yaml.safe_dump(play))
    variables = {"kubevirt_monitoring_resilient_vms": [{"namespace": ns, "name": n} for ns, n, _arch in vms], **extra}
    return subprocess.run([str(BIN / "ansible-playbook"), str(tmp_path / "checks.yml"), "-e", json.dumps(variables)],
                          capture_output=True, text=True, check=False, env={**os.environ, "ANSIBLE_NOCOLOR": "1"})


def test_arm64_vms_are_named_and_an_unknown_architecture_fails_before_any_write(tmp_path):
    ok = run_present_checks(tmp_path, VMS, kubevirt_monitoring_watchdog_action="reset")
    assert ok.returncode == 0, ok.stdout[-2000:] + ok.stderr[-2000:]
    assert "kubevirt_monitoring: no watchdog for vms/graviton (architecture arm64" in ok.stdout
    quiet = run_present_checks(tmp_path, VMS)  # no watchdog asked for: nothing to say
    assert quiet.returncode == 0 and "no watchdog for" not in quiet.stdout
    bad = run_present_checks(tmp_path, VMS + [("vms", "power", "ppc64le")], kubevirt_monitoring_watchdog_action="reset")
    assert bad.returncode != 0
    assert "VirtualMachine vms/power has spec.template.spec.architecture ppc64le" in bad.stdout + bad.stderr
