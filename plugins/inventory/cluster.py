# -*- coding: utf-8 -*-
# Copyright: unimon.stack developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Inventory plugin unimon.stack.cluster: Kubernetes nodes and KubeVirt VMIs in one inventory."""

from __future__ import annotations

DOCUMENTATION = r"""
name: cluster
short_description: Kubernetes nodes and KubeVirt VirtualMachineInstances from one or more clusters
version_added: 0.2.0
author:
  - unimon.stack developers (@unimon)
description:
  - Builds one inventory from the Node objects and the KubeVirt C(VirtualMachineInstance) objects of one or
    more clusters (kubeconfig contexts).
  - Every object kind is fetched with cluster-wide list calls, paginated with O(limit) and continue tokens,
    so the number of API requests grows with the number of objects divided by O(limit), not with the number of
    namespaces. When a connection names O(connections[].namespaces), VMIs are listed in those namespaces only
    (one paginated list each), for users who may not list cluster-wide.
  - Groups hosts by cluster, kind, node role, zone, namespace, guest agent state and, optionally, VMI labels.
    Constructed features (O(compose), O(groups), O(keyed_groups)) and inventory caching are supported.
  - The inventory file name must end in V(cluster.yml) or V(cluster.yaml).
extends_documentation_fragment:
  - constructed
  - inventory_cache
requirements:
  - kubernetes >= 28.1.0 (Python client)
  - the kubernetes.core collection (its API client and connection options)
options:
  plugin:
    description: Marks the file as a source for this plugin.
    required: true
    type: str
    choices: [unimon.stack.cluster]
  connections:
    description:
      - Clusters to read. Without this option the default kubeconfig (E(KUBECONFIG) or C(~/.kube/config)) and
        its current context are used.
    type: list
    elements: dict
    default: [{}]
    suboptions:
      name:
        description:
          - Cluster name used in the C(cluster_<name>) group and the C(unimon_cluster) host variable.
          - Defaults to the context name.
        type: str
      kubeconfig:
        description:
          - Path to a kubeconfig file, or the kubeconfig as a mapping. Defaults to E(K8S_AUTH_KUBECONFIG), then
            E(KUBECONFIG) or C(~/.kube/config), then the in-cluster ServiceAccount.
          - Every other connection option of kubernetes.core's modules is accepted here too, with the same
            E(K8S_AUTH_*) fallbacks (kubernetes.core's connection code resolves them), for example C(host),
            C(api_key), C(ca_cert), C(client_cert), C(client_key), C(validate_certs), C(proxy), C(no_proxy),
            C(impersonate_user), C(impersonate_groups).
        type: raw
      context:
        description: Context of the kubeconfig to use. Defaults to E(K8S_AUTH_CONTEXT), then the current context.
        type: str
      namespaces:
        description: Only list VMIs in these namespaces (one paginated list call per namespace).
        type: list
        elements: str
  include_nodes:
    description: Add Node objects as hosts.
    type: bool
    default: true
  include_vmis:
    description: Add VirtualMachineInstance objects as hosts.
    type: bool
    default: true
  node_label_selector:
    description: Label selector for the node list call.
    type: str
  vmi_label_selector:
    description: Label selector for the VMI list calls.
    type: str
  limit:
    description: Page size of every list call (the apiserver returns a continue token when more remain).
    type: int
    default: 500
  api_version:
    description: KubeVirt API version of the VirtualMachineInstance resource.
    type: str
    default: kubevirt.io/v1
  host_format:
    description:
      - Inventory host name of a VMI. Specifiers V({name}), V({namespace}), V({uid}), V({cluster}).
      - Add V({cluster}) when two connections can hold VMIs with the same namespace and name.
    type: str
    default: "{namespace}-{name}"
  node_host_format:
    description: Inventory host name of a node. Specifiers V({name}), V({uid}), V({cluster}).
    type: str
    default: "{name}"
  network_name:
    description:
      - Name of the VMI interface whose address becomes C(ansible_host). Without it, the first interface
        that reports an address is used.
    type: str
  label_groups:
    description: Also group VMIs by each of their labels, as C(label_<key>_<value>).
    type: bool
    default: false
"""

