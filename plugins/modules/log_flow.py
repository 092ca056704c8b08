#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: unimon.stack developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: log_flow
short_description: Prove that log streams arrive in Elasticsearch or OpenSearch
version_added: 0.1.0
description:
  - For each stream (an index pattern plus field filters such as namespace, container or VM name), counts
    the documents of the freshness window and finds the newest C(@timestamp); waits, with backoff, until
    every stream has fresh documents or the timeout passes.
  - Reaches the log store directly (O(url)) or through the Kubernetes API server's service proxy
    (O(namespace), O(service), O(port)). Read-only; runs in check mode.
author:
  - unimon.stack developers (@unimon)
extends_documentation_fragment:
  - unimon.stack.endpoint
  - unimon.stack.k8s_auth
options:
  streams:
    description: The log streams that must be flowing.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Name used in the result and messages.
        type: str
        required: true
      index:
        description: Index pattern, for example C(kubernetes-*) or C(virt-launcher-*).
        type: str
        required: true
      filters:
        description: >-
          Field/value pairs every document must match (phrase match), for example
          C({"kubernetes.container_name": "guest-console-log"}).
        type: dict
        default: {}
      max_age:
        description: Freshness window in seconds; the newest document must be younger.
        type: int
        default: 300
  timeout:
    description: Seconds to wait until every stream is fresh.
    type: float
    default: 120
  canary:
    description:
      - End-to-end proof on a real cluster. Starts a short-lived pod that prints a unique marker, waits until
        the marker is searchable in O(canary.index) and reports the latency; the pod is deleted afterwards,
        whether the marker arrived or not.
      - The pod is created with the Kubernetes credentials of O(kubeconfig) / O(context), the C(K8S_AUTH_*)
        variables or the in-cluster account. Skipped in check mode (it would create a pod).
      - The pod is temporary, so the task still reports C(changed=false).
    type: dict
    suboptions:
      enabled:
        description: Run the canary.
        type: bool
        default: false
      namespace:
        description: Namespace of the canary pod.
        type: str
        default: default
      image:
        description: Image with a POSIX shell (C(sh -c echo)).
        type: str
        default: registry.k8s.io/e2e-test-images/busybox:1.36.1-1
      index:
        description: Index pattern the marker must appear in.
        type: str
        default: kubernetes-*
      timeout:
        description: Seconds to wait for the marker.
        type: float
        default: 180
attributes:
  check_mode:
    description: Only reads, so it runs unchanged in check mode.
    support: full
  diff_mode:
    description: Nothing changes, so there is no diff.
    support: none
"""

EXAMPLES = r"""
- name: Container logs and VM serial consoles arrive
  unimon.stack.log_flow:
    url: https://elasticsearch.unimon.svc:9200
    ca_path: /etc/unimon/ca.crt
    username: elastic
    password: "{{ elastic_password }}"
    streams:
      - name: containers
        index: kubernetes-*
        filters: {kubernetes.namespace_name: unimon}
      - name: vm-consoles
        index: virt-launcher-*
        filters: {kubernetes.container_name: guest-console-log}
        max_age: 600
"""

RETURN = r"""
streams:
  description: Per stream, documents in the freshness window, the newest @timestamp and its lag in seconds.
  returned: always
  type: dict
  sample: {"containers": {"count": 1532, "newest": "2026-11-22T10:00:01.000Z", "lag_seconds": 3.2, "fresh": true}}
unmet:
  description: The streams that are missing or stale, one sentence each.
  returned: always
  type: list
  elements: str
attempts:
  description: How many times the streams were read.
  returned: always
  type: int
canary:
  description: The canary's marker, pod, whether the marker arrived and the seconds from pod creation to found.
  returned: when O(canary.enabled=true)
  type: dict
  sample: {"marker": "unimon-canary-3f2a9c1e", "pod": "default/unimon-log-canary-3f2a9c1e", "found": true,
           "latency_seconds": 7.4}
