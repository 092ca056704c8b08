# -*- coding: utf-8 -*-
# Copyright: unimon.stack developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One way to reach the API server: kubernetes.core's connection options (doc fragment unimon.stack.k8s_auth)
resolved by kubernetes.core's own code, as kubevirt.core does.

The option names and types are kubernetes.core's, and the functions get_api_client is made of turn them
and the K8S_AUTH_* variables into a client configuration (kubeconfig file or mapping, context, host and
token, client certificates, proxy, impersonation, in-cluster). The client is the plain kubernetes
ApiClient, not get_api_client's dynamic client: that one asks for /version, /api and /apis before the
first request, which the inventory plugin and the service proxy never need. The spec is declared here,
not imported, so a module's options stay known where kubernetes.core is not installed (ansible-test)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

try:
    import kubernetes
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s import client as core_client
    HAS_K8S_CLIENT = True
    K8S_CLIENT_IMP_ERR = None
except ImportError as exc:  # pragma: no cover - depends on the controller
    HAS_K8S_CLIENT = False
    K8S_CLIENT_IMP_ERR = str(exc)

_SPEC = {
    "kubeconfig": {"type": "raw", "no_log": True},
    "context": {"type": "str"},
    "host": {"type": "str"},
    "api_key": {"type": "str", "no_log": True},
    "ca_cert": {"type": "path", "aliases": ["ssl_ca_cert"]},
    "client_cert": {"type": "path", "aliases": ["cert_file"]},
    "client_key": {"type": "path", "aliases": ["key_file"]},
    "proxy": {"type": "str"},
    "no_proxy": {"type": "str"},
    "proxy_headers": {"type": "dict", "options": {
        "proxy_basic_auth": {"type": "str", "no_log": True},
        "basic_auth": {"type": "str", "no_log": True},
        "user_agent": {"type": "str"},
    }},
    "persist_config": {"type": "bool"},
    "impersonate_user": {"type": "str"},
    "impersonate_groups": {"type": "list", "elements": "str"},
}

# Modules that also talk to Prometheus or the log store use these three names for that service
# (module_utils/unimon_http.py); there the API server's take K8S_AUTH_USERNAME, _PASSWORD, _VERIFY_SSL.
_LOGIN_SPEC = {
    "username": {"type": "str"},
    "password": {"type": "str", "no_log": True},
    "validate_certs": {"type": "bool", "aliases": ["verify_ssl"]},
}


def k8s_auth_spec(login=True):
    """A fresh copy (AnsibleModule may modify the spec it is given); login=False leaves out
    username, password and validate_certs (fragment unimon.stack.k8s_auth.login)."""
    spec = copy.deepcopy(_SPEC)
    if login:
        spec.update(copy.deepcopy(_LOGIN_SPEC))
    return spec


class K8sAuthError(Exception):
    """The credentials could not be loaded; the message names where they were looked for."""


def api_client(params, login=True):
    """A kubernetes ApiClient (for CoreV1Api and friends) for the connection options in params; an option
    that is None or missing falls back to its K8S_AUTH_* variable, then to the kubeconfig (KUBECONFIG,
    ~/.kube/config) or the in-cluster ServiceAccount. Its .configuration holds the resolved host,
    token and TLS files. No request is made."""
    if not HAS_K8S_CLIENT:
        raise K8sAuthError("the kubernetes.core collection and the kubernetes Python library are needed: %s"
                           % K8S_CLIENT_IMP_ERR)
    options = dict((k, params.get(k)) for k in k8s_auth_spec(login) if params.get(k) is not None)
    try:
        configuration = core_client._create_configuration(core_client._create_auth_spec(**options))
        api = kubernetes.client.ApiClient(configuration)
        for header, value in core_client._create_headers(**options).items():
            core_client._set_header(api, header, value)  # impersonation; several groups are several headers
    except Exception as err:  # pylint: disable=broad-except  # the kubernetes library raises several unrelated types
        kubeconfig = options.get("kubeconfig")
        where = "kubeconfig %s" % (kubeconfig if isinstance(kubeconfig, str) else "(given as a mapping)") \
            if kubeconfig else "K8S_AUTH_*, ~/.kube/config or the in-cluster ServiceAccount"
        raise K8sAuthError("cannot load Kubernetes credentials (%s, context %s): %s"
                           % (where, options.get("context") or "current", err))
    return api
