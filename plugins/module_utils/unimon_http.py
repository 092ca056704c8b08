# -*- coding: utf-8 -*-
# Copyright: unimon.stack developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""HTTP access to Prometheus / Elasticsearch, either directly or through the Kubernetes API server's
service proxy, with errors turned into one-line messages (never a traceback)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json
import ssl

from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
from ansible.module_utils.six.moves.urllib.parse import quote
from ansible.module_utils.urls import open_url
from ansible_collections.unimon.stack.plugins.module_utils.k8s_auth import K8sAuthError, api_client, k8s_auth_spec

try:
    from kubernetes.client.exceptions import ApiException
except ImportError:  # pragma: no cover - api_client() says what is missing
    class ApiException(Exception):
        status = reason = body = None


class EndpointError(Exception):
    """A request failed; the message says what and where, fit for a task's msg."""

    def __init__(self, msg, status=None):
        super(EndpointError, self).__init__(msg)
        self.status = status  # the HTTP status, None when the service was not reached


# Answers of a service that is starting or restarting: worth retrying.
TRANSIENT_STATUSES = (502, 503, 504)


def error_reason(raw):
    """The reason an Elasticsearch / OpenSearch / Kibana error body gives, or its first 300 characters."""
    text = raw.decode('utf-8', 'replace') if isinstance(raw, bytes) else (raw or '')
    try:
        doc = json.loads(text)
    except ValueError:
        return text[:300].strip()
    if isinstance(doc, dict):
        err = doc.get('error')
        if isinstance(err, dict):
            causes = err.get('root_cause') or [err]
            first = causes[0] if isinstance(causes[0], dict) else err
            return '%s: %s' % (first.get('type', 'error'), first.get('reason', err.get('reason', '')))
        if isinstance(err, str) and doc.get('message'):
            return '%s: %s' % (err, doc['message'])
        if doc.get('message'):
            return str(doc['message'])
        if isinstance(err, str):
            return err
    return text[:300].strip()


# Options every module that talks to Prometheus or Elasticsearch accepts.
ENDPOINT_ARGS = dict(
    url=dict(type='str'),
    namespace=dict(type='str'),
    service=dict(type='str'),
    port=dict(type='str'),
    scheme=dict(type='str', default='http', choices=['http', 'https']),
    ca_path=dict(type='path'),
    validate_certs=dict(type='bool', default=True),
    bearer_token=dict(type='str', no_log=True),
    username=dict(type='str'),
    password=dict(type='str', no_log=True),
    request_timeout=dict(type='float', default=10.0),
)
# The API server connection for service proxy access (username, password and validate_certs above are
# the service's; the API server's come from K8S_AUTH_USERNAME, _PASSWORD, _VERIFY_SSL).
ENDPOINT_ARGS.update(k8s_auth_spec(login=False))
ENDPOINT_MUTUALLY_EXCLUSIVE = [('url', 'service'), ('bearer_token', 'username')]
ENDPOINT_REQUIRED_ONE_OF = [('url', 'service')]
ENDPOINT_REQUIRED_TOGETHER = [('service', 'namespace', 'port'), ('username', 'password')]


