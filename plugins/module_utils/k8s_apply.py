# -*- coding: utf-8 -*-
# Copyright: unimon.stack developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Apply some objects and delete others with one client, through kubernetes.core's apply, delete, wait and
diff code (module_utils.k8s.runner.perform_action). Shared by the k8s_apply action plugin (which runs it in
the controller) and the k8s_apply module."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

from ansible.module_utils.common.text.converters import to_native
from ansible_collections.unimon.stack.plugins.module_utils.k8s_auth import k8s_auth_spec

try:
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import CoreException
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.runner import perform_action
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.service import K8sService
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.waiter import exists
    HAS_KUBERNETES_CORE = True
except ImportError:  # the callers say so
    HAS_KUBERNETES_CORE = False

    class CoreException(Exception):
        """Stands for kubernetes.core's exception where kubernetes.core is missing."""


OPTIONS = dict(
    state=dict(type="str", default="present", choices=["present", "absent"]),
    definitions=dict(type="list", elements="dict", default=[]),
    absent=dict(type="list", elements="dict", default=[]),
    namespace=dict(type="str", default=""),
    field_manager=dict(type="str", default="unimon.stack"),
    force_conflicts=dict(type="bool", default=True),
    wait_absent=dict(type="bool", default=False),
    wait_timeout=dict(type="int", default=120),
    wait_sleep=dict(type="int", default=1),
    wait_for=dict(type="list", elements="dict", default=[], options=dict(
        kind=dict(type="str", required=True),
        name=dict(type="str"),
        condition=dict(type="dict", options=dict(type=dict(type="str", required=True), status=dict(type="str", default="True"))),
    )),
    ensure_namespace=dict(type="str", default=""),
    pod_security_level=dict(type="str", default="privileged", choices=["privileged", "baseline", "restricted"]),
)


def argument_spec():
    spec = k8s_auth_spec()
    spec.update(copy.deepcopy(OPTIONS))
    return spec


class PhaseView:
    """The module as kubernetes.core's K8sService sees it, with the parameters of one phase (apply or delete):
    K8sService reads state, wait and apply settings from module.params."""

    def __init__(self, module, **params):
        self._module = module
        self.params = dict(module.params, **params)

    def __getattr__(self, name):
        return getattr(self._module, name)


def object_ref(definition):
    meta = definition.get("metadata") or {}
    return {"kind": definition.get("kind"), "namespace": meta.get("namespace"), "name": meta.get("name")}


def ref_text(ref):
    return "/".join(part for part in (ref["kind"], ref["namespace"], ref["name"]) if part)


def phase_params(params, state):
    return {
        "state": state,
        "apply": state == "present",
        "server_side_apply": {"field_manager": params["field_manager"], "force_conflicts": params["force_conflicts"]},
        "wait": False,  # every object first, the waits afterwards (wait_all)
        "wait_condition": None,  # set per wait_for entry (wait_selected)
        "label_selectors": None,
        "hidden_fields": None,
        "force": False,
        "append_hash": False,
        "merge_type": None,
        "delete_options": None,
    }


