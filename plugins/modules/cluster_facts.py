#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: unimon.stack developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: cluster_facts
short_description: Learn what a Kubernetes cluster exposes, and whether the caller may do what the play needs
version_added: 0.2.0
description:
  - Read-only. Gathers the Kubernetes version; the control-plane components visible as pods (kubeadm static
    pods) and the address each binds to; kube-proxy (DaemonSet, metrics address) or its replacement by Cilium;
    CoreDNS; the container runtime of every node; KubeVirt; whether C(metrics.k8s.io) is served; the Prometheus
    Operator CRDs and their version; the default StorageClass; the Pod Security labels of namespaces.
  - Derives from those facts which components a ServiceMonitor can scrape, which only an agent on the node's
    host network can reach (bound to 127.0.0.1), and the log format of the nodes' runtimes.
  - Asks the API server, with one SelfSubjectAccessReview per verb and resource in O(access_checks), what the
    caller may do. Those reviews are answered and never stored.
  - Objects the caller may not read are reported in RV(read_errors) instead of failing the module.
author:
  - unimon.stack developers (@unimon)
options:
  access_checks:
    description:
      - Permissions to review. Each item names C(resource), C(verbs) (a list), and optionally C(group)
        (empty for the core group), C(subresource) and C(namespace) (omitted for cluster-scoped resources).
      - An item with C(when_fact) is reviewed only when that key of RV(facts) is true (for example
        C(kubevirt_monitoring), since that role skips itself without KubeVirt and then needs nothing).
    type: list
    elements: dict
    default: []
  namespaces:
    description: Namespaces whose existence and Pod Security labels are reported.
    type: list
    elements: str
    default: []
  etcd_client_secret:
    description:
      - C(namespace/name) of the Secret with an etcd client certificate; etcd counts as scrapable only when
        etcd runs as visible pods listening beyond 127.0.0.1 and this Secret exists. Empty skips the lookup.
    type: str
    default: ""
  operator_version:
    description:
      - Prometheus Operator version the play installs; compared with the version of the CRDs in the cluster
        to tell install, keep, upgrade, or newer-in-cluster.
    type: str
    default: ""
extends_documentation_fragment:
  - unimon.stack.k8s_auth
  - unimon.stack.k8s_auth.login
attributes:
  check_mode:
    description: The module only reads; it runs the same in check mode.
    support: full
  diff_mode:
    description: Nothing changes, so there is no diff.
    support: none
requirements:
  - kubernetes (Python library)
"""

EXAMPLES = r"""
- name: Learn the cluster's shape and check two permissions
  unimon.stack.cluster_facts:
    namespaces: [unimon]
    access_checks:
      - {group: apps, resource: daemonsets, verbs: [get, list, create, patch, delete], namespace: unimon}
      - {group: apiextensions.k8s.io, resource: customresourcedefinitions, verbs: [get, create, patch]}
  register: cluster

- name: Stop when a permission is missing
  ansible.builtin.assert:
    that: cluster.missing_permissions | length == 0
    fail_msg: "missing: {{ cluster.missing_permissions | join(', ') }}"
"""

RETURN = r"""
facts:
  description:
    - What the cluster exposes and what follows from it (see docs/roles/preflight.md for every key).
    - Keys include C(kubernetes_version), C(kubernetes_minor), C(control_plane), C(scheduler_scrapable),
      C(controller_manager_scrapable), C(etcd_scrapable), C(kube_proxy), C(kube_proxy_scrapable),
      C(coredns_scrapable), C(localhost_components), C(node_runtimes), C(node_cidrs), C(log_format), C(kubevirt),
      C(metrics_api_served), C(metrics_api_ours), C(metrics_api_backend), C(metrics_server_needed),
      C(prometheus_operator_crds), C(default_storage_class), C(namespaces).
  returned: success
  type: dict
missing_permissions:
  description: One line per denied review, C(verb group/resource[/subresource] [in namespace]).
  returned: success
  type: list
  elements: str
