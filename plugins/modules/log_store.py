#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: unimon.stack developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: log_store
short_description: Put retention policies, index templates, roles, users and data views into Elasticsearch or OpenSearch
version_added: 0.3.0
description:
  - Ensures the log store's own objects through its REST API, and the data views of its UI (Kibana or OpenSearch
    Dashboards) through the UI's API, as the logging role needs them.
  - Each object is read first (GET) and written only when it is missing or one of the fields the module sets differs
    from the live object; fields the store adds by itself are ignored. Policies, templates and roles also carry the
    checksum of their content (C(_meta.checksum), C(metadata.checksum), or the ISM policy's description).
  - Users are written when they do not authenticate with their password, or (native users) when their roles or
    metadata differ. Reserved users such as C(kibana_system) only get their password set.
  - OpenSearch ISM policies are updated with C(if_seq_no) and C(if_primary_term) from the GET (optimistic
    concurrency); a policy someone changed in between is refused by the store and the module fails, saying so.
  - With O(state=absent) the listed policies, templates, roles, users and data views are deleted where they exist.
  - Reads are retried for O(wait_timeout) seconds while the store or the UI is unreachable or answers 502, 503 or 504
    (a store that is still starting). Error messages give the HTTP status and the store's error reason, never a
    credential.
author:
  - unimon.stack developers (@unimon)
options:
  url:
    description: Base URL of the store's REST API, for example C(https://elasticsearch.unimon.svc:9200).
    type: str
    required: true
  ui_url:
    description: Base URL of Kibana or OpenSearch Dashboards; required when O(data_views) is not empty.
    type: str
  flavour:
    description: Which API the store speaks (ILM and Kibana data views, or ISM and Dashboards index patterns).
    type: str
    default: elasticsearch
    choices: [elasticsearch, opensearch]
  username:
    description: Basic auth user for the store and the UI.
    type: str
  password:
    description: Basic auth password.
    type: str
  ca_cert:
    description: CA certificate (PEM text) that signs the store's and the UI's certificates.
    type: str
  ca_path:
    description: CA bundle file instead of O(ca_cert).
    type: path
  validate_certs:
    description: Verify TLS certificates. Turning this off is an explicit opt-in.
    type: bool
    default: true
  request_timeout:
    description: Seconds one HTTP request may take.
    type: float
    default: 30
  wait_timeout:
    description: Seconds to keep retrying the reads while the store or the UI is starting.
    type: float
    default: 120
  state:
    description: C(present) creates or repairs the objects; C(absent) deletes them (only their names are needed).
    type: str
    default: present
    choices: [present, absent]
  policies:
    description: Retention policies (ILM on Elasticsearch, ISM on OpenSearch) that delete an index after some days.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Policy name.
        type: str
        required: true
      retention_days:
        description: Days an index is kept before it is deleted (O(state=present)).
        type: int
      index_patterns:
        description: Index patterns the ISM policy attaches to (C(ism_template)); Elasticsearch ignores them.
        type: list
        elements: str
        default: []
  index_templates:
    description: Composable index templates.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Template name.
        type: str
        required: true
      index_patterns:
        description: Index patterns the template applies to (O(state=present)).
        type: list
        elements: str
        default: []
      priority:
        description: Template priority.
        type: int
        default: 200
      shards:
        description: C(index.number_of_shards).
        type: int
        default: 1
      replicas:
        description: C(index.number_of_replicas).
        type: int
        default: 0
      lifecycle_policy:
        description: ILM policy the template names in C(index.lifecycle.name) (Elasticsearch only; empty for none).
        type: str
        default: ''
      mappings:
        description: The template's C(mappings).
        type: dict
        default: {}
  roles:
    description: Elasticsearch security roles.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Role name.
        type: str
        required: true
      cluster:
        description: Cluster privileges.
        type: list
        elements: str
        default: []
      indices:
        description: Index privileges.
        type: list
        elements: dict
        default: []
        suboptions:
          names:
            description: Index patterns.
            type: list
            elements: str
            required: true
          privileges:
            description: Privileges on them.
            type: list
            elements: str
            required: true
  users:
    description: Elasticsearch native users (created or given their password), or reserved users whose password is set.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: User name.
        type: str
        required: true
      password:
        description: The user's password (O(state=present)).
        type: str
      roles:
        description: Roles of a native user.
        type: list
        elements: str
        default: []
      reserved:
        description: A built-in user (for example C(kibana_system)) whose password only is set; never deleted.
        type: bool
        default: false
  data_views:
    description: Kibana data views (Elasticsearch) or OpenSearch Dashboards index patterns, with fixed ids.
    type: list
    elements: dict
    default: []
    suboptions:
      id:
        description: The view's id.
        type: str
        required: true
      title:
        description: Index pattern it covers, for example C(kubernetes-*) (O(state=present)).
        type: str
      name:
        description: Display name (Kibana only); defaults to O(data_views[].title).
        type: str
      time_field:
        description: Time field.
        type: str
        default: '@timestamp'
attributes:
  check_mode:
    description: Reads, then reports what it would write (RV(actions), RV(objects)) without writing.
    support: full
  diff_mode:
    description: Before and after of the fields that differ, per object (passwords never shown).
    support: full
notes:
  - The Elasticsearch side is tested against a real Elasticsearch 8.19 with security and TLS
    (tests/unit/test_log_store_es.py). Kibana, OpenSearch and OpenSearch Dashboards do not run in the test
    environment; their requests are checked against a recording mock (tests/unit/test_logging_api.py).
"""

EXAMPLES = r"""
- name: Retention policy and index template
  unimon.stack.log_store:
    url: https://elasticsearch.unimon.svc:9200
    ca_cert: "{{ lookup('ansible.builtin.file', 'ca.crt') }}"
    username: elastic
    password: "{{ elastic_password }}"
    policies:
      - name: unimon-logs
        retention_days: 14
    index_templates:
      - name: unimon-kubernetes
        index_patterns: [kubernetes-*]
        lifecycle_policy: unimon-logs
        mappings:
          properties:
            "@timestamp": {type: date}
            message: {type: text}

- name: A data view in OpenSearch Dashboards
  unimon.stack.log_store:
    url: https://opensearch.unimon.svc:9200
    ui_url: https://opensearch-dashboards.unimon.svc:5601
    flavour: opensearch
    username: admin
    password: "{{ admin_password }}"
    data_views:
      - id: unimon-kubernetes
        title: kubernetes-*

- name: Remove them again
  unimon.stack.log_store:
    url: https://elasticsearch.unimon.svc:9200
    username: elastic
    password: "{{ elastic_password }}"
    state: absent
    policies: [{name: unimon-logs}]
    index_templates: [{name: unimon-kubernetes}]
"""

RETURN = r"""
actions:
  description: The writes sent, or in check mode those that would be sent (C(would PUT /_index_template/unimon-x)).
  returned: always
  type: list
  elements: str
  sample: ["PUT /_ilm/policy/unimon-logs", "POST /api/data_views/data_view"]
objects:
  description: Per object, its kind, name and what happened (created, updated, unchanged, deleted, absent).
  returned: always
  type: list
  elements: dict
  sample: [{"kind": "index_template", "name": "unimon-kubernetes", "result": "unchanged"}]
elapsed:
  description: Seconds the module took, retries included.
  returned: always
  type: float
  sample: 0.42
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.unimon.stack.plugins.module_utils import log_store_objects as objs
from ansible_collections.unimon.stack.plugins.module_utils.unimon_http import (
    TRANSIENT_STATUSES, Endpoint, EndpointError,
)
from ansible_collections.unimon.stack.plugins.module_utils.unimon_wait import until

HIDDEN = '(hidden)'


class Store(object):
    """The store's and the UI's endpoints, with reads retried while they start."""

    def __init__(self, module):
        self.module = module
        params = module.params
        ca_path = params['ca_path']
        if params['ca_cert']:
            ca_path = os.path.join(module.tmpdir, 'log-store-ca.crt')
            with open(ca_path, 'w') as handle:
                handle.write(params['ca_cert'])
        common = dict(ca_path=ca_path, validate_certs=params['validate_certs'], username=params['username'],
                      password=params['password'], request_timeout=params['request_timeout'])
        self.store = Endpoint(dict(common, url=params['url']))
        self.ui = Endpoint(dict(common, url=params['ui_url'])) if params['ui_url'] else None

    def read(self, endpoint, path, expect=(200, 404), headers=None):
        """GET, retried while the endpoint is unreachable or answers a transient status."""
        def attempt():
            try:
                return True, endpoint.call('GET', path, expect=expect, headers=headers)
            except EndpointError as err:
                if err.status is None or err.status in TRANSIENT_STATUSES:
                    return False, err
                raise

        done, result, attempts = until(attempt, self.module.params['wait_timeout'], first_delay=1.0, max_delay=6.0)
        if not done:
            raise EndpointError('%s (still failing after %d attempts in %ss)'
                                % (result, attempts, self.module.params['wait_timeout']), status=result.status)
        return result


class Run(object):
    """Collects what was (or would be) written, the per-object results and the diffs."""

    def __init__(self, module):
        self.module = module
        self.actions = []
        self.objects = []
        self.diffs = []

    def write(self, endpoint, method, path, body, kind, name, result, before=None, after=None, headers=None):
        if self.module.check_mode:
            self.actions.append('would %s %s' % (method, path))
        else:
            endpoint.call(method, path, body=body, expect=(200, 201), headers=headers)
            self.actions.append('%s %s' % (method, path))
        self.objects.append({'kind': kind, 'name': name, 'result': result})
        if self.module._diff:
            self.diffs.append({'before_header': '%s %s' % (kind, name), 'after_header': '%s %s' % (kind, name),
                               'before': before if before is not None else {},
                               'after': after if after is not None else {}})

    def same(self, kind, name):
        self.objects.append({'kind': kind, 'name': name, 'result': 'unchanged' if self.module.params['state'] == 'present'
                             else 'absent'})


def ensure_checksummed(store, run, kind, name, path, body):
    """Policies, templates and roles: PUT when missing or when a field we set differs."""
    flavour = store.module.params['flavour']
    status, answer = store.read(store.store, path)
    live = objs.live_object(kind, flavour, name, answer) if status == 200 else None
    if live is None:
        run.write(store.store, 'PUT', path, body, kind, name, 'created', after=body)
        return
    diff = objs.differences(body, live)
    if not diff:
        run.same(kind, name)
        return
    run.write(store.store, 'PUT', path + objs.concurrency_query(flavour, kind, answer), body, kind, name, 'updated',
              before=objs.project(body, live), after=body)


def ensure_user(store, run, user):
    name = user['name']
    method, path, body = objs.user_request(name, user['password'], user['roles'], user['reserved'])
    probe = Endpoint(dict(store.store.params, username=name, password=user['password']))
    probe.describe = store.store.describe
    status = store.read(probe, '/_security/_authenticate', expect=(200, 401))[0]
    wrong = [] if status == 200 else ['password']
    live = {}
    if not user['reserved']:
        found, answer = store.read(store.store, '/_security/user/' + name)
        live = objs.live_object('user', 'elasticsearch', name, answer) if found == 200 else None
        wanted = {'roles': body['roles'], 'metadata': body['metadata']}
        wrong += ['roles/metadata'] if live is None else objs.differences(wanted, live)
    if not wrong:
        run.same('user', name)
        return
    shown = dict(body, password=HIDDEN)
    before = {} if live is None else dict(objs.project(dict(shown, password=''), live),
                                          password='(does not authenticate)' if 'password' in wrong else HIDDEN)
    run.write(store.store, method, path, body, 'user', name, 'created' if live is None else 'updated',
              before=before, after=shown)


def ensure_data_view(store, run, view):
    flavour = store.module.params['flavour']
    headers = objs.xsrf_header(flavour)
    path = objs.data_view_path(flavour, view['id'])
    status, answer = store.read(store.ui, path, headers=headers)
    live = objs.live_object('data_view', flavour, view['id'], answer) if status == 200 else None
    wanted = objs.data_view_wanted(flavour, view['title'], view['time_field'])
    if live is not None and not objs.differences(wanted, live):
        run.same('data_view', view['id'])
        return
    method, path, body = objs.data_view_request(flavour, view['id'], view['title'], view['name'] or view['title'],
                                                view['time_field'], exists=live is not None)
    run.write(store.ui, method, path, body, 'data_view', view['id'], 'created' if live is None else 'updated',
              before=objs.project(wanted, live) if live is not None else None, after=wanted, headers=headers)


def remove(store, run, endpoint, kind, name, path, headers=None):
    status = store.read(endpoint, path, headers=headers)[0]
    if status == 404:
        run.same(kind, name)
        return
    run.write(endpoint, 'DELETE', path, None, kind, name, 'deleted', before={'name': name}, after={}, headers=headers)


def need(module, items, what, fields):
    """Fields a state=present object must have; the message names the option."""
    for index, item in enumerate(items):
        for field in fields:
            if item.get(field) is None or item.get(field) == []:
                module.fail_json(msg='%s[%d] (%s): %s is required with state=present'
                                 % (what, index, item.get('name') or item.get('id'), field))


def present(module, store, run):
    flavour = module.params['flavour']
    need(module, module.params['policies'], 'policies', ['retention_days'])
    need(module, module.params['index_templates'], 'index_templates', ['index_patterns'])
    need(module, module.params['users'], 'users', ['password'])
    need(module, module.params['data_views'], 'data_views', ['title'])
    for policy in module.params['policies']:
        if policy['retention_days'] <= 0:
            module.fail_json(msg='policies (%s): retention_days must be > 0' % policy['name'])
        if flavour == 'opensearch' and not policy['index_patterns']:
            module.fail_json(msg='policies (%s): index_patterns is required on OpenSearch (ism_template)' % policy['name'])
        body = objs.policy_body(flavour, policy['retention_days'], policy['index_patterns'])
        ensure_checksummed(store, run, 'policy', policy['name'], objs.policy_path(flavour, policy['name']), body)
    for tpl in module.params['index_templates']:
        body = objs.template_body(flavour, tpl['index_patterns'], tpl['mappings'], tpl['replicas'], tpl['shards'],
                                  tpl['priority'], tpl['lifecycle_policy'])
        ensure_checksummed(store, run, 'index_template', tpl['name'], objs.template_path(tpl['name']), body)
    for role in module.params['roles']:
        ensure_checksummed(store, run, 'role', role['name'], objs.role_path(role['name']),
                           objs.role_body(role['cluster'], role['indices']))
    for user in module.params['users']:
        ensure_user(store, run, user)
    for view in module.params['data_views']:
        ensure_data_view(store, run, view)


def absent(module, store, run):
    flavour = module.params['flavour']
    for view in module.params['data_views']:
        remove(store, run, store.ui, 'data_view', view['id'], objs.data_view_path(flavour, view['id']),
               headers=objs.xsrf_header(flavour))
    for tpl in module.params['index_templates']:
        remove(store, run, store.store, 'index_template', tpl['name'], objs.template_path(tpl['name']))
    for policy in module.params['policies']:
        remove(store, run, store.store, 'policy', policy['name'], objs.policy_path(flavour, policy['name']))
    for user in module.params['users']:
        if not user['reserved']:
            remove(store, run, store.store, 'user', user['name'], '/_security/user/' + user['name'])
    for role in module.params['roles']:
        remove(store, run, store.store, 'role', role['name'], objs.role_path(role['name']))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            url=dict(type='str', required=True),
            ui_url=dict(type='str'),
            flavour=dict(type='str', default='elasticsearch', choices=list(objs.FLAVOURS)),
            username=dict(type='str'),
            password=dict(type='str', no_log=True),
            ca_cert=dict(type='str'),
            ca_path=dict(type='path'),
            validate_certs=dict(type='bool', default=True),
            request_timeout=dict(type='float', default=30),
            wait_timeout=dict(type='float', default=120),
            state=dict(type='str', default='present', choices=['present', 'absent']),
            policies=dict(type='list', elements='dict', default=[], options=dict(
                name=dict(type='str', required=True),
                retention_days=dict(type='int'),
                index_patterns=dict(type='list', elements='str', default=[]),
            )),
            index_templates=dict(type='list', elements='dict', default=[], options=dict(
                name=dict(type='str', required=True),
                index_patterns=dict(type='list', elements='str', default=[]),
                priority=dict(type='int', default=200),
                shards=dict(type='int', default=1),
                replicas=dict(type='int', default=0),
                lifecycle_policy=dict(type='str', default=''),
                mappings=dict(type='dict', default={}),
            )),
            roles=dict(type='list', elements='dict', default=[], options=dict(
                name=dict(type='str', required=True),
                cluster=dict(type='list', elements='str', default=[]),
                indices=dict(type='list', elements='dict', default=[], options=dict(
                    names=dict(type='list', elements='str', required=True),
                    privileges=dict(type='list', elements='str', required=True),
                )),
            )),
            users=dict(type='list', elements='dict', default=[], options=dict(
                name=dict(type='str', required=True),
                password=dict(type='str', no_log=True),
                roles=dict(type='list', elements='str', default=[]),
                reserved=dict(type='bool', default=False),
            )),
            data_views=dict(type='list', elements='dict', default=[], options=dict(
                id=dict(type='str', required=True),
                title=dict(type='str'),
                name=dict(type='str'),
                time_field=dict(type='str', default='@timestamp'),
            )),
        ),
        mutually_exclusive=[('ca_cert', 'ca_path')],
        required_together=[('username', 'password')],
        supports_check_mode=True,
    )
    params = module.params
    for option in ('url', 'ui_url'):
        if params[option] and not params[option].startswith(('http://', 'https://')):
            module.fail_json(msg='%s must be an http:// or https:// URL' % option)
    if params['data_views'] and not params['ui_url']:
        module.fail_json(msg='ui_url is required when data_views is not empty')
    run = Run(module)
    started = time.time()
    try:
        store = Store(module)
        if params['state'] == 'present':
            present(module, store, run)
        else:
            absent(module, store, run)
    except EndpointError as err:
        module.fail_json(msg=str(err), changed=bool(run.actions) and not module.check_mode, actions=run.actions, objects=run.objects)
    result = dict(changed=bool(run.actions), actions=run.actions, objects=run.objects,
                  elapsed=round(time.time() - started, 2))
    if module._diff:
        result['diff'] = run.diffs
    module.exit_json(**result)


if __name__ == '__main__':
    main()
