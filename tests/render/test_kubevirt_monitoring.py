"""The kubevirt_monitoring role's bodies for objects it does not own, rendered with real Ansible: the KubeVirt
CR is looked for where the preflight role found it (openshift-cnv under HyperConverged), the explicit variables
overriding that."""
from __future__ import annotations

import pytest

from manifests import load_all

PARTIALS = ["_kubevirt-patch.yaml.j2"]


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