"""

import calendar
import json
import time
import uuid

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.six.moves.urllib.parse import quote

from ansible_collections.unimon.stack.plugins.module_utils.unimon_http import (
    ENDPOINT_ARGS, ENDPOINT_MUTUALLY_EXCLUSIVE, ENDPOINT_REQUIRED_ONE_OF, ENDPOINT_REQUIRED_TOGETHER,
    Endpoint, EndpointError,
)
from ansible_collections.unimon.stack.plugins.module_utils.k8s_auth import K8sAuthError, api_client
from ansible_collections.unimon.stack.plugins.module_utils.unimon_wait import until


def parse_timestamp(value):
    """Seconds since the epoch of an ISO 8601 UTC timestamp as Elasticsearch returns it, or None."""
    if not isinstance(value, str):
        return None
    text = value.strip().replace('Z', '').replace('+00:00', '')
    whole, _sep, fraction = text.partition('.')
    try:
        seconds = calendar.timegm(time.strptime(whole, '%Y-%m-%dT%H:%M:%S'))
    except ValueError:
        return None
    return seconds + (float('0.' + fraction) if fraction.isdigit() else 0.0)


def query(stream, window=None):
    filters = [{'match_phrase': {field: value}} for field, value in sorted(stream['filters'].items())]
    if window is not None:
        filters.append({'range': {'@timestamp': {'gte': 'now-%ds' % window}}})
    return {'size': 1, 'track_total_hits': True, 'sort': [{'@timestamp': {'order': 'desc', 'unmapped_type': 'date'}}],
            '_source': ['@timestamp'], 'query': {'bool': {'filter': filters}}}


def read_stream(endpoint, stream, now):
    path = '/%s/_search?ignore_unavailable=true&allow_no_indices=true' % quote(stream['index'], safe='*,-')
    newest_hit = endpoint.get_json(path, method='POST', data=json.dumps(query(stream)),
                                   content_type='application/json')
    recent = endpoint.get_json(path, method='POST', data=json.dumps(query(stream, stream['max_age'])),
                               content_type='application/json')
    if 'hits' not in newest_hit or 'hits' not in recent:
        raise EndpointError('%s did not answer a _search like Elasticsearch/OpenSearch' % endpoint.describe)
    hits = newest_hit['hits']['hits']
    newest = hits[0]['_source'].get('@timestamp') if hits else None
    ts = parse_timestamp(newest)
    total = recent['hits']['total']
    count = total['value'] if isinstance(total, dict) else int(total)
    lag = round(now - ts, 1) if ts is not None else None
    return {'count': count, 'newest': newest, 'lag_seconds': lag,
            'fresh': count > 0 and lag is not None and lag <= stream['max_age']}


def canary_pod(name, marker, image):
    """A pod that prints the marker once and exits; nothing else, least privilege."""
    return {
        'apiVersion': 'v1', 'kind': 'Pod',
        'metadata': {'name': name, 'labels': {'app.kubernetes.io/name': 'unimon-log-canary',
                                              'app.kubernetes.io/part-of': 'unimon',
                                              'app.kubernetes.io/managed-by': 'unimon.stack'}},
        'spec': {
            'restartPolicy': 'Never',
            'automountServiceAccountToken': False,
            'terminationGracePeriodSeconds': 0,
            'securityContext': {'runAsNonRoot': True, 'runAsUser': 65534, 'seccompProfile': {'type': 'RuntimeDefault'}},
            'containers': [{
                'name': 'canary', 'image': image,
                'command': ['sh', '-c', 'echo %s' % marker],
                'resources': {'requests': {'cpu': '10m', 'memory': '16Mi'}, 'limits': {'memory': '16Mi'}},
                'securityContext': {'allowPrivilegeEscalation': False, 'readOnlyRootFilesystem': True,
                                    'capabilities': {'drop': ['ALL']}},
            }],
        },
    }


def run_canary(module, endpoint, opts):
    """Create the pod, wait for its marker in the store, delete the pod. Returns the canary result."""
    try:
        api = api_client(module.params, login=False)
    except K8sAuthError as err:
        module.fail_json(msg='canary: %s' % err)
    from kubernetes import client as k8s_client  # pylint: disable=import-outside-toplevel
    from kubernetes.client.rest import ApiException  # pylint: disable=import-outside-toplevel
    core = k8s_client.CoreV1Api(api)
    token = uuid.uuid4().hex[:12]
    marker, name = 'unimon-canary-%s' % token, 'unimon-log-canary-%s' % token
    result = {'marker': marker, 'pod': '%s/%s' % (opts['namespace'], name), 'found': False, 'latency_seconds': None}
    stream = {'index': opts['index'], 'filters': {'message': marker}, 'max_age': 3600}
    started = time.time()
    try:
        core.create_namespaced_pod(opts['namespace'], canary_pod(name, marker, opts['image']))
    except ApiException as err:
        module.fail_json(msg='canary: cannot create pod %s: %s %s' % (result['pod'], err.status, err.reason),
                         canary=result)
    except Exception as err:  # urllib3 connection errors have no common base worth naming
        module.fail_json(msg='canary: cannot reach the Kubernetes API: %s' % err, canary=result)
    try:
        def marker_found():
            try:
                info = read_stream(endpoint, stream, time.time())
            except EndpointError as err:
                return False, str(err)
            return info['count'] > 0, None
        found, last_error, _attempts = until(marker_found, opts['timeout'], first_delay=0.5, max_delay=2.0)
    finally:
        try:
            core.delete_namespaced_pod(name, opts['namespace'], grace_period_seconds=0)
        except Exception:  # already gone, or the API went away: nothing more we can do here
            module.warn('canary: could not delete pod %s' % result['pod'])
    result['found'] = bool(found)
    if found:
        result['latency_seconds'] = round(time.time() - started, 1)
    elif last_error:
        result['last_error'] = last_error
    return result


def main():
    argument_spec = dict(ENDPOINT_ARGS)
    argument_spec.update(
        streams=dict(type='list', elements='dict', required=True, options=dict(
            name=dict(type='str', required=True),
            index=dict(type='str', required=True),
            filters=dict(type='dict', default={}),
            max_age=dict(type='int', default=300),
        )),
        timeout=dict(type='float', default=120),
        canary=dict(type='dict', options=dict(
            enabled=dict(type='bool', default=False),
            namespace=dict(type='str', default='default'),
            image=dict(type='str', default='registry.k8s.io/e2e-test-images/busybox:1.36.1-1'),
            index=dict(type='str', default='kubernetes-*'),
            timeout=dict(type='float', default=180),
        )),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           mutually_exclusive=ENDPOINT_MUTUALLY_EXCLUSIVE, required_one_of=ENDPOINT_REQUIRED_ONE_OF,
                           required_together=ENDPOINT_REQUIRED_TOGETHER)
    for s in module.params['streams']:
        if s['max_age'] <= 0:
            module.fail_json(msg="stream '%s': max_age must be > 0" % s['name'])
    try:
        endpoint = Endpoint(module.params)
    except EndpointError as err:
        module.fail_json(msg=str(err), streams={}, unmet=[], attempts=0)

    def check():
        result, unmet = {}, []
        for s in module.params['streams']:
            try:
                info = read_stream(endpoint, s, time.time())
            except EndpointError as err:
                return False, ({}, [str(err)])
            result[s['name']] = info
            if info['newest'] is None:
                unmet.append("stream '%s' (%s %s): no documents" % (s['name'], s['index'], s['filters']))
            elif not info['fresh']:
                unmet.append("stream '%s' (%s %s): newest document %s is %ss old, older than %ss"
                             % (s['name'], s['index'], s['filters'], info['newest'], info['lag_seconds'], s['max_age']))
        return not unmet, (result, unmet)

    done, (streams, unmet), attempts = until(check, module.params['timeout'])
    result = dict(changed=False, streams=streams, unmet=unmet, attempts=attempts)
    if not done:
        module.fail_json(msg='log streams not flowing after %ss: %s' % (module.params['timeout'], '; '.join(unmet)),
                         **result)
    canary = module.params['canary'] or {}
    if canary.get('enabled'):
        if module.check_mode:
            result['canary'] = {'skipped': True, 'reason': 'check mode: the canary would create a pod'}
        else:
            result['canary'] = run_canary(module, endpoint, canary)
            if not result['canary']['found']:
                module.fail_json(msg='canary marker %s from pod %s not searchable in %s after %ss%s' % (
                    result['canary']['marker'], result['canary']['pod'], canary['index'], canary['timeout'],
                    (': ' + result['canary']['last_error']) if result['canary'].get('last_error') else ''), **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
