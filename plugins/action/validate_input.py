# -*- coding: utf-8 -*-
# Copyright: unimon.stack developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks the input of any number of unimon.stack roles in one controller-side task.

For each role: its argument_specs (the entry point `main`, as Ansible checks a role when it starts) and
the checks types cannot express, kept as data in roles/<role>/meta/checks.yml (docs/validation.md).
site.yml checks all its roles this way before any role writes, in one task instead of one include and
a dozen asserts per role, and reports every problem at once rather than the first one."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.text.converters import to_native
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.module_utils.six import string_types
from ansible.plugins.action import ActionBase
from ansible.utils.vars import combine_vars

try:
    from ansible.template import trust_as_template
except ImportError:  # ansible-core before 2.19: every template is trusted
    def trust_as_template(value):
        return value

ROLES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "roles")
# Every role depends on _common: its shared settings are checked first, under their own names.
SHARED_ROLE = "_common"
CHECK_KEYS = frozenset(("name", "that", "msg", "when", "vars", "loop", "loop_var", "index_var", "include"))


def as_list(value):
    return value if isinstance(value, list) else [value]


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True

    def __init__(self, *args, **kwargs):
        super(ActionModule, self).__init__(*args, **kwargs)
        self._files = {}

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        roles = self._task.args.get("roles")
        if not isinstance(roles, list) or not roles or not all(isinstance(r, string_types) for r in roles):
            raise AnsibleActionFail("roles must be a non-empty list of unimon.stack role names")
        roles = [r.split(".")[-1] for r in roles]
        unknown = [r for r in roles if not os.path.isdir(os.path.join(ROLES_DIR, r))]
        if unknown:
            raise AnsibleActionFail("roles: unimon.stack has no role %s" % ", ".join(unknown))
        specs = boolean(self._task.args.get("argument_specs", True), strict=False)

        # The roles' own variables derive from the shared ones (prometheus_namespace from unimon_namespace):
        # a bad shared value is reported alone, under the name the user set.
        problems = self._validate_role(SHARED_ROLE, {}, task_vars or {}, specs)
        for role in roles if not problems else []:
            for problem in self._validate_role(role, {}, task_vars or {}, specs):
                if problem not in problems:  # guest_agent checks node_exporter's input too
                    problems.append(problem)

        result["changed"] = False
        if problems:
            result["failed"] = True
            if len(problems) == 1:
                result["msg"] = "Invalid input: " + problems[0]
            else:
                result["msg"] = "Invalid input (%d problems): %s" % (
                    len(problems), " ".join("(%d) %s" % (n, p) for n, p in enumerate(problems, 1)))
        else:
            result["validated"] = roles
            result["msg"] = "The input of %s is valid" % ", ".join(roles)
        return result

    # -- reading the role ----------------------------------------------------------------------------

    def _load(self, role, *parts):
        """A role file, read once per task (_common's defaults are read for every role). Nothing here
        changes what it reads, so the loader's cached copy is used as it is (unsafe: no deep copy)."""
        path = os.path.join(ROLES_DIR, role, *parts)
        cache = self._files
        if path not in cache:
            if not os.path.exists(path):
                cache[path] = None
            else:
                try:
                    # Trusted like the role's own files, so that their templates and expressions are evaluated.
                    cache[path] = self._loader.load_from_file(path, unsafe=True, trusted_as_template=True)
                except TypeError:  # ansible-core before 2.19 has no data tagging
                    cache[path] = self._loader.load_from_file(path)
        return cache[path]

    def _role_variables(self, role, task_vars, extra):
        """The role's variables as the role sees them: the shared and the role's defaults, its vars (internal
        names; Ansible ranks them above the play's variables but below extra vars, which task_vars merges in),
        the task's variables, and an include's vars."""
        variables = combine_vars(self._load(SHARED_ROLE, "defaults", "main.yml") or {},
                                 self._load(role, "defaults", "main.yml") or {})
        variables = combine_vars(variables, self._load(role, "vars", "main.yml") or {})
        variables = combine_vars(variables, task_vars)
        return combine_vars(variables, extra)

    # -- checking ------------------------------------------------------------------------------------

    def _validate_role(self, role, extra, task_vars, specs):
        variables = self._role_variables(role, task_vars, extra)
        templar = self._templar.copy_with_new_env(available_variables=variables)
        problems = self._spec_problems(role, templar, variables) if specs else []
        if problems:  # the checks below assume the types argument_specs promises
            return problems
        for check in self._load(role, "meta", "checks.yml") or []:
            try:
                problems.extend(self._check_problems(role, check, templar, variables, task_vars, specs))
            except AnsibleError as exc:
                problems.append("%s: the check %r could not be evaluated: %s" % (
                    role, check.get("name", check.get("that")), to_native(exc.message)))
        return problems

    def _spec_problems(self, role, templar, variables):
        spec = ((self._load(role, "meta", "argument_specs.yml") or {}).get("argument_specs") or {}).get("main") or {}
        options = spec.get("options") or {}
        provided, unresolved = {}, []
        for name in options:
            if name in variables:
                try:
                    provided[name] = templar.template(variables[name])
                except AnsibleError as exc:  # a default derived from a bad value: that value is named below
                    unresolved.append("%s: %s could not be computed: %s" % (role, name, to_native(exc.message)))
        checked = dict((name, options[name]) for name in provided)
        problems = list(ArgumentSpecValidator(checked).validate(provided, validate_role_argument_spec=True).error_messages)
        return problems or unresolved

    def _check_problems(self, role, check, templar, variables, task_vars, specs):
        unknown = set(check) - CHECK_KEYS
        if unknown:
            raise AnsibleActionFail("roles/%s/meta/checks.yml: unknown key(s) %s in %r" % (
                role, ", ".join(sorted(unknown)), check.get("name")))
        scope = combine_vars(variables, check.get("vars") or {})
        templar = templar.copy_with_new_env(available_variables=scope)
        if not all(self._truth(templar, w) for w in as_list(check.get("when", True))):
            return []
        if "include" in check:  # another role's input, with these vars (guest_agent -> node_exporter)
            # Nothing else checks the included role's argument_specs (Ansible checks only the running role's).
            return self._validate_role(check["include"], check.get("vars") or {}, task_vars, True)
        if "loop" not in check:
            return self._evaluate(check, templar)
        items = self._value(templar, check["loop"])
        problems = []
        for index, item in enumerate(items or []):
            loop_vars = {check.get("loop_var", "item"): item}
            if "index_var" in check:
                loop_vars[check["index_var"]] = index
            problems.extend(self._evaluate(check, templar.copy_with_new_env(
                available_variables=combine_vars(scope, loop_vars))))
        return problems

    def _evaluate(self, check, templar):
        thats = as_list(check["that"])
        # One expression for all (Jinja compiles each expression, most of this task's time); the ones that
        # failed are looked for only when it is false. Each is already guarded on its own, as in an assert.
        together = thats[0] if len(thats) == 1 else trust_as_template("(" + ") and (".join(thats) + ")")
        if self._truth(templar, together):
            return []
        msg = to_native(templar.template(check["msg"]))
        if len(thats) > 1:  # say which of the rules the message lists was broken
            msg = "%s [failed: %s]" % (msg, next(that for that in thats if not self._truth(templar, that)))
        return [msg]

    @staticmethod
    def _value(templar, expression):
        if hasattr(templar, "evaluate_expression"):
            return templar.evaluate_expression(expression)
        return templar.template("{{ %s }}" % expression)  # ansible-core before 2.19

    @staticmethod
    def _truth(templar, expression):
        if isinstance(expression, bool):
            return expression
        if hasattr(templar, "evaluate_conditional"):
            return templar.evaluate_conditional(expression)
        # ansible-core before 2.19
        return templar.template("{%% if %s %%}True{%% else %%}False{%% endif %%}" % expression) == "True"