EXAMPLES = r"""
---
# inventory/lab.cluster.yml: the default kubeconfig, everything
plugin: unimon.stack.cluster

---
# two clusters, VMIs grouped by their "app" label, results cached for ten minutes
plugin: unimon.stack.cluster
connections:
  - name: east
    kubeconfig: ~/.kube/east
  - name: west
    kubeconfig: ~/.kube/config
    context: west-admin
host_format: "{cluster}-{namespace}-{name}"
keyed_groups:
  - key: vmi_labels.app | default(omit)
    prefix: app
compose:
  ansible_user: "'cloud-user' if unimon_kind == 'vmi' else omit"
groups:
  fedora_guests: vmi_guest_os.id | default('') == 'fedora'
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/unimon-inventory
cache_timeout: 600
"""

import json
import os

from ansible.errors import AnsibleError, AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable

try:
    from ansible.template import trust_as_template
except ImportError:  # ansible-core < 2.19 trusts every template
    trust_as_template = None

from ansible_collections.unimon.stack.plugins.module_utils.k8s_auth import K8sAuthError, api_client, k8s_auth_spec

try:
    from kubernetes import client as k8s_client
    from kubernetes import config as k8s_config
    from kubernetes.client.exceptions import ApiException
    HAS_KUBERNETES = True
    KUBERNETES_IMPORT_ERROR = None
except ImportError as err:
    HAS_KUBERNETES = False
    KUBERNETES_IMPORT_ERROR = err

    class ApiException(Exception):
        """Placeholder so the except clauses below parse without the client."""

ROLE_PREFIX = "node-role.kubernetes.io/"
# Besides name and namespaces, a connection takes kubernetes.core's connection options (and aliases).
AUTH_ALIASES = {alias: name for name, opt in k8s_auth_spec().items() for alias in opt.get("aliases", [])}
AUTH_KEYS = set(k8s_auth_spec()) | set(AUTH_ALIASES)
CONNECTION_KEYS = {"name", "namespaces"} | AUTH_KEYS
ZONE_LABELS = ("topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone")


# ------------------------------------------------------------------ pure helpers (unit tested)
def condition_true(obj, cond_type):
    """True when status.conditions holds cond_type with status "True"."""
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == cond_type:
            return cond.get("status") == "True"
    return False


def node_roles(labels):
    """Roles from node-role.kubernetes.io/<role> labels (and the legacy kubernetes.io/role)."""
    roles = sorted(k[len(ROLE_PREFIX):] for k in labels if k.startswith(ROLE_PREFIX) and k[len(ROLE_PREFIX):])
    legacy = labels.get("kubernetes.io/role")
    if legacy and legacy not in roles:
        roles.append(legacy)
    return roles


def zone_of(labels):
    for key in ZONE_LABELS:
        if labels.get(key):
            return labels[key]
    return None


def summarize_node(node):
    """The fields of a Node the inventory uses (what the cache stores)."""
    meta = node.get("metadata") or {}
    status = node.get("status") or {}
    labels = meta.get("labels") or {}
    addresses = {}
    for addr in status.get("addresses") or []:
        addresses.setdefault(addr.get("type"), addr.get("address"))
    info = status.get("nodeInfo") or {}
    return {
        "name": meta.get("name"), "uid": meta.get("uid"), "labels": labels,
        "roles": node_roles(labels), "zone": zone_of(labels), "addresses": addresses,
        "ready": condition_true(node, "Ready"),
        "unschedulable": bool((node.get("spec") or {}).get("unschedulable")),
        "os_image": info.get("osImage"), "kubelet_version": info.get("kubeletVersion"),
    }


