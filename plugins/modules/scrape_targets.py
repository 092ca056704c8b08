#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: unimon.stack developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: scrape_targets
short_description: Prove that Prometheus scrapes every expected target
version_added: 0.1.0
description:
  - Reads the active targets of a Prometheus server and waits, with backoff, until every expectation
    holds or the timeout passes.
  - Reaches Prometheus directly (O(url)) or through the Kubernetes API server's service proxy
    (O(namespace), O(service), O(port)), with credentials from a kubeconfig, a context, the
    C(K8S_AUTH_*) environment variables AWX credentials set, or the in-cluster ServiceAccount.
  - Read-only; runs in check mode.
author:
  - unimon.stack developers (@unimon)
extends_documentation_fragment:
  - unimon.stack.endpoint
  - unimon.stack.k8s_auth
options:
  expect:
    description:
      - What must hold, one entry per scrape job (the C(job) label).
      - With O(expect[].min_up) at least that many targets of the job must be up; with
        O(expect[].all_up) every discovered target of the job must be up (and at least one must exist).
    type: list
    elements: dict
    required: true
    suboptions:
      job:
        description: Value of the C(job) label.
        type: str
        required: true
      min_up:
        description: Minimum number of targets up.
        type: int
      all_up:
        description: Every discovered target must be up.
        type: bool
        default: false
  timeout:
    description: Seconds to wait for the expectations to hold.
    type: float
    default: 120
attributes:
  check_mode:
    description: Only reads, so it runs unchanged in check mode.
    support: full
  diff_mode:
    description: Nothing changes, so there is no diff.
    support: none
requirements:
  - kubernetes (Python library), only for service proxy access
"""

EXAMPLES = r"""
- name: Every node-exporter up, at least one kube-state-metrics target
  unimon.stack.scrape_targets:
    namespace: unimon
    service: prometheus-unimon
    port: web
    expect:
      - job: node-exporter
        all_up: true
      - job: kube-state-metrics
        min_up: 1
    timeout: 180

- name: Directly, with a token
  unimon.stack.scrape_targets:
    url: https://prometheus.example.com
    ca_path: /etc/pki/ca.pem
    bearer_token: "{{ prometheus_token }}"
    expect:
      - job: apiserver
        min_up: 1
"""

RETURN = r"""
jobs:
  description: Per job, how many targets are up, down and unknown, and the mean last scrape duration.
  returned: always
  type: dict
  sample: {"node-exporter": {"up": 2, "down": 0, "unknown": 0, "scrape_duration_avg": 0.012}}
failing:
  description: Every target of an expected job that is not up, with Prometheus' lastError.
  returned: always
  type: list
  elements: dict
  sample: [{"job": "kubelet", "instance": "10.0.0.4:10250", "health": "down", "last_error": "connection refused"}]
unmet:
  description: The expectations that did not hold, one sentence each.
  returned: always
  type: list
  elements: str
attempts:
  description: How many times the targets were read.
  returned: always
  type: int
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.unimon.stack.plugins.module_utils.unimon_http import (
    ENDPOINT_ARGS, ENDPOINT_MUTUALLY_EXCLUSIVE, ENDPOINT_REQUIRED_ONE_OF, ENDPOINT_REQUIRED_TOGETHER,
    Endpoint, EndpointError,
)
from ansible_collections.unimon.stack.plugins.module_utils.unimon_wait import until


def summarize(targets, expect):
    """Pure evaluation of one read of /api/v1/targets against the expectations."""
    jobs = {}
    durations = {}
    for t in targets:
        job = t.get('labels', {}).get('job') or t.get('scrapePool', '?')
        counts = jobs.setdefault(job, {'up': 0, 'down': 0, 'unknown': 0})
        health = t.get('health', 'unknown')
        counts[health if health in counts else 'unknown'] += 1
        durations.setdefault(job, []).append(float(t.get('lastScrapeDuration') or 0))
    for job, values in durations.items():
        jobs[job]['scrape_duration_avg'] = round(sum(values) / len(values), 4)
    unmet = []
    for e in expect:
        counts = jobs.get(e['job'])
        if not counts:
            unmet.append("job '%s' has no targets" % e['job'])
            continue
        total = counts['up'] + counts['down'] + counts['unknown']
        if e.get('all_up') and counts['up'] != total:
            unmet.append("job '%s': %d of %d targets up" % (e['job'], counts['up'], total))
        if e.get('min_up') is not None and counts['up'] < e['min_up']:
            unmet.append("job '%s': %d up, expected at least %d" % (e['job'], counts['up'], e['min_up']))
    wanted = set(e['job'] for e in expect)
    failing = [{'job': t['labels'].get('job'), 'instance': t['labels'].get('instance'), 'scrape_url': t.get('scrapeUrl'),
                'health': t.get('health'), 'last_error': t.get('lastError', '')}
               for t in targets if t.get('labels', {}).get('job') in wanted and t.get('health') != 'up']
    return jobs, failing, unmet


def main():
    argument_spec = dict(ENDPOINT_ARGS)
    argument_spec.update(
        expect=dict(type='list', elements='dict', required=True, options=dict(
            job=dict(type='str', required=True),
            min_up=dict(type='int'),
            all_up=dict(type='bool', default=False),
        )),
        timeout=dict(type='float', default=120),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           mutually_exclusive=ENDPOINT_MUTUALLY_EXCLUSIVE, required_one_of=ENDPOINT_REQUIRED_ONE_OF,
                           required_together=ENDPOINT_REQUIRED_TOGETHER)
    for e in module.params['expect']:
        if e.get('min_up') is None and not e.get('all_up'):
            module.fail_json(msg="expect entry for job '%s' needs min_up or all_up" % e['job'])
        if e.get('min_up') is not None and e['min_up'] < 0:
            module.fail_json(msg="expect entry for job '%s': min_up must be >= 0" % e['job'])

    try:
        endpoint = Endpoint(module.params)
    except EndpointError as err:
        module.fail_json(msg=str(err), jobs={}, failing=[], unmet=[], attempts=0)

    state = {'error': None}

    def check():
        try:
            data = endpoint.get_json('/api/v1/targets?state=active')
        except EndpointError as err:
            state['error'] = str(err)
            return False, ({}, [], [str(err)])
        if not isinstance(data, dict) or data.get('status') != 'success' or 'activeTargets' not in data.get('data', {}):
            state['error'] = '%s did not answer like Prometheus (no data.activeTargets)' % endpoint.describe
            return False, ({}, [], [state['error']])
        state['error'] = None
        jobs, failing, unmet = summarize(data['data']['activeTargets'], module.params['expect'])
        return not unmet, (jobs, failing, unmet)

    done, (jobs, failing, unmet), attempts = until(check, module.params['timeout'])
    result = dict(changed=False, jobs=jobs, failing=failing, unmet=unmet, attempts=attempts)
    if not done:
        details = '; '.join('%s %s: %s' % (f['job'], f['instance'], f['last_error'] or f['health']) for f in failing[:10])
        module.fail_json(msg='scrape targets not as expected after %ss: %s%s' % (
            module.params['timeout'], '; '.join(unmet), (' | failing: ' + details) if details else ''), **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