reviews:
  description: How many SelfSubjectAccessReviews were asked (one per distinct verb, resource and namespace).
  returned: success
  type: int
read_errors:
  description: Objects the module could not read, with the reason; the facts depending on them are guesses.
  returned: success
  type: list
  elements: str
"""

import json
import re
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.unimon.stack.plugins.module_utils.k8s_auth import (
    HAS_K8S_CLIENT, K8S_CLIENT_IMP_ERR, K8sAuthError, api_client, k8s_auth_spec,
)

if HAS_K8S_CLIENT:
    from kubernetes.client.rest import ApiException

LOOPBACK = re.compile(r'^(127\.|localhost$|::1$)')
# kubeadm labels its static pods component=<name>; each component's flag that names where metrics are served.
CONTROL_PLANE = {
    'kube-scheduler': {'flag': '--bind-address', 'default': '0.0.0.0'},
    'kube-controller-manager': {'flag': '--bind-address', 'default': '0.0.0.0'},
    'etcd': {'flag': '--listen-client-urls', 'default': 'http://localhost:2379'},
}
RUNTIMES = {'containerd': 'cri', 'cri-o': 'cri', 'docker': 'json'}


def is_loopback(address):
    """True when every address in a comma-separated list of hosts or URLs is a loopback address."""
    hosts = []
    for item in address.split(','):
        item = item.strip()
        if not item:
            continue
        host = re.sub(r'^[a-z]+://', '', item).split('/')[0]
        if host.startswith('['):
            host = host[1:].split(']')[0]
        elif host.count(':') == 1:
            host = host.split(':')[0]
        hosts.append(host)
    return bool(hosts) and all(LOOPBACK.match(h) for h in hosts)


def flag_value(pod, flag, default):
    """Value of --flag=value or --flag value in the command/args of the pod's first container."""
    containers = pod.get('spec', {}).get('containers') or [{}]
    words = (containers[0].get('command') or []) + (containers[0].get('args') or [])
    for i, word in enumerate(words):
        if word.startswith(flag + '='):
            return word.split('=', 1)[1]
        if word == flag and i + 1 < len(words):
            return words[i + 1]
    return default


def runtime_of(node):
    """(runtime name, log format) from node.status.nodeInfo.containerRuntimeVersion, e.g. containerd://1.7.2."""
    version = node.get('status', {}).get('nodeInfo', {}).get('containerRuntimeVersion', '')
    name = version.split('://', 1)[0] if '://' in version else ''
    return (name or 'unknown:' + version), RUNTIMES.get(name)


def log_format_of(formats):
    """Fluentd parser for the cluster: json only when every node with a known runtime is Docker."""
    known = set(f for f in formats if f)
    if known == set(['json']):
        return 'json'
    if 'json' in known:
        return 'mixed'
    return 'cri'


def minor_version(info):
    """'1.34' from /version ({'major': '1', 'minor': '34+'}), falling back to gitVersion."""
    major = re.sub(r'\D', '', str(info.get('major', '')))
    minor = re.sub(r'\D', '', str(info.get('minor', '')))
    if not (major and minor):
        m = re.match(r'v?(\d+)\.(\d+)', info.get('gitVersion', ''))
        major, minor = (m.group(1), m.group(2)) if m else ('0', '0')
    return '%d.%d' % (int(major), int(minor))


def condition(obj, kind):
    for cond in obj.get('status', {}).get('conditions') or []:
        if cond.get('type') == kind:
            return cond.get('status') == 'True'
    return False


