# -*- coding: utf-8 -*-
# Copyright: unimon.stack developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options of every module that reaches Prometheus or the log store (module_utils/unimon_http.py). Modules
using it also take unimon.stack.k8s_auth: the API server connection for service proxy access."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r"""
options:
  url:
    description: Base URL of the service, for example C(http://prometheus:9090).
    type: str
  namespace:
    description: Namespace of the Service (service proxy access).
    type: str
  service:
    description: Name of the Service (service proxy access).
    type: str
  port:
    description: Port name or number of the Service (service proxy access).
    type: str
  scheme:
    description: Scheme the API server uses towards the Service.
    type: str
    default: http
    choices: [http, https]
  ca_path:
    description: CA bundle that signs the service's certificate (direct access, O(url)).
    type: path
  validate_certs:
    description:
      - Verify the service's certificate (direct access, O(url)). Turning this off is an explicit opt-in.
      - Through the service proxy the API server's certificate is verified as the kubeconfig or
        C(K8S_AUTH_VERIFY_SSL) says.
    type: bool
    default: true
  bearer_token:
    description: Bearer token for direct access.
    type: str
  username:
    description: Basic auth user for direct access.
    type: str
  password:
    description: Basic auth password for direct access.
    type: str
  request_timeout:
    description: Seconds one HTTP request may take.
    type: float
    default: 10.0
"""
