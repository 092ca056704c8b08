#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: unimon.stack developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: sa_token
short_description: Write a ServiceAccount token from the TokenRequest API to a file
version_added: 0.1.0
description:
  - Requests a bound token for a ServiceAccount (the TokenRequest API; no long-lived Secret) and writes it
    to O(dest) with mode 0600. The token is never returned or logged.
  - Idempotent. An existing token in O(dest) is kept while more than a third of its lifetime remains.
author:
  - unimon.stack developers (@unimon)
options:
  namespace:
    description: Namespace of the ServiceAccount.
    type: str
    required: true
  service_account:
    description: ServiceAccount name.
    type: str
    required: true
  dest:
    description: File to write the token to.
    type: path
    required: true
  duration:
    description: Requested lifetime in seconds (the API server may shorten it; at least 600).
    type: int
    default: 86400
  audiences:
    description: Token audiences; empty means the API server's own.
    type: list
    elements: str
    default: []
extends_documentation_fragment:
  - unimon.stack.k8s_auth
  - unimon.stack.k8s_auth.login
attributes:
  check_mode:
    description: Reports whether a token would be written, without requesting or writing one.
    support: full
  diff_mode:
    description: No diff; the content is a secret.
    support: none
requirements:
  - kubernetes (Python library)
"""

EXAMPLES = r"""
- name: Token for an external scraper
  unimon.stack.sa_token:
    namespace: unimon
    service_account: unimon-kubelet-scraper
    dest: /etc/unimon/kubelet-token
    duration: 86400
"""

RETURN = r"""
expires:
  description: Expiry of the token in the file (UTC, ISO 8601).
  returned: success
  type: str
renewed:
  description: Whether a new token was written.
  returned: always
  type: bool
"""

import base64
import datetime
import json
import os
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.unimon.stack.plugins.module_utils.k8s_auth import (
    HAS_K8S_CLIENT, K8S_CLIENT_IMP_ERR, K8sAuthError, api_client, k8s_auth_spec,
)

if HAS_K8S_CLIENT:
    from kubernetes import client as k8s_client
    from kubernetes.client.rest import ApiException


def token_expiry(path):
    """exp claim of the JWT in path, or None when there is no readable token."""
    try:
        with open(path) as fh:
            payload = fh.read().strip().split('.')[1]
        payload += '=' * (-len(payload) % 4)
        return int(json.loads(base64.urlsafe_b64decode(payload))['exp'])
    except (OSError, IndexError, ValueError, KeyError, TypeError):
        return None


def main():
    spec = k8s_auth_spec()
    spec.update(
        namespace=dict(type='str', required=True),
        service_account=dict(type='str', required=True),
        dest=dict(type='path', required=True),
        duration=dict(type='int', default=86400),
        audiences=dict(type='list', elements='str', default=[]),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    p = module.params
    if p['duration'] < 600:
        module.fail_json(msg='duration must be at least 600 seconds, got %d' % p['duration'])
    if not HAS_K8S_CLIENT:
        module.fail_json(msg='the kubernetes.core collection and the kubernetes Python library are required: %s'
                         % K8S_CLIENT_IMP_ERR)

    exp = token_expiry(p['dest'])
    if exp is not None and exp - time.time() > p['duration'] / 3.0:
        changed = (os.stat(p['dest']).st_mode & 0o777) != 0o600
        if changed and not module.check_mode:
            os.chmod(p['dest'], 0o600)
        module.exit_json(changed=changed, renewed=False,
                         expires=datetime.datetime.utcfromtimestamp(exp).isoformat() + 'Z')
    if module.check_mode:
        module.exit_json(changed=True, renewed=True)

    try:
        api = k8s_client.CoreV1Api(api_client(p))
        body = k8s_client.AuthenticationV1TokenRequest(spec=k8s_client.V1TokenRequestSpec(
            audiences=p['audiences'], expiration_seconds=p['duration']))
        res = api.create_namespaced_service_account_token(p['service_account'], p['namespace'], body)
    except K8sAuthError as err:
        module.fail_json(msg=str(err))
    except ApiException as err:
        module.fail_json(msg='TokenRequest for %s/%s failed: %s %s' % (p['namespace'], p['service_account'],
                                                                       err.status, err.reason))
    except Exception as err:  # connection errors come as several urllib3 types
        module.fail_json(msg='cannot reach the API server for the TokenRequest: %s' % err)

    dest_dir = os.path.dirname(p['dest']) or '.'
    if not os.path.isdir(dest_dir):
        os.makedirs(dest_dir, 0o700)
    tmp = p['dest'] + '.tmp'
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w') as fh:
        fh.write(res.status.token)
    os.rename(tmp, p['dest'])
    module.exit_json(changed=True, renewed=True, expires=res.status.expiration_timestamp.isoformat())


if __name__ == '__main__':
    main()