def shared_namespace(name, level):
    """The one definition of the shared namespace: every role applies it with the same field manager, so no
    role's apply removes another role's labels. node-exporter, categraf and Fluentd need host namespaces and
    host paths, hence the Pod Security level as a setting (unimon_pod_security_level)."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "labels": {
                "app.kubernetes.io/part-of": "unimon",
                "app.kubernetes.io/managed-by": "unimon.stack",
                "pod-security.kubernetes.io/enforce": level,
                "pod-security.kubernetes.io/warn": level,
            },
        },
    }


def namespace_missing(svc, namespace):
    resource = svc.find_resource("Namespace", "v1", fail=True)
    return not exists(svc.retrieve(resource, {"metadata": {"name": namespace}}))


def run_phase(svc, definitions, report, diffs):
    """Apply or delete each object; returns the definitions as the API named them, with whether each changed."""
    params = svc.module.params
    done = []
    for definition in definitions:
        definition = copy.deepcopy(definition)
        ref = object_ref(definition)
        try:
            result = perform_action(svc, definition, params)
        except Exception as exc:  # kubernetes.core raises many kinds; the object and the API's reason are what matter
            reason = getattr(getattr(exc, "__cause__", None), "reason", None)
            detail = " ({0})".format(reason) if reason else ""
            raise CoreException("{0} {1}: {2}{3}".format(params["state"], ref_text(ref), to_native(exc), detail)) from exc
        for warning in result.get("warnings", []):
            svc.module.warn(warning)
        changed = bool(result["changed"])
        report.append(dict(ref, method=result.get("method"), changed=changed))
        if changed and svc.module._diff:
            diff = result.get("diff") or ({"before": {"exists": True}, "after": {"exists": False}} if params["state"] == "absent" else {})
            header = ref_text(ref)
            diffs.append({"before_header": header, "after_header": header,
                          "before": diff.get("before", {}), "after": diff.get("after", {})})
        done.append((definition, changed))
    return done


def wait_all(svc, definitions):
    for definition in definitions:
        resource = svc.find_resource(definition["kind"], definition["apiVersion"], fail=True)
        ok, dummy, duration = svc.wait(resource, definition)
        if not ok:
            raise CoreException("timed out after {0} s waiting for {1} to be {2}".format(
                duration, ref_text(object_ref(definition)), "gone" if svc.module.params["state"] == "absent" else "ready"))


def wait_selected(svc, applied, wait_for):
    """Wait for the applied objects each O(wait_for) entry names (by kind, and name when given), with the
    entry's condition or else kubernetes.core's readiness rule for that kind."""
    for entry in wait_for:
        chosen = [d for d in applied if d.get("kind") == entry["kind"]
                  and (not entry.get("name") or (d.get("metadata") or {}).get("name") == entry["name"])]
        if not chosen:
            raise CoreException("wait_for {0}{1}: no such object among those applied".format(
                entry["kind"], "/" + entry["name"] if entry.get("name") else ""))
        view = PhaseView(svc.module, wait_condition=entry.get("condition"))
        wait_all(K8sService(svc.client, view), chosen)


def apply_and_delete(module, client):
    """module: anything with params, check_mode, _diff and warn (an AnsibleK8SModule, or the action plugin's view).
    Returns the result; raises CoreException on the first error."""
    params = module.params
    report, diffs, listed = [], [], []
    removing = params["state"] == "absent"
    # state: absent removes the role's objects; they are waited for only through wait_absent.
    present = [] if removing else params["definitions"]
    absent = params["absent"] + (params["definitions"] if removing else [])
    namespaces = [] if removing or not params["ensure_namespace"] else [
        shared_namespace(params["ensure_namespace"], params["pod_security_level"])]
    if present and module.check_mode and params["namespace"]:
        if namespace_missing(K8sService(client, module), params["namespace"]):
            listed = ["{0}/{1}".format(d.get("kind"), (d.get("metadata") or {}).get("name")) for d in present]
            present = []
    apply_svc = K8sService(client, PhaseView(module, **phase_params(params, "present")))
    # The namespace first (a server-side dry run of a new Namespace works, so check mode shows it too).
    applied = run_phase(apply_svc, namespaces + present, report, diffs)
    delete_svc = K8sService(client, PhaseView(module, **phase_params(params, "absent")))
    deleted = run_phase(delete_svc, absent, report, diffs)
    if not module.check_mode:  # nothing was written in check mode, nothing to wait for
        if params["wait_for"] and not removing:
            wait_selected(apply_svc, [d for d, dummy in applied], params["wait_for"])
        if params["wait_absent"]:
            wait_all(delete_svc, [d for d, changed in deleted if changed])
    result = {"changed": any(r["changed"] for r in report) or bool(listed), "objects": report}
    if listed:
        result["would_create"] = listed
    if diffs:
        result["diff"] = diffs
    return result
