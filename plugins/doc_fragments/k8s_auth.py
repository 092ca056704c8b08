# -*- coding: utf-8 -*-
# Copyright: unimon.stack developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection options of our modules and plugins that reach the API server through kubernetes.core's client
(module_utils.k8s.client.get_api_client): the same names, types and K8S_AUTH_* variables as kubernetes.core.k8s.

LOGIN holds the three options that modules reaching Prometheus or the log store use for that service
instead (fragment unimon.stack.endpoint); there the API server's come from the K8S_AUTH_* variables."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r"""
options:
  kubeconfig:
    description:
      - Path to a kubeconfig file, or the kubeconfig itself as a dict. Falls back to C(K8S_AUTH_KUBECONFIG),
        then C(~/.kube/config), then the in-cluster ServiceAccount.
    type: raw
  context:
    description: Kubeconfig context to use (C(K8S_AUTH_CONTEXT)); the current context when unset.
    type: str
  host:
    description: API server URL (C(K8S_AUTH_HOST)).
    type: str
  api_key:
    description: Bearer token (C(K8S_AUTH_API_KEY)).
    type: str
  ca_cert:
    description: CA bundle that signed the API server's certificate (C(K8S_AUTH_SSL_CA_CERT)).
    type: path
    aliases: [ssl_ca_cert]
  client_cert:
    description: Client certificate (C(K8S_AUTH_CERT_FILE)).
    type: path
    aliases: [cert_file]
  client_key:
    description: Key of the client certificate (C(K8S_AUTH_KEY_FILE)).
    type: path
    aliases: [key_file]
  proxy:
    description: HTTP proxy URL (C(K8S_AUTH_PROXY)).
    type: str
  no_proxy:
    description: Hosts reached without the proxy, comma-separated (C(K8S_AUTH_NO_PROXY)).
    type: str
  proxy_headers:
    description: Headers sent to the proxy.
    type: dict
    suboptions:
      proxy_basic_auth:
        description: C(user:password) for the proxy.
        type: str
      basic_auth:
        description: C(user:password) for basic authentication.
        type: str
      user_agent:
        description: User-Agent header.
        type: str
  persist_config:
    description: Write refreshed credentials back to the kubeconfig (C(K8S_AUTH_PERSIST_CONFIG)).
    type: bool
  impersonate_user:
    description: User to impersonate (C(K8S_AUTH_IMPERSONATE_USER)).
    type: str
  impersonate_groups:
    description: Groups to impersonate (C(K8S_AUTH_IMPERSONATE_GROUPS)).
    type: list
    elements: str
"""

    LOGIN = r"""
options:
  username:
    description: User for basic authentication (C(K8S_AUTH_USERNAME)).
    type: str
  password:
    description: Password for basic authentication (C(K8S_AUTH_PASSWORD)).
    type: str
  validate_certs:
    description: Verify the API server's certificate (C(K8S_AUTH_VERIFY_SSL)).
    type: bool
    aliases: [verify_ssl]
"""
