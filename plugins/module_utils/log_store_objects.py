# -*- coding: utf-8 -*-
# Copyright: unimon.stack developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the log_store module sends to Elasticsearch / OpenSearch and to Kibana / OpenSearch Dashboards,
and how it decides that a live object differs: pure functions, no I/O (tests/unit/test_log_store_objects.py).

The bodies are those the logging role's uri tasks used to send, byte for byte once parsed: the same
checksum (sha256 of the object's canonical JSON, first 16 hex digits, prefixed with unimon-) is embedded in
each object, so objects the tasks put are recognised as unchanged."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import hashlib
import json

MANAGED_BY = 'unimon.stack'
FLAVOURS = ('elasticsearch', 'opensearch')


def checksum(obj):
    """unimon-<16 hex digits>: what the role's `to_json(sort_keys=true) | hash('sha256')` gave."""
    return 'unimon-' + hashlib.sha256(json.dumps(obj, sort_keys=True).encode('utf-8')).hexdigest()[:16]


def _with(base, extra):
    """A shallow copy of base with extra's keys added (the role's `combine`, one level deep)."""
    out = dict(base)
    out.update(extra)
    return out


# ------------------------------------------------------------------------------------------ store objects
def policy_path(flavour, name):
    if flavour == 'elasticsearch':
        return '/_ilm/policy/' + name
    return '/_plugins/_ism/policies/' + name


def policy_body(flavour, retention_days, index_patterns):
    """ILM (Elasticsearch) or ISM (OpenSearch) policy: keep an index retention_days days, then delete it.

    index_patterns: only OpenSearch uses them (ism_template attaches the policy to new indices; on
    Elasticsearch the index templates name the policy)."""
    age = '%dd' % int(retention_days)
    if flavour == 'elasticsearch':
        policy = {'phases': {'hot': {'min_age': '0ms', 'actions': {}},
                             'delete': {'min_age': age, 'actions': {'delete': {}}}}}
        return {'policy': _with(policy, {'_meta': {'managed_by': MANAGED_BY, 'checksum': checksum(policy)}})}
    policy = {'default_state': 'hot',
              'states': [{'name': 'hot', 'actions': [],
                          'transitions': [{'state_name': 'delete', 'conditions': {'min_index_age': age}}]},
                         {'name': 'delete', 'actions': [{'delete': {}}], 'transitions': []}],
              'ism_template': [{'index_patterns': list(index_patterns), 'priority': 100}]}
    # ISM has no _meta: the checksum goes into the description.
    description = 'unimon.stack: delete after %d days (%s)' % (int(retention_days), checksum(policy))
    return {'policy': _with(policy, {'description': description})}


def template_path(name):
    return '/_index_template/' + name


def template_body(flavour, index_patterns, mappings, replicas, shards=1, priority=200, lifecycle_policy=''):
    """A composable index template; on Elasticsearch it names the ILM policy (lifecycle_policy, if any)."""
    settings = {'index': {'number_of_shards': int(shards), 'number_of_replicas': int(replicas)}}
    if flavour == 'elasticsearch' and lifecycle_policy:
        settings['index']['lifecycle'] = {'name': lifecycle_policy}
    spec = {'index_patterns': list(index_patterns), 'priority': int(priority),
            'template': {'settings': settings, 'mappings': copy.deepcopy(mappings or {})}}
    return _with(spec, {'_meta': {'managed_by': MANAGED_BY, 'checksum': checksum(spec)}})


def role_path(name):
    return '/_security/role/' + name


def role_body(cluster, indices):
    """An Elasticsearch security role: cluster privileges, and per index pattern list its privileges."""
    role = {'cluster': list(cluster),
            'indices': [{'names': list(i['names']), 'privileges': list(i['privileges'])} for i in indices]}
    return _with(role, {'metadata': {'managed_by': MANAGED_BY, 'checksum': checksum(role)}})


def user_request(name, password, roles, reserved=False):
    """(method, path, body) that creates a native user or, for a reserved one (kibana_system), sets its password."""
    if reserved:
        return 'POST', '/_security/user/%s/_password' % name, {'password': password}
    return 'PUT', '/_security/user/' + name, {'password': password, 'roles': list(roles),
                                              'metadata': {'managed_by': MANAGED_BY}}


# -------------------------------------------------------------------------------------------- UI objects
def data_view_path(flavour, view_id):
    if flavour == 'elasticsearch':
        return '/api/data_views/data_view/' + view_id
    return '/api/saved_objects/index-pattern/' + view_id


def data_view_request(flavour, view_id, title, name, time_field, exists):
    """(method, path, body) that creates (exists=False) or updates a Kibana data view / Dashboards index pattern."""
    if flavour == 'elasticsearch':
        view = {'title': title, 'name': name, 'timeFieldName': time_field}
        if not exists:
            # Kibana takes a new view's id in the body, an existing one's in the path.
            return 'POST', '/api/data_views/data_view', {'data_view': _with(view, {'id': view_id})}
        return 'POST', data_view_path(flavour, view_id), {'data_view': view}
    return ('PUT' if exists else 'POST'), data_view_path(flavour, view_id), {
        'attributes': {'title': title, 'timeFieldName': time_field}}


def data_view_wanted(flavour, title, time_field):
    """The fields compared on a data view (its display name is not: the tasks never compared it)."""
    return {'title': title, 'timeFieldName': time_field}


def xsrf_header(flavour):
    """Kibana refuses API writes without kbn-xsrf; OpenSearch Dashboards wants osd-xsrf."""
    return {'kbn-xsrf': 'true'} if flavour == 'elasticsearch' else {'osd-xsrf': 'true'}


# ------------------------------------------------------------------------------- reading what a GET says
def live_object(kind, flavour, name, answer):
    """The object inside a GET's answer, in the shape of the body we PUT (None when it is not there)."""
    if not isinstance(answer, dict):
        return None
    if kind == 'index_template':
        found = [t for t in answer.get('index_templates') or [] if t.get('name') == name]
        return found[0].get('index_template') if found else None
    if kind == 'policy':
        if flavour == 'elasticsearch':
            entry = answer.get(name)
            return {'policy': entry.get('policy')} if isinstance(entry, dict) else None
        return {'policy': answer.get('policy')} if 'policy' in answer else None
    if kind in ('role', 'user'):
        return answer.get(name)
    if kind == 'data_view':
        view = answer.get('data_view') if flavour == 'elasticsearch' else answer.get('attributes')
        return view if isinstance(view, dict) else None
    raise ValueError('unknown kind %s' % kind)


def concurrency_query(flavour, kind, answer):
    """ISM refuses an update of an existing policy without if_seq_no/if_primary_term (optimistic concurrency)."""
    if flavour == 'opensearch' and kind == 'policy' and isinstance(answer, dict) and '_seq_no' in answer:
        return '?if_seq_no=%s&if_primary_term=%s' % (answer['_seq_no'], answer['_primary_term'])
    return ''


# --------------------------------------------------------------------------------------------- comparing
def _scalar_equal(want, have):
    if want == have and type(want) is type(have):
        return True
    if isinstance(want, bool) or isinstance(have, bool):
        # Settings come back as strings: true -> "true".
        return str(want).lower() == str(have).lower()
    if isinstance(want, (int, float)) and isinstance(have, (int, float)):
        return want == have
    if isinstance(want, (int, float)) or isinstance(have, (int, float)):
        # Elasticsearch returns index settings as strings: 1 -> "1".
        return str(want) == str(have)
    return False


def differences(want, have, path=''):
    """The paths (a.b[0].c) where `have` does not hold what `want` sets. Keys the store adds are ignored
    (ILM's modified_date, a role's transient_metadata, ISM's retry defaults); lists must match item by item."""
    if isinstance(want, dict):
        if not isinstance(have, dict):
            return [path or '.']
        out = []
        for key in sorted(want):
            sub = '%s.%s' % (path, key) if path else key
            if key not in have:
                out.append(sub)
            else:
                out.extend(differences(want[key], have[key], sub))
        return out
    if isinstance(want, list):
        if not isinstance(have, list) or len(want) != len(have):
            return [path or '.']
        out = []
        for index, (item, live) in enumerate(zip(want, have)):
            out.extend(differences(item, live, '%s[%d]' % (path, index)))
        return out
    return [] if _scalar_equal(want, have) else [path or '.']


def project(want, have):
    """What `have` holds at the places `want` sets (for a diff's before: only the fields we manage)."""
    if isinstance(want, dict) and isinstance(have, dict):
        return dict((key, project(want[key], have[key])) for key in want if key in have)
    if isinstance(want, list) and isinstance(have, list):
        return [project(w, h) for w, h in zip(want, have)] + list(have[len(want):])
    return have