def metrics_api_facts(apiservice):
    """APIService v1beta1.metrics.k8s.io: Available or not, ours (our managed-by label) or not, its backend."""
    labels = ((apiservice or {}).get('metadata') or {}).get('labels') or {}
    service = ((apiservice or {}).get('spec') or {}).get('service') or {}
    served = apiservice is not None and condition(apiservice, 'Available')
    ours = labels.get('app.kubernetes.io/managed-by') == 'unimon.stack'
    return {
        'metrics_api_served': served,
        'metrics_api_ours': ours,
        'metrics_api_backend': '%s/%s' % (service.get('namespace', ''), service.get('name', '')) if service else '',
        # Ours keeps being managed once it serves (a rerun must not drop it); someone else's serving one wins.
        # A foreign one that does not serve counts as needed: the metrics_server role then refuses to replace it.
        'metrics_server_needed': not served or ours,
    }


def metrics_api_evidence(facts):
    if facts['metrics_api_served']:
        seen = 'APIService v1beta1.metrics.k8s.io Available'
    else:
        seen = 'APIService v1beta1.metrics.k8s.io missing or not Available'
    if facts['metrics_api_ours']:
        return seen + ', ours (managed by unimon.stack)'
    if facts['metrics_api_backend']:
        return seen + ', served by %s' % facts['metrics_api_backend']
    return seen


def control_plane_facts(pods):
    """Per component: visible as pods or hidden, the bind address, and how it can be scraped."""
    out = {}
    for name, spec in CONTROL_PLANE.items():
        mine = [p for p in pods if p.get('metadata', {}).get('labels', {}).get('component') == name]
        if not mine:
            out[name] = {'visible': False, 'pods': 0, 'address': '', 'reach': 'hidden'}
            continue
        address = flag_value(mine[0], spec['flag'], spec['default'])
        local = is_loopback(address)
        host_network = bool(mine[0].get('spec', {}).get('hostNetwork'))
        out[name] = {'visible': True, 'pods': len(mine), 'address': address,
                     'reach': 'localhost' if local else 'service', 'host_network': host_network}
    return out


def kube_proxy_facts(daemonset, proxy_config, cilium_config):
    """kube-proxy present (DaemonSet) or replaced (Cilium kube-proxy-replacement), and its metrics address."""
    replacement = ''
    if cilium_config is not None:
        mode = str(cilium_config.get('data', {}).get('kube-proxy-replacement', '')).lower()
        if mode in ('true', 'strict'):
            replacement = 'cilium'
    address = '127.0.0.1:10249'  # kube-proxy's default metricsBindAddress
    if proxy_config is not None:
        for line in (proxy_config.get('data', {}).get('config.conf') or '').splitlines():
            m = re.match(r'^metricsBindAddress:\s*["\']?([^"\'\s]*)', line.strip())
            if m and m.group(1):
                address = m.group(1)
    if daemonset is not None:
        state = 'present'
    elif replacement:
        state = 'replaced'
    else:
        state = 'absent'
    return {'state': state, 'replacement': replacement, 'metrics_address': address if state == 'present' else '',
            'scrapable': state == 'present' and not is_loopback(address)}


def coredns_scrapable(service):
    """The CoreDNS ServiceMonitor selects Service kube-system/kube-dns by k8s-app=kube-dns, port 'metrics'."""
    if service is None:
        return False
    ports = [p.get('name') for p in service.get('spec', {}).get('ports') or []]
    return service['metadata'].get('labels', {}).get('k8s-app') == 'kube-dns' and 'metrics' in ports


class Cluster(object):
    """Raw JSON reads and SelfSubjectAccessReviews; a 404 is None, any other failure is recorded."""

    def __init__(self, api):
        self.api = api
        self.read_errors = []
        self.reviews = 0

    def request(self, method, path, body=None):
        resp = self.api.call_api(path, method, body=body, auth_settings=['BearerToken'],
                                 header_params={'Content-Type': 'application/json', 'Accept': 'application/json'},
                                 _preload_content=False, _return_http_data_only=True)
        return json.loads(resp.data)

    def get(self, path):
        try:
            return self.request('GET', path)
        except ApiException as err:
            if err.status != 404:
                self.read_errors.append('%s: %s %s' % (path, err.status, err.reason))
            return None

    def items(self, path):
        found = self.get(path)
        return found.get('items', []) if found else []

    def allowed(self, attrs):
        body = {'apiVersion': 'authorization.k8s.io/v1', 'kind': 'SelfSubjectAccessReview',
                'spec': {'resourceAttributes': attrs}}
        res = self.request('POST', '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews', body)
        self.reviews += 1
        return bool(res.get('status', {}).get('allowed'))


