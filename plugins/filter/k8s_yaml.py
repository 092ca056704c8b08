# -*- coding: utf-8 -*-
# Copyright: unimon.stack developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters for Kubernetes manifests."""

from __future__ import annotations

DOCUMENTATION = r"""
name: from_k8s_yaml
short_description: Parse a multi-document Kubernetes manifest into a list of objects
version_added: 0.1.0
description:
  - Like C(from_yaml_all), but reads plain scalars such as C(=) (which YAML 1.1 tags as C(!!value) and
    the standard loaders reject) as strings, as Kubernetes itself does. Upstream CRDs contain such enums.
  - Empty documents are dropped.
options:
  _input:
    description: Manifest text.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Apply every object of a manifest
  kubernetes.core.k8s:
    definition: "{{ lookup('ansible.builtin.file', 'crds.yaml') | unimon.stack.from_k8s_yaml }}"
"""

RETURN = r"""
_value:
  description: The objects of the manifest, in order.
  type: list
  elements: dict
"""

import yaml

from ansible.errors import AnsibleFilterError

try:
    _Base = yaml.CSafeLoader
except AttributeError:  # libyaml not compiled in
    _Base = yaml.SafeLoader


class _K8sLoader(_Base):  # pylint: disable=too-many-ancestors
    """Safe loader that treats the YAML 1.1 '=' value tag as the plain string it is."""


_K8sLoader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))


def from_k8s_yaml(text):
    if not isinstance(text, str):
        raise AnsibleFilterError("from_k8s_yaml expects manifest text, got %s" % type(text).__name__)
    try:
        # bytes: the C loader rejects the tagged str subclasses of ansible-core 2.19
        return [doc for doc in yaml.load_all(text.encode("utf-8"), Loader=_K8sLoader) if doc]
    except yaml.YAMLError as err:
        raise AnsibleFilterError("from_k8s_yaml: manifest is not valid YAML: %s" % err)


def k8s_ref(name, api_version, kind, namespace=None):
    """The smallest object definition that names an object, for deleting it."""
    meta = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": api_version, "kind": kind, "metadata": meta}


class FilterModule(object):
    def filters(self):
        return {"from_k8s_yaml": from_k8s_yaml, "k8s_ref": k8s_ref}
