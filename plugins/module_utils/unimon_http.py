# -*- coding: utf-8 -*-
# Copyright: unimon.stack developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""HTTP access to Prometheus / Elasticsearch, either directly or through the Kubernetes API server's
service proxy, with errors turned into one-line messages (never a traceback)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json
import os
import ssl

from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
from ansible.module_utils.six.moves.urllib.parse import quote
from ansible.module_utils.urls import open_url

KUBERNETES_IMP_ERR = None
try:
    from kubernetes import client as k8s_client
    from kubernetes import config as k8s_config
    HAS_KUBERNETES = True
except ImportError as exc:  # pragma: no cover - depends on the controller
    HAS_KUBERNETES = False
    KUBERNETES_IMP_ERR = str(exc)


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
    kubeconfig=dict(type='path'),
    context=dict(type='str'),
    ca_path=dict(type='path'),
    validate_certs=dict(type='bool', default=True),
    bearer_token=dict(type='str', no_log=True),
    username=dict(type='str'),
    password=dict(type='str', no_log=True),
    request_timeout=dict(type='float', default=10.0),
)
ENDPOINT_MUTUALLY_EXCLUSIVE = [('url', 'service'), ('bearer_token', 'username')]
ENDPOINT_REQUIRED_ONE_OF = [('url', 'service')]
ENDPOINT_REQUIRED_TOGETHER = [('service', 'namespace', 'port'), ('username', 'password')]


class Endpoint(object):
    """Where requests go: a base URL plus how to authenticate and verify TLS."""

    def __init__(self, params):
        self.params = params
        self.headers = {'Accept': 'application/json'}
        self.tls = {}  # open_url keyword arguments
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
        if not HAS_KUBERNETES:
            raise EndpointError('the kubernetes Python library is needed for the service proxy: %s' % KUBERNETES_IMP_ERR)
        cfg = kube_configuration(params)
        svc = '%s:%s:%s' % (params['scheme'], params['service'], params['port'])
        self.base = '%s/api/v1/namespaces/%s/services/%s/proxy' % (cfg.host.rstrip('/'), quote(params['namespace']), quote(svc))
        self.describe = 'service %s/%s port %s through the API server %s' % (
            params['namespace'], params['service'], params['port'], cfg.host)
        token = cfg.api_key.get('authorization') or cfg.api_key.get('BearerToken')
        if token:
            self.headers['Authorization'] = token if token.lower().startswith('bearer ') else 'Bearer ' + token
        self.tls = dict(ca_path=cfg.ssl_ca_cert, validate_certs=bool(cfg.verify_ssl),
                        client_cert=cfg.cert_file, client_key=cfg.key_file)

    def get_json(self, path, timeout=None, method='GET', data=None, content_type=None):
        url = self.base + path
        headers = dict(self.headers)
        if content_type:
            headers['Content-Type'] = content_type
        try:
            resp = open_url(url, method=method, data=data, headers=headers,
                            timeout=timeout or self.params['request_timeout'], **self.tls)
            body = resp.read()
        except HTTPError as err:
            detail = err.read()[:300].decode('utf-8', 'replace') if hasattr(err, 'read') else ''
            hint = {401: 'unauthorized: check the token or credentials',
                    403: 'forbidden: the identity may not reach this endpoint',
                    404: 'not found: wrong URL, service or port'}.get(err.code, 'HTTP error')
            raise EndpointError('%s answered %s (%s) for %s %s' % (self.describe, err.code, hint, path, detail.strip()))
        except (URLError, ssl.SSLError, OSError) as err:
            reason = getattr(err, 'reason', err)
            raise EndpointError('cannot reach %s: %s' % (self.describe, reason))
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
            resp = open_url(self.base + path, method=method, data=data, headers=all_headers,
                            timeout=timeout or self.params['request_timeout'], **self.tls)
            status, raw = resp.getcode(), resp.read()
        except HTTPError as err:
            status = err.code
            raw = err.read() if hasattr(err, 'read') else b''
            if status not in expect:
                raise EndpointError('%s answered %s to %s %s: %s' % (self.describe, status, method, path, error_reason(raw)),
                                    status=status)
        except (URLError, ssl.SSLError, OSError) as err:
            raise EndpointError('cannot reach %s (%s %s): %s' % (self.describe, method, path, getattr(err, 'reason', err)))
        if status not in expect:
            raise EndpointError('%s answered %s to %s %s: %s' % (self.describe, status, method, path, error_reason(raw)),
                                status=status)
        if not raw:
            return status, None
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, None


def kube_configuration(params):
    """kubeconfig / context options first, then the K8S_AUTH_* variables AWX sets, then in-cluster."""
    kubeconfig = params.get('kubeconfig') or os.environ.get('K8S_AUTH_KUBECONFIG')
    context = params.get('context') or os.environ.get('K8S_AUTH_CONTEXT')
    cfg = k8s_client.Configuration()
    host = os.environ.get('K8S_AUTH_HOST')
    try:
        if host and not kubeconfig:
            cfg.host = host
            if os.environ.get('K8S_AUTH_API_KEY'):
                cfg.api_key = {'authorization': 'Bearer ' + os.environ['K8S_AUTH_API_KEY']}
            cfg.ssl_ca_cert = os.environ.get('K8S_AUTH_SSL_CA_CERT')
            cfg.verify_ssl = os.environ.get('K8S_AUTH_VERIFY_SSL', 'true').lower() not in ('false', 'no', '0')
        elif kubeconfig or os.path.exists(os.path.expanduser('~/.kube/config')):
            k8s_config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=cfg)
        else:
            k8s_config.load_incluster_config(client_configuration=cfg)
    except Exception as err:  # the kubernetes library raises several unrelated types here
        raise EndpointError('cannot load Kubernetes credentials (kubeconfig %s, context %s): %s'
                            % (kubeconfig or '~/.kube/config', context or 'current', err))
    return cfg
