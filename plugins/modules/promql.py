#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: unimon.stack developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: promql
short_description: Run a PromQL instant query and assert on its result
version_added: 0.1.0
description:
  - For checks users add themselves, such as "our recording rules produce series" or "no critical alert
    fires". Waits, with backoff, until the condition holds or the timeout passes.
  - Reaches Prometheus directly or through the Kubernetes API server's service proxy, like
    M(unimon.stack.scrape_targets). Read-only; runs in check mode.
author:
  - unimon.stack developers (@unimon)
extends_documentation_fragment:
  - unimon.stack.endpoint
  - unimon.stack.k8s_auth
options:
  query:
    description: PromQL expression, evaluated at the current time.
    type: str
    required: true
  expect:
    description:
      - C(series) passes when the result has at least O(min_series) series; C(empty) when it has none.
    type: str
    default: series
    choices: [series, empty]
  min_series:
    description: With O(expect=series), the fewest series that pass.
    type: int
    default: 1
  min_value:
    description: Every series' value must be at least this.
    type: float
  max_value:
    description: Every series' value must be at most this.
    type: float
  timeout:
    description: Seconds to wait for the condition.
    type: float
    default: 60
attributes:
  check_mode:
    description: Only reads, so it runs unchanged in check mode.
    support: full
  diff_mode:
    description: Nothing changes, so there is no diff.
    support: none
"""

EXAMPLES = r"""
- name: Our recording rules produce series
  unimon.stack.promql:
    namespace: unimon
    service: prometheus-unimon
    port: web
    query: namespace_pod_container:container_memory_working_set_bytes

- name: No critical alert fires
  unimon.stack.promql:
    url: http://127.0.0.1:9090
    query: ALERTS{alertstate="firing", severity="critical"}
    expect: empty
"""

RETURN = r"""
result:
  description: The series of the last evaluation, each C({metric, value}).
  returned: always
  type: list
  elements: dict
unmet:
  description: Why the condition did not hold, one sentence each.
  returned: always
  type: list
  elements: str
attempts:
  description: How many times the query ran.
  returned: always
  type: int
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.six.moves.urllib.parse import urlencode

from ansible_collections.unimon.stack.plugins.module_utils.unimon_http import (
    ENDPOINT_ARGS, ENDPOINT_MUTUALLY_EXCLUSIVE, ENDPOINT_REQUIRED_ONE_OF, ENDPOINT_REQUIRED_TOGETHER,
    Endpoint, EndpointError,
)
from ansible_collections.unimon.stack.plugins.module_utils.unimon_wait import until


def evaluate(series, params):
    """Sentences saying why the result does not meet the condition (empty: it does)."""
    unmet = []
    if params['expect'] == 'empty' and series:
        unmet.append('expected no series, got %d: %s' % (len(series), ', '.join(
            '%s=%s' % (s['metric'], s['value']) for s in series[:5])))
    if params['expect'] == 'series' and len(series) < params['min_series']:
        unmet.append('expected at least %d series, got %d' % (params['min_series'], len(series)))
    for s in series:
        if params['min_value'] is not None and s['value'] < params['min_value']:
            unmet.append('%s = %s is below %s' % (s['metric'], s['value'], params['min_value']))
        if params['max_value'] is not None and s['value'] > params['max_value']:
            unmet.append('%s = %s is above %s' % (s['metric'], s['value'], params['max_value']))
    return unmet


def main():
    argument_spec = dict(ENDPOINT_ARGS)
    argument_spec.update(
        query=dict(type='str', required=True),
        expect=dict(type='str', default='series', choices=['series', 'empty']),
        min_series=dict(type='int', default=1),
        min_value=dict(type='float'),
        max_value=dict(type='float'),
        timeout=dict(type='float', default=60),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           mutually_exclusive=ENDPOINT_MUTUALLY_EXCLUSIVE, required_one_of=ENDPOINT_REQUIRED_ONE_OF,
                           required_together=ENDPOINT_REQUIRED_TOGETHER)
    try:
        endpoint = Endpoint(module.params)
    except EndpointError as err:
        module.fail_json(msg=str(err), result=[], unmet=[], attempts=0)
    path = '/api/v1/query?' + urlencode({'query': module.params['query']})

    def check():
        try:
            data = endpoint.get_json(path)
        except EndpointError as err:
            return False, ([], [str(err)])
        if not isinstance(data, dict) or data.get('status') != 'success' or 'result' not in data.get('data', {}):
            return False, ([], ['%s did not answer like Prometheus: %s' % (endpoint.describe, str(data)[:200])])
        raw = data['data']['result']
        if data['data'].get('resultType') == 'scalar':
            raw = [{'metric': {}, 'value': raw}]
        series = [{'metric': r.get('metric', {}), 'value': float(r['value'][1])} for r in raw]
        unmet = evaluate(series, module.params)
        return not unmet, (series, unmet)

    done, (series, unmet), attempts = until(check, module.params['timeout'])
    result = dict(changed=False, result=series, unmet=unmet, attempts=attempts)
    if not done:
        module.fail_json(msg='query %s: %s' % (module.params['query'], '; '.join(unmet[:10])), **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