def summarize_vmi(vmi):
    """The fields of a VirtualMachineInstance the inventory uses (what the cache stores)."""
    meta = vmi.get("metadata") or {}
    status = vmi.get("status") or {}
    interfaces = [{"name": i.get("name"), "ip_address": i.get("ipAddress"),
                   "ip_addresses": i.get("ipAddresses") or ([i["ipAddress"]] if i.get("ipAddress") else []),
                   "mac": i.get("mac"), "interface_name": i.get("interfaceName")}
                  for i in status.get("interfaces") or []]
    return {
        "name": meta.get("name"), "namespace": meta.get("namespace"), "uid": meta.get("uid"),
        "labels": meta.get("labels") or {}, "phase": status.get("phase"), "node": status.get("nodeName"),
        "ready": condition_true(vmi, "Ready"), "agent_connected": condition_true(vmi, "AgentConnected"),
        "guest_os": status.get("guestOSInfo") or {}, "interfaces": interfaces,
    }


def vmi_address(vmi, network_name=None):
    """The address for ansible_host: the named interface's, else the first interface that has one."""
    for iface in vmi["interfaces"]:
        if network_name and iface["name"] != network_name:
            continue
        if iface["ip_address"]:
            return iface["ip_address"]
        if iface["ip_addresses"]:
            return iface["ip_addresses"][0]
    return None


def node_address(node):
    addrs = node["addresses"]
    return addrs.get("InternalIP") or addrs.get("ExternalIP") or addrs.get("Hostname")