def describe(attrs):
    what = attrs['resource'] + ('/' + attrs['subresource'] if attrs.get('subresource') else '')
    what = (attrs['group'] + '/' + what) if attrs.get('group') else what
    return '%s %s%s' % (attrs['verb'], what, (' in ' + attrs['namespace']) if attrs.get('namespace') else '')


def review_access(cluster, checks):
    """Denied verb/resource pairs, one review each (deduplicated, eight in flight)."""
    wanted = {}
    for check in checks:
        for verb in check.get('verbs') or []:
            attrs = {'verb': verb, 'group': check.get('group') or '', 'resource': check['resource']}
            for key in ('subresource', 'namespace'):
                if check.get(key):
                    attrs[key] = check[key]
            wanted[describe(attrs)] = attrs
    names = sorted(wanted)
    pool = ThreadPoolExecutor(max_workers=8)
    try:
        answers = list(pool.map(lambda n: cluster.allowed(wanted[n]), names))
    finally:
        pool.shutdown()
    return [n for n, ok in zip(names, answers) if not ok]


def gather(cluster, params):
    version = cluster.request('GET', '/version')
    facts = {'kubernetes_version': version.get('gitVersion', ''), 'kubernetes_minor': minor_version(version)}

    pods = cluster.items('/api/v1/namespaces/kube-system/pods?labelSelector=component')
    facts['control_plane'] = control_plane_facts(pods)
    cp = facts['control_plane']
    facts['scheduler_scrapable'] = cp['kube-scheduler']['reach'] == 'service'
    facts['controller_manager_scrapable'] = cp['kube-controller-manager']['reach'] == 'service'
    secret_ok = False
    if params['etcd_client_secret'] and '/' in params['etcd_client_secret']:
        ns, name = params['etcd_client_secret'].split('/', 1)
        secret_ok = cluster.get('/api/v1/namespaces/%s/secrets/%s' % (ns, name)) is not None
    facts['etcd_client_secret_found'] = secret_ok
    facts['etcd_scrapable'] = cp['etcd']['reach'] == 'service' and secret_ok

    proxy = kube_proxy_facts(cluster.get('/apis/apps/v1/namespaces/kube-system/daemonsets/kube-proxy'),
                             cluster.get('/api/v1/namespaces/kube-system/configmaps/kube-proxy'),
                             cluster.get('/api/v1/namespaces/kube-system/configmaps/cilium-config'))
    facts['kube_proxy'] = proxy
    facts['kube_proxy_scrapable'] = proxy['scrapable']
    facts['coredns_scrapable'] = coredns_scrapable(cluster.get('/api/v1/namespaces/kube-system/services/kube-dns'))
    local = [n for n in ('kube-scheduler', 'kube-controller-manager', 'etcd') if cp[n]['reach'] == 'localhost']
    if proxy['state'] == 'present' and not proxy['scrapable']:
        local.append('kube-proxy')
    facts['localhost_components'] = local

    runtimes, formats, addresses = {}, [], []
    for node in cluster.items('/api/v1/nodes'):
        name, fmt = runtime_of(node)
        runtimes[node['metadata']['name']] = name
        formats.append(fmt)
        addresses += node_internal_ips(node)
    facts['node_runtimes'] = runtimes
    facts['node_cidrs'] = host_cidrs(addresses)
    facts['log_format'] = log_format_of(formats)

    crd = cluster.get('/apis/apiextensions.k8s.io/v1/customresourcedefinitions/kubevirts.kubevirt.io') is not None
    kubevirt = kubevirt_facts(crd, cluster.items('/apis/kubevirt.io/v1/kubevirts') if crd else [])
    facts['kubevirt'] = kubevirt

    facts.update(metrics_api_facts(cluster.get('/apis/apiregistration.k8s.io/v1/apiservices/v1beta1.metrics.k8s.io')))

    crd = cluster.get('/apis/apiextensions.k8s.io/v1/customresourcedefinitions/prometheuses.monitoring.coreos.com')
    meta = (crd or {}).get('metadata', {})
    facts['prometheus_operator_crds'] = {
        'present': crd is not None,
        'version': (meta.get('annotations') or {}).get('operator.prometheus.io/version', ''),
        'managed_by': (meta.get('labels') or {}).get('app.kubernetes.io/managed-by', ''),
    }

    default_sc = ''
    for sc in cluster.items('/apis/storage.k8s.io/v1/storageclasses'):
        annotations = sc['metadata'].get('annotations') or {}
        if 'true' in (annotations.get('storageclass.kubernetes.io/is-default-class'),
                      annotations.get('storageclass.beta.kubernetes.io/is-default-class')):
            default_sc = sc['metadata']['name']
    facts['default_storage_class'] = default_sc

    namespaces = {}
    for name in params['namespaces']:
        ns = cluster.get('/api/v1/namespaces/' + name)
        labels = (ns or {}).get('metadata', {}).get('labels') or {}
        namespaces[name] = {'exists': ns is not None,
                            'enforce': labels.get('pod-security.kubernetes.io/enforce', ''),
                            'managed_by': labels.get('app.kubernetes.io/managed-by', '')}
    facts['namespaces'] = namespaces
    facts['kubevirt_monitoring'] = kubevirt['installed']
    facts['prometheus_operator_crds']['action'] = crd_action(facts['prometheus_operator_crds'], params['operator_version'])
    facts['evidence'] = evidence(facts)
    return facts


