# -*- coding: utf-8 -*-
# Copyright: unimon.stack developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs unimon.stack.k8s_apply in the controller instead of shipping it as a module.

Every role calls it, so its fixed cost is paid many times per site.yml run. As a module
each call started a Python, unpacked the module and imported the kubernetes client (about 1.5 s); here
the imports below happen once, when the strategy loads this plugin in the main process, and each task's
worker inherits them. The roles that call it run against localhost (connection: local), where a module
would have run anyway."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible_collections.unimon.stack.plugins.module_utils.k8s_apply import (
    HAS_KUBERNETES_CORE, CoreException, apply_and_delete, argument_spec)

try:
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
except ImportError:  # run() says so
    get_api_client = None


class ControllerModule:
    """What kubernetes.core's client and service code use of a module, in the controller."""

    def __init__(self, params, check_mode, diff):
        self.params = params
        self.check_mode = check_mode
        self._diff = diff
        self.warnings = []

    @property
    def server_side_dry_run(self):
        return self.check_mode

    def warn(self, warning):
        self.warnings.append(warning)

    def requires(self, name, minimum=None, reason=None):  # pylint: disable=unused-argument
        if get_api_client is None:
            raise CoreException("unimon.stack.k8s_apply needs {0} (the kubernetes Python library and the kubernetes.core collection)".format(name))

    def has_at_least(self, dependency, minimum=None, warn=False):  # pylint: disable=unused-argument
        return True  # kubernetes.core's own floor (kubernetes 24.2.0) is above every feature it asks about here

    def fail_json(self, **kwargs):
        raise CoreException(kwargs.get("msg", "failed"))


class ActionModule(ActionBase):
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        if not HAS_KUBERNETES_CORE or get_api_client is None:
            raise AnsibleActionFail("unimon.stack.k8s_apply needs the kubernetes.core collection and the kubernetes Python library")
        dummy, params = self.validate_argument_spec(argument_spec())
        # Plain data for the client: the objects arrive as Ansible's tagged types.
        for key in ("definitions", "absent"):
            params[key] = json.loads(json.dumps(params[key]))
        module = ControllerModule(params, bool(self._task.check_mode), bool(self._task.diff))
        try:
            result.update(apply_and_delete(module, get_api_client(module)))
        except CoreException as exc:
            result.update(failed=True, msg=to_native(exc))
        except Exception as exc:  # pylint: disable=broad-except  # the client's own errors (refused connection, bad kubeconfig)
            result.update(failed=True, msg="k8s_apply: {0}".format(to_native(exc)))
        if module.warnings:
            result["warnings"] = module.warnings
        if result.get("would_create") and not (self._task.no_log or self._play_context.no_log):
            # Shown without -v: a check-mode run says what it could not dry-run.
            Display().display("would create {0}".format(result["would_create"]))
        return result