class Endpoint(object):
    """Where requests go: a base URL plus how to authenticate and verify TLS. Through the service proxy
    the requests are the kubernetes client's own (token refresh, client certificates, proxy,
    impersonation exactly as kubernetes.core's modules send them)."""

    def __init__(self, params):
        self.params = params
        self.headers = {'Accept': 'application/json'}
        self.tls = {}  # open_url keyword arguments
        self._api = None  # the kubernetes ApiClient, for service proxy access
        if params.get('url'):
            self.base = params['url'].rstrip('/')
            # Never name credentials written into the URL (https://user:password@host) in a message.
            scheme, sep, rest = self.base.partition('://')
            self.describe = scheme + sep + rest.split('@', 1)[-1] if '@' in rest.split('/', 1)[0] else self.base
            if params.get('bearer_token'):
                self.headers['Authorization'] = 'Bearer ' + params['bearer_token']
            elif params.get('username'):
                cred = '%s:%s' % (params['username'], params['password'])
                self.headers['Authorization'] = 'Basic ' + base64.b64encode(cred.encode()).decode()
            self.tls = dict(ca_path=params.get('ca_path'), validate_certs=params.get('validate_certs', True))
        else:
            self._through_service_proxy(params)

    def _through_service_proxy(self, params):
        try:
            self._api = api_client(params, login=False)
        except K8sAuthError as err:
            raise EndpointError(str(err))
        host = self._api.configuration.host.rstrip('/')
        svc = '%s:%s:%s' % (params['scheme'], params['service'], params['port'])
        self.base = '/api/v1/namespaces/%s/services/%s/proxy' % (quote(params['namespace']), quote(svc))
        self.describe = 'service %s/%s port %s through the API server %s' % (
            params['namespace'], params['service'], params['port'], host)

    def _send(self, method, path, data, headers, timeout):
        """(status, body bytes) of one request; HTTPStatus for an answer outside 2xx, OSError-like
        Unreachable when no answer came."""
        if self._api is None:
            try:
                resp = open_url(self.base + path, method=method, data=data, headers=headers, timeout=timeout, **self.tls)
                return resp.getcode(), resp.read()
            except HTTPError as err:
                raise _HTTPStatus(err.code, err.read() if hasattr(err, 'read') else b'')
            except (URLError, ssl.SSLError, OSError) as err:
                raise _Unreachable(getattr(err, 'reason', err))
        try:
            resp = self._api.call_api(self.base + path, method, header_params=headers,
                                      body=json.loads(data) if data else None,
                                      auth_settings=['BearerToken'], _preload_content=False,
                                      _return_http_data_only=True, _request_timeout=timeout)
            return resp.status, resp.data
        except ApiException as err:
            if err.status:
                raise _HTTPStatus(err.status, err.body or b'')
            raise _Unreachable(err.reason)
        except Exception as err:  # pylint: disable=broad-except  # urllib3's connection and TLS errors
            raise _Unreachable(err)

    def get_json(self, path, timeout=None, method='GET', data=None, content_type=None):
        headers = dict(self.headers)
        if content_type:
            headers['Content-Type'] = content_type
        try:
            dummy, body = self._send(method, path, data, headers, timeout or self.params['request_timeout'])
        except _HTTPStatus as err:
            detail = err.body[:300].decode('utf-8', 'replace') if isinstance(err.body, bytes) else str(err.body)[:300]
            hint = {401: 'unauthorized: check the token or credentials',
                    403: 'forbidden: the identity may not reach this endpoint',
                    404: 'not found: wrong URL, service or port'}.get(err.status, 'HTTP error')
            raise EndpointError('%s answered %s (%s) for %s %s' % (self.describe, err.status, hint, path, detail.strip()))
        except _Unreachable as err:
            raise EndpointError('cannot reach %s: %s' % (self.describe, err.reason))
        try:
            return json.loads(body)
        except ValueError:
            raise EndpointError('%s answered %s with something that is not JSON (%r...): is this the right endpoint?'
                                % (self.describe, path, body[:80]))

    def call(self, method, path, body=None, expect=(200,), headers=None, timeout=None):
        """One request with a JSON body; returns (status, parsed answer or None) when the status is one of
        expect, raises EndpointError (with .status) otherwise. headers replace the endpoint's own."""
        all_headers = dict(self.headers)
        all_headers.update(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body)
            all_headers['Content-Type'] = 'application/json'
        try:
            status, raw = self._send(method, path, data, all_headers, timeout or self.params['request_timeout'])
        except _HTTPStatus as err:
            status, raw = err.status, err.body
        except _Unreachable as err:
            raise EndpointError('cannot reach %s (%s %s): %s' % (self.describe, method, path, err.reason))
        if status not in expect:
            raise EndpointError('%s answered %s to %s %s: %s' % (self.describe, status, method, path, error_reason(raw)),
                                status=status)
        if not raw:
            return status, None
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, None


class _HTTPStatus(Exception):
    def __init__(self, status, body):
        super(_HTTPStatus, self).__init__(status)
        self.status, self.body = status, body


class _Unreachable(Exception):
    def __init__(self, reason):
        super(_Unreachable, self).__init__(reason)
        self.reason = reason