def kubevirt_facts(crd, crs):
    """Installed means deployed: the CRD (virt-operator) and a KubeVirt CR, in whatever namespace it lives
    (kubevirt upstream, openshift-cnv under HyperConverged, where it is named kubevirt-kubevirt-hyperconverged)."""
    kubevirt = {'installed': False, 'crd': bool(crd), 'namespace': '', 'name': '', 'version': '', 'phase': ''}
    if crd and crs:
        cr = crs[0]  # virt-operator serves one KubeVirt CR per cluster
        kubevirt.update(installed=True, namespace=cr['metadata'].get('namespace', ''),
                        name=cr['metadata'].get('name', ''),
                        version=cr.get('status', {}).get('observedKubeVirtVersion', ''),
                        phase=cr.get('status', {}).get('phase', ''))
    return kubevirt


def version_tuple(version):
    return tuple(int(x) for x in re.findall(r'\d+', version)[:3])


def crd_action(crds, ours):
    """install (none yet), keep (same version), upgrade (older), newer-in-cluster (ours would downgrade)."""
    if not crds['present']:
        return 'install'
    if not crds['version'] or not ours:
        return 'apply'
    theirs, mine = version_tuple(crds['version']), version_tuple(ours)
    if theirs == mine:
        return 'keep'
    return 'upgrade' if theirs < mine else 'newer-in-cluster'


def node_internal_ips(node):
    return [a.get('address') for a in (node.get('status') or {}).get('addresses') or []
            if a.get('type') == 'InternalIP' and a.get('address')]


def host_cidrs(addresses):
    """One /32 (or /128) per address, sorted: where host-network clients (categraf, a control plane node's
    API server) connect from, for the NetworkPolicies."""
    return sorted(set('%s/%d' % (a, 128 if ':' in a else 32) for a in addresses))


