#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: unimon.stack developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: validate_input
short_description: Check the input of unimon.stack roles in one task, before anything is written
version_added: 0.3.0
description:
  - For each role in O(roles), checks the role's variables as the role would see them (the shared defaults of
    C(roles/_common), the role's defaults and vars, the play's variables) against the role's argument_specs (entry
    point C(main)) and against the checks types cannot express, kept as data in C(roles/<role>/meta/checks.yml).
  - The shared settings (C(unimon_*)) are checked first; when one of them is bad only that is reported, under the
    name the user set, because the roles' variables derive from them.
  - Every problem of every role is reported in one failure, with the variable named.
  - Runs in the controller and contacts nothing, so it can run before a host or a cluster is reachable.
  - The format of C(meta/checks.yml) is described in the collection's docs/validation.md.
author:
  - unimon.stack developers (@unimon)
options:
  roles:
    description: Names of unimon.stack roles (C(logging) or C(unimon.stack.logging)).
    type: list
    elements: str
    required: true
  argument_specs:
    description:
      - Also check each role's argument_specs.
      - V(false) where Ansible has just checked them, when a role is run through its C(main) or C(validate) entry point.
    type: bool
    default: true
notes:
  - An action plugin only; there is nothing to run on a managed host.
"""

EXAMPLES = r"""
- name: Check the input of every role the play runs, then run them with tasks_from=run
  unimon.stack.validate_input:
    roles: [prometheus_operator, prometheus, logging]
"""

RETURN = r"""
validated:
  description: The roles whose input is valid.
  returned: success
  type: list
  elements: str
  sample: [prometheus_operator, prometheus]
"""

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec=dict(roles=dict(type="list", elements="str", required=True),
                                              argument_specs=dict(type="bool", default=True)),
                           supports_check_mode=True)
    module.fail_json(msg="unimon.stack.validate_input runs in the controller as an action plugin; it cannot run as a module")


if __name__ == "__main__":
    main()
