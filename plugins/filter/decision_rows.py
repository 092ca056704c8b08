# -*- coding: utf-8 -*-
# Copyright: unimon.stack developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rows of preflight's decision table (unit tested)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: decision_rows
short_description: Preflight's decision table, one text row per decision
version_added: 0.3.0
description:
  - For each decision (C({what, fact, override})), what preflight found (the fact and its evidence from
    M(unimon.stack.cluster_facts)), what was decided (the finding, or the override variable's value when the
    user set it) and the variable that overrides it, as C(what | evidence | decided | variable).
  - Then one row per namespace with its Pod Security enforcement level now and the one the play sets.
options:
  _input:
    description: The C(facts) result of M(unimon.stack.cluster_facts), with C(evidence) and C(namespaces).
    type: dict
    required: true
  decisions:
    description: The decisions, each C({what, fact, override}).
    type: list
    elements: dict
    required: true
  overrides:
    description: Override variable name to its value, V(__unset__) where the user did not set it.
    type: dict
    required: true
  operator_version:
    description: The Prometheus Operator version the play installs.
    type: str
    required: true
  pod_security:
    description: The Pod Security level the play sets on its namespaces.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: The table
  ansible.builtin.debug:
    msg: "{{ facts | unimon.stack.decision_rows(decisions, overrides, 'v0.85.0', 'privileged') }}"
"""

RETURN = r"""
_value:
  description: Rows, fields separated by C( | ).
  type: list
  elements: str
"""

UNSET = "__unset__"


def _found(fact, value, operator_version):
    """What preflight found, as text."""
    if fact == "prometheus_operator_crds":
        return "%s %s" % (value["action"], operator_version)
    if fact == "default_storage_class":
        return "%s (when prometheus_storage_size is set)" % (value or "none: PVCs need prometheus_storage_class")
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple, dict)):
        return ",".join(str(v) for v in value) or "none"
    return value


def decision_rows(facts, decisions, overrides, operator_version, pod_security):
    rows = []
    for decision in decisions:
        fact = decision["fact"]
        user = overrides.get(decision["override"], UNSET)
        user = str(user).lower() if isinstance(user, bool) else str(user)
        decided = _found(fact, facts[fact], operator_version) if user == UNSET else user + " (set by you)"
        rows.append([decision["what"], facts["evidence"][fact], decided, decision["override"]])
    for name, ns in facts["namespaces"].items():
        now = "enforce=%s" % (ns.get("enforce") or "unset") if ns.get("exists") else "namespace absent"
        rows.append(["Pod Security of namespace " + name, now, "enforce=" + pod_security, "unimon_pod_security_level"])
    return [" | ".join(str(field) for field in row) for row in rows]


class FilterModule(object):
    def filters(self):
        return {"decision_rows": decision_rows}