def evidence(facts):
    """One short human line per decision: what was seen."""
    cp = facts['control_plane']

    def seen(name):
        c = cp[name]
        if not c['visible']:
            return 'no %s pod in kube-system (managed or host process)' % name
        return '%d %s pod(s), bound to %s' % (c['pods'], name, c['address'])
    proxy = facts['kube_proxy']
    if proxy['state'] == 'present':
        proxy_text = 'DaemonSet kube-proxy, metrics on %s' % proxy['metrics_address']
    elif proxy['state'] == 'replaced':
        proxy_text = 'no kube-proxy; replaced by %s' % proxy['replacement']
    else:
        proxy_text = 'no kube-proxy DaemonSet'
    runtimes = sorted(set(facts['node_runtimes'].values()))
    kv = facts['kubevirt']
    if kv['installed']:
        kubevirt_text = 'KubeVirt CR in %s, version %s' % (kv['namespace'], kv['version'] or 'not reported yet')
    elif kv['crd']:
        kubevirt_text = 'CRD kubevirts.kubevirt.io but no KubeVirt CR'
    else:
        kubevirt_text = 'no CRD kubevirts.kubevirt.io'
    crds = facts['prometheus_operator_crds']
    crds_text = 'no Prometheus Operator CRDs'
    if crds['present']:
        crds_text = 'CRDs v%s (managed by %s)' % (crds['version'] or '?', crds['managed_by'] or '?')
    return {
        'scheduler_scrapable': seen('kube-scheduler'),
        'controller_manager_scrapable': seen('kube-controller-manager'),
        'etcd_scrapable': seen('etcd') + ('' if facts['etcd_client_secret_found'] else '; no etcd client Secret'),
        'kube_proxy_scrapable': proxy_text,
        'coredns_scrapable': 'Service kube-system/kube-dns with a metrics port' if facts['coredns_scrapable']
                             else 'no Service kube-system/kube-dns with a metrics port',
        'localhost_components': ', '.join(facts['localhost_components']) or 'nothing bound to 127.0.0.1',
        'log_format': '%d node(s): %s' % (len(facts['node_runtimes']), ', '.join(runtimes) or 'none'),
        'kubevirt_monitoring': kubevirt_text,
        'metrics_server_needed': metrics_api_evidence(facts),
        'prometheus_operator_crds': crds_text,
        'default_storage_class': facts['default_storage_class'] or 'no default StorageClass',
        'node_cidrs': '%d node InternalIP(s)' % len(facts['node_cidrs']),
    }


def main():
    spec = k8s_auth_spec()
    spec.update(
        access_checks=dict(type='list', elements='dict', default=[]),
        namespaces=dict(type='list', elements='str', default=[]),
        etcd_client_secret=dict(type='str', default='', no_log=False),
        operator_version=dict(type='str', default=''),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    if not HAS_K8S_CLIENT:
        module.fail_json(msg='the kubernetes.core collection and the kubernetes Python library are required: %s'
                         % K8S_CLIENT_IMP_ERR)
    for check in module.params['access_checks']:
        if not check.get('resource') or not isinstance(check.get('verbs'), list):
            module.fail_json(msg='each access_checks item needs resource and a list of verbs: %r' % (check,))
    try:
        cluster = Cluster(api_client(module.params))
        facts = gather(cluster, module.params)
        checks = [c for c in module.params['access_checks'] if not c.get('when_fact') or facts.get(c['when_fact'])]
        missing = review_access(cluster, checks)
    except K8sAuthError as err:
        module.fail_json(msg=str(err))
    except ApiException as err:
        module.fail_json(msg='the API server refused a request preflight needs: %s %s' % (err.status, err.reason))
    except Exception as err:  # connection errors come as several urllib3 types
        module.fail_json(msg='cannot reach the API server: %s' % err)
    module.exit_json(changed=False, facts=facts, missing_permissions=missing, read_errors=cluster.read_errors,
                     reviews=cluster.reviews)


if __name__ == '__main__':
    main()
