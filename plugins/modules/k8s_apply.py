#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: unimon.stack developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: k8s_apply
short_description: Apply some Kubernetes objects and delete others in one call
version_added: 0.6.0
description:
  - Server-side applies O(present) and deletes O(absent) with one API client and one API discovery, through
    kubernetes.core's own apply, delete, wait and diff code (the same results as M(kubernetes.core.k8s) called
    once per state, at the cost of one module run instead of two or more).
  - All objects are written first and waited for afterwards, so the waits overlap.
  - In check mode, when O(namespace) does not exist yet, the objects of O(present) are listed as would-be
    created instead of dry-run (a server-side dry run into a missing namespace fails).
author:
  - unimon.stack developers (@unimon)
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
options:
  present:
    description: Objects to apply server-side.
    type: list
    elements: dict
    default: []
  absent:
    description: Objects to delete; those already gone are left alone.
    type: list
    elements: dict
    default: []
  namespace:
    description: Namespace the objects of O(present) live in, looked up in check mode; empty for cluster-scoped objects.
    type: str
    default: ""
  field_manager:
    description: Server-side apply field manager.
    type: str
    default: unimon.stack
  force_conflicts:
    description: Take over fields another field manager owns.
    type: bool
    default: true
  wait:
    description: Wait until each object of O(present) is ready (kubernetes.core's readiness rules, or O(wait_condition)).
    type: bool
    default: false
  wait_condition:
    description: A status condition every object of O(present) must reach, for example C(Established) for CRDs.
    type: dict
    suboptions:
      type:
        description: Condition type.
        type: str
      status:
        description: Condition status.
        type: str
        default: "True"
      reason:
        description: Condition reason.
        type: str
  wait_absent:
    description: Wait until each object of O(absent) is gone.
    type: bool
    default: false
  wait_timeout:
    description: Seconds each wait may take.
    type: int
    default: 120
  wait_sleep:
    description: Seconds between two looks while waiting.
    type: int
    default: 1
attributes:
  check_mode:
    description: Server-side dry run; objects in a namespace that does not exist yet are listed instead.
    support: full
  diff_mode:
    description: One before/after pair per object that would change.
    support: full
requirements:
  - kubernetes (Python library)
"""

EXAMPLES = r"""
- name: Apply the enabled objects and delete the switched-off ones
  unimon.stack.k8s_apply:
    present: "{{ lookup('ansible.builtin.template', 'enabled.yaml.j2') | unimon.stack.from_k8s_yaml }}"
    absent: "{{ lookup('ansible.builtin.template', 'disabled.yaml.j2') | unimon.stack.from_k8s_yaml }}"
    namespace: unimon
"""

RETURN = r"""
objects:
  description: What happened to each object, in order (the objects themselves are not returned, they may be Secrets).
  returned: always
  type: list
  elements: dict
  sample: [{kind: Deployment, namespace: unimon, name: grafana, method: apply, changed: true}]
would_create:
  description: In check mode, the objects of O(present) listed because O(namespace) does not exist yet.
  returned: when the namespace is missing in check mode
  type: list
  elements: str
  sample: [Deployment/grafana]
"""

import copy

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

try:
    from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.core import AnsibleK8SModule
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import CoreException
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.runner import perform_action
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.service import K8sService
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.waiter import exists
except ImportError:  # kubernetes.core missing: the module's import check names it
    AUTH_ARG_SPEC = {}
    AnsibleK8SModule = None


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


def phase_params(module, state):
    params = {
        "state": state,
        "apply": state == "present",
        "server_side_apply": {"field_manager": module.params["field_manager"], "force_conflicts": module.params["force_conflicts"]},
        "wait": False,  # all objects first, the waits afterwards (wait_all)
        "wait_condition": module.params["wait_condition"] if state == "present" else None,
        "label_selectors": None,
        "hidden_fields": None,
        "force": False,
        "append_hash": False,
        "merge_type": None,
        "delete_options": None,
    }
    return params


def namespace_missing(svc, namespace):
    resource = svc.find_resource("Namespace", "v1", fail=True)
    return not exists(svc.retrieve(resource, {"metadata": {"name": namespace}}))


def run_phase(svc, params, definitions, report, diffs):
    done = []
    for definition in definitions:
        definition = copy.deepcopy(definition)
        ref = object_ref(definition)
        try:
            result = perform_action(svc, definition, params)
        except Exception as exc:  # kubernetes.core raises many kinds; the object and the API's reason are what matter
            reason = getattr(getattr(exc, "__cause__", None), "reason", None)
            raise CoreException("{0} {1}: {2}{3}".format(params["state"], ref_text(ref), to_native(exc),
                                                        " ({0})".format(reason) if reason else "")) from exc
        for warning in result.get("warnings", []):
            svc.module.warn(warning)
        report.append(dict(ref, method=result.get("method"), changed=bool(result["changed"])))
        if result["changed"] and svc.module._diff:
            header = ref_text(ref)
            diff = result.get("diff") or ({"before": {}, "after": "deleted"} if params["state"] == "absent" else {})
            diffs.append({"before_header": header, "after_header": header,
                          "before": diff.get("before", {}), "after": diff.get("after", {})})
        done.append(definition)
    return done


def wait_all(svc, definitions, state):
    for definition in definitions:
        resource = svc.find_resource(definition["kind"], definition["apiVersion"], fail=True)
        ok, instance, duration = svc.wait(resource, definition)
        if not ok:
            raise CoreException("timed out after {0} s waiting for {1} to be {2}".format(
                duration, ref_text(object_ref(definition)), "ready" if state == "present" else "gone"))


def main():
    argument_spec = copy.deepcopy(AUTH_ARG_SPEC)
    argument_spec.update(
        present=dict(type="list", elements="dict", default=[]),
        absent=dict(type="list", elements="dict", default=[]),
        namespace=dict(type="str", default=""),
        field_manager=dict(type="str", default="unimon.stack"),
        force_conflicts=dict(type="bool", default=True),
        wait=dict(type="bool", default=False),
        wait_condition=dict(type="dict", options=dict(type=dict(type="str"), status=dict(type="str", default="True"),
                                                      reason=dict(type="str"))),
        wait_absent=dict(type="bool", default=False),
        wait_timeout=dict(type="int", default=120),
        wait_sleep=dict(type="int", default=1),
    )
    if AnsibleK8SModule is None:
        AnsibleModule(argument_spec=argument_spec, supports_check_mode=True).fail_json(
            msg="unimon.stack.k8s_apply needs the kubernetes.core collection")
    module = AnsibleK8SModule(module_class=AnsibleModule, argument_spec=argument_spec, supports_check_mode=True)
    report, diffs, listed = [], [], []
    try:
        client = get_api_client(module)
        present = module.params["present"]
        if present and module.check_mode and module.params["namespace"]:
            if namespace_missing(K8sService(client, module), module.params["namespace"]):
                listed = ["{0}/{1}".format(d.get("kind"), (d.get("metadata") or {}).get("name")) for d in present]
                present = []
        view = PhaseView(module, **phase_params(module, "present"))
        svc = K8sService(client, view)
        applied = run_phase(svc, view.params, present, report, diffs)
        if module.params["absent"]:
            gone_view = PhaseView(module, **phase_params(module, "absent"))
            gone_svc = K8sService(client, gone_view)
            deleted = run_phase(gone_svc, gone_view.params, module.params["absent"], report, diffs)
        if module.check_mode:
            pass  # nothing was written, nothing to wait for
        else:
            if module.params["wait"]:
                wait_all(svc, applied, "present")
            if module.params["absent"] and module.params["wait_absent"]:
                wait_all(gone_svc, [d for d, r in zip(deleted, report[len(applied):]) if r["changed"]], "absent")
    except CoreException as exc:
        module.fail_json(msg=to_native(exc), objects=report)
    result = {"changed": any(r["changed"] for r in report) or bool(listed), "objects": report}
    if listed:
        result["would_create"] = listed
    if diffs:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