def paginate(fetch, limit):
    """Call fetch(limit, continue_token) until the server returns no continue token; return all items.

    fetch returns the decoded list object. A 410 (continue token expired) restarts the list once,
    dropping what the earlier pages returned, so no object is counted twice."""
    restarted = False
    token = None
    items = []
    while True:
        try:
            page = fetch(limit, token)
        except ApiException as exc:
            if exc.status == 410 and token and not restarted:
                restarted, token, items = True, None, []
                continue
            raise
        items.extend(page.get("items") or [])
        token = (page.get("metadata") or {}).get("continue")
        if not token:
            return items


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    NAME = "unimon.stack.cluster"

    def verify_file(self, path):
        return super().verify_file(path) and path.endswith(("cluster.yml", "cluster.yaml"))

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        if not HAS_KUBERNETES:
            raise AnsibleParserError(f"{self.NAME} needs the kubernetes Python client: {KUBERNETES_IMPORT_ERROR}")
        self._read_config_data(path)
        cache_key = self.get_cache_key(path)
        use_cache = self.get_option("cache") and cache
        update_cache = self.get_option("cache") and not cache
        results = None
        if use_cache:
            try:
                results = self._cache[cache_key]
            except KeyError:
                update_cache = True
        if results is None:
            results = [self._fetch(conn) for conn in self._connections()]
        if update_cache:
            self._cache[cache_key] = results
        for cluster in results:
            self._populate(cluster)

    # -------------------------------------------------------------- fetching
    def _connections(self):
        """The connections option, checked: Ansible does not validate inventory suboptions itself."""
        conns = self.get_option("connections") or [{}]
        for idx, conn in enumerate(conns):
            if not isinstance(conn, dict):
                raise AnsibleParserError(f"{self.NAME}: connections[{idx}] must be a mapping, got {conn!r}")
            unknown = sorted(set(conn) - CONNECTION_KEYS)
            if unknown:
                raise AnsibleParserError(f"{self.NAME}: connections[{idx}] has unknown keys {', '.join(unknown)}; "
                                         f"known: {', '.join(sorted(CONNECTION_KEYS))}")
            namespaces = conn.get("namespaces")
            if namespaces is not None and (not isinstance(namespaces, list)
                                           or not all(isinstance(n, str) and n for n in namespaces)):
                raise AnsibleParserError(f"{self.NAME}: connections[{idx}].namespaces must be a list of names")
        return conns

    def _fetch(self, conn):
        auth = {AUTH_ALIASES.get(k, k): v for k, v in conn.items() if k in AUTH_KEYS}
        context = conn.get("context") or os.environ.get("K8S_AUTH_CONTEXT")
        try:
            api = api_client(auth)
        except K8sAuthError as exc:
            raise AnsibleParserError(f"{self.NAME}: {exc}") from exc
        if not context and not conn.get("name"):
            context = self._current_context(auth)
        name = conn.get("name") or context or "default"
        limit = self.get_option("limit")
        out = {"name": name, "nodes": [], "vmis": []}
        try:
            if self.get_option("include_nodes") or self.get_option("include_vmis"):
                # Nodes are also read for VMIs alone: a VMI's zone is its node's.
                core = k8s_client.CoreV1Api(api)
                selector = self.get_option("node_label_selector") if self.get_option("include_nodes") else None

                def nodes_page(lim, token):
                    return self._decode(core.list_node(limit=lim, _continue=token, label_selector=selector,
                                                       _preload_content=False))
                out["nodes"] = [summarize_node(n) for n in paginate(nodes_page, limit)]
            if self.get_option("include_vmis"):
                out["vmis"] = self._fetch_vmis(api, conn.get("namespaces"), limit)
        except ApiException as exc:
            raise AnsibleError(f"{self.NAME}: listing objects of cluster {name} failed: "
                               f"{exc.status} {exc.reason}: {self._message(exc)}") from exc
        return out

    @staticmethod
    def _current_context(auth):
        """Name of the kubeconfig's current context, for the cluster name; None without a kubeconfig file
        (host and token, in-cluster, a kubeconfig given as a mapping)."""
        kubeconfig = auth.get("kubeconfig") or os.environ.get("K8S_AUTH_KUBECONFIG")
        if kubeconfig is not None and not isinstance(kubeconfig, str):
            return None
        try:
            _contexts, active = k8s_config.list_kube_config_contexts(
                config_file=os.path.expanduser(kubeconfig) if kubeconfig else None)
        except (k8s_config.ConfigException, OSError):
            return None
        return (active or {}).get("name")

    def _fetch_vmis(self, api, namespaces, limit):
        group, _sep, version = self.get_option("api_version").rpartition("/")
        custom = k8s_client.CustomObjectsApi(api)
        selector = self.get_option("vmi_label_selector")
        vmis = []
        for namespace in namespaces or [None]:
            def page(lim, token, namespace=namespace):
                kwargs = {"limit": lim, "_continue": token, "label_selector": selector, "_preload_content": False}
                if namespace is None:
                    return self._decode(custom.list_cluster_custom_object(group, version, "virtualmachineinstances",
                                                                          **kwargs))
                return self._decode(custom.list_namespaced_custom_object(group, version, namespace,
                                                                         "virtualmachineinstances", **kwargs))
            try:
                vmis.extend(summarize_vmi(v) for v in paginate(page, limit))
            except ApiException as exc:
                if exc.status == 404 and namespace is None:
                    self.display.warning(f"{self.NAME}: {group}/{version} virtualmachineinstances is not served "
                                         "by this cluster (KubeVirt not installed?); no VMIs added")
                    return []
                raise
        return vmis

    @staticmethod
    def _decode(response):
        try:
            return json.loads(response.data)
        finally:
            response.release_conn()

    @staticmethod
    def _message(exc):
        try:
            return json.loads(exc.body).get("message", exc.body)
        except (TypeError, ValueError, AttributeError):
            return exc.body

    # -------------------------------------------------------------- inventory
    def _group(self, name, parent=None):
        group = self.inventory.add_group(self._sanitize_group_name(name))
        if parent:
            self.inventory.add_child(parent, group)
        return group

    def _populate(self, cluster):
        name = cluster["name"]
        cluster_group = self._group(f"cluster_{name}")
        zones = {n["name"]: n["zone"] for n in cluster["nodes"]}
        if self.get_option("include_nodes"):
            nodes_group = self._group("nodes")
            fmt = self.get_option("node_host_format")
            for node in cluster["nodes"]:
                host = fmt.format(name=node["name"], uid=node["uid"], cluster=name)
                self.inventory.add_host(host, group=cluster_group)
                self.inventory.add_host(host, group=nodes_group)
                for role in node["roles"]:
                    self.inventory.add_host(host, group=self._group(f"node_role_{role}"))
                if node["zone"]:
                    self.inventory.add_host(host, group=self._group(f"zone_{node['zone']}"))
                hostvars = {
                    "unimon_cluster": name, "unimon_kind": "node", "node_name": node["name"],
                    "node_uid": node["uid"], "node_labels": node["labels"], "node_roles": node["roles"],
                    "node_zone": node["zone"], "node_addresses": node["addresses"], "node_ready": node["ready"],
                    "node_unschedulable": node["unschedulable"], "node_os_image": node["os_image"],
                    "node_kubelet_version": node["kubelet_version"],
                }
                address = node_address(node)
                if address:
                    hostvars["ansible_host"] = address
                self._set_vars(host, hostvars)
        if not self.get_option("include_vmis"):
            return
        vmis_group = self._group("vmis")
        fmt = self.get_option("host_format")
        network_name = self.get_option("network_name")
        for vmi in cluster["vmis"]:
            host = fmt.format(name=vmi["name"], namespace=vmi["namespace"], uid=vmi["uid"], cluster=name)
            zone = zones.get(vmi["node"])
            self.inventory.add_host(host, group=cluster_group)
            self.inventory.add_host(host, group=vmis_group)
            self.inventory.add_host(host, group=self._group(f"namespace_{vmi['namespace']}"))
            self.inventory.add_host(host, group=self._group(
                "agent_connected" if vmi["agent_connected"] else "agent_disconnected"))
            if zone:
                self.inventory.add_host(host, group=self._group(f"zone_{zone}"))
            if self.get_option("label_groups"):
                for key, value in vmi["labels"].items():
                    self.inventory.add_host(host, group=self._group(f"label_{key}_{value}"))
            hostvars = {
                "unimon_cluster": name, "unimon_kind": "vmi", "vmi_name": vmi["name"],
                "vmi_namespace": vmi["namespace"], "vmi_uid": vmi["uid"], "vmi_labels": vmi["labels"],
                "vmi_phase": vmi["phase"], "vmi_node": vmi["node"], "vmi_zone": zone, "vmi_ready": vmi["ready"],
                "vmi_agent_connected": vmi["agent_connected"], "vmi_guest_os": vmi["guest_os"],
                "vmi_interfaces": vmi["interfaces"],
            }
            address = vmi_address(vmi, network_name)
            if address:
                hostvars["ansible_host"] = address
            self._set_vars(host, hostvars)

    def _set_vars(self, host, hostvars):
        for key, value in hostvars.items():
            self.inventory.set_variable(host, key, value)
        if not (self.get_option("compose") or self.get_option("groups") or self.get_option("keyed_groups")):
            return
        strict = self.get_option("strict")
        all_vars = self.inventory.get_host(host).get_vars()
        self._set_composite_vars(self._trusted(self.get_option("compose")), all_vars, host, strict=strict)
        self._add_host_to_composed_groups(self._trusted(self.get_option("groups")), all_vars, host, strict=strict)
        keyed = self.get_option("keyed_groups") or []
        if trust_as_template is not None:
            keyed = [{**k, "key": trust_as_template(k["key"])} if isinstance(k.get("key"), str) else k for k in keyed]
        self._add_host_to_keyed_groups(keyed, all_vars, host, strict=strict)

    @staticmethod
    def _trusted(mapping):
        mapping = mapping or {}
        if trust_as_template is None:
            return mapping
        return {k: trust_as_template(v) if isinstance(v, str) else v for k, v in mapping.items()}
