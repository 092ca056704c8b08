#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: unimon.stack developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: k8s_apply
short_description: Apply some Kubernetes objects and delete others in one call
version_added: 0.3.0
description:
  - Server-side applies O(definitions) (or deletes them, O(state=absent)) and deletes O(absent) with one API
    client and one API discovery, through
    kubernetes.core's own apply, delete, wait and diff code (the same results as M(kubernetes.core.k8s) called
    once per state, at the cost of one module run instead of two or more).
  - All objects are written first and waited for afterwards, so the waits overlap.
  - In check mode, when O(namespace) does not exist yet, the objects to apply are listed as would-be
    created instead of dry-run (a server-side dry run into a missing namespace fails).
author:
  - unimon.stack developers (@unimon)
extends_documentation_fragment:
  - unimon.stack.k8s_auth
  - unimon.stack.k8s_auth.login
options:
  state:
    description:
      - What to do with O(definitions) (a role's objects); O(absent) is deleted whatever the state.
      - With V(absent), O(ensure_namespace) and O(wait_for) are left out.
    type: str
    default: present
    choices: [present, absent]
  definitions:
    description: Objects applied server-side when O(state=present), deleted when O(state=absent).
    type: list
    elements: dict
    default: []
  absent:
    description: Objects to delete; those already gone are left alone.
    type: list
    elements: dict
    default: []
  namespace:
    description: Namespace the objects to apply live in, looked up in check mode; empty for cluster-scoped objects.
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
  wait_for:
    description:
      - Applied objects to wait for, after all objects are written; the others are not waited for.
      - Each entry picks the applied objects of one kind (and one name, when given).
    type: list
    elements: dict
    default: []
    suboptions:
      kind:
        description: Kind of the objects to wait for.
        type: str
        required: true
      name:
        description: Name of the object to wait for; every object of O(wait_for[].kind) when left out.
        type: str
      condition:
        description: A status condition to wait for; kubernetes.core's readiness rule for the kind when left out.
        type: dict
        suboptions:
          type:
            description: Condition type.
            type: str
            required: true
          status:
            description: Condition status.
            type: str
            default: "True"
  ensure_namespace:
    description:
      - Name of the shared namespace to apply before O(definitions), with the labels every role gives it (part-of,
        managed-by and the Pod Security level O(pod_security_level)). Empty applies no namespace.
    type: str
    default: ""
  pod_security_level:
    description: Pod Security level (enforce and warn) of O(ensure_namespace).
    type: str
    default: privileged
    choices: [privileged, baseline, restricted]
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
    definitions: "{{ lookup('ansible.builtin.template', 'enabled.yaml.j2') | unimon.stack.from_k8s_yaml }}"
    absent: "{{ lookup('ansible.builtin.template', 'disabled.yaml.j2') | unimon.stack.from_k8s_yaml }}"
    namespace: unimon
    ensure_namespace: unimon
    wait_for:
      - kind: Deployment
        name: grafana
        condition: {type: Available}
"""

RETURN = r"""
objects:
  description: What happened to each object, in order (the objects themselves are not returned, they may be Secrets).
  returned: always
  type: list
  elements: dict
  sample: [{kind: Deployment, namespace: unimon, name: grafana, method: apply, changed: true}]
would_create:
  description: In check mode, the objects to apply, listed because O(namespace) does not exist yet.
  returned: when the namespace is missing in check mode
  type: list
  elements: str
  sample: [Deployment/grafana]
"""

# The work is done by the action plugin of the same name in the controller (plugins/action/k8s_apply.py);
# this module does the same where a caller runs it as a module.
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native
from ansible_collections.unimon.stack.plugins.module_utils.k8s_apply import (
    HAS_KUBERNETES_CORE, CoreException, apply_and_delete, argument_spec)

try:
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.core import AnsibleK8SModule
except ImportError:
    AnsibleK8SModule = None


def main():
    if AnsibleK8SModule is None or not HAS_KUBERNETES_CORE:
        AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True).fail_json(
            msg="unimon.stack.k8s_apply needs the kubernetes.core collection")
    module = AnsibleK8SModule(module_class=AnsibleModule, argument_spec=argument_spec(), supports_check_mode=True)
    try:
        result = apply_and_delete(module, get_api_client(module))
    except CoreException as exc:
        module.fail_json(msg=to_native(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
