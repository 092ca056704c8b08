# -*- coding: utf-8 -*-
# Copyright: unimon.stack developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes quantities and container resources, checked once for every role."""

from __future__ import annotations

DOCUMENTATION = r"""
name: k8s_resources_problems
short_description: What is wrong with a container's resources (requests and limits)
version_added: 0.3.0
description:
  - Checks a C(resources) mapping as a role variable gives it - only the keys C(requests) and C(limits), in each only
    C(cpu), C(memory) and C(ephemeral-storage), every value a Kubernetes quantity (C(100m), C(0.5), C(2Gi), C(512Mi),
    an integer), no negative values, no fraction of a byte for memory and storage (C(512m) is 0.512 bytes), and every
    limit at least its request.
  - Returns one sentence per problem, each naming the offending key under the variable name it is given
    (C(logging_store_resources.limits.memory)); an empty list when the value is good. Never raises.
  - The same file provides P(unimon.stack.k8s_quantity#filter) (a quantity as a number) and P(unimon.stack.jvm_size#filter)
    (a Java heap size such as C(1g) in bytes).
options:
  _input:
    description: The resources mapping.
    type: raw
    required: true
  name:
    description: The variable name the messages use.
    type: str
    default: resources
"""

EXAMPLES = r"""
- name: Refuse bad requests and limits, naming the variable
  vars:
    problems: "{{ logging_store_resources | unimon.stack.k8s_resources_problems('logging_store_resources') }}"
  ansible.builtin.assert:
    that: problems | length == 0
    fail_msg: "Invalid input: {{ problems | join('; ') }}"

- name: Heap at most half of the memory limit
  ansible.builtin.assert:
    that: >-
      (logging_store_heap | unimon.stack.jvm_size) * 2
      <= (logging_store_resources.limits.memory | unimon.stack.k8s_quantity)
"""

RETURN = r"""
_value:
  description: One message per problem, empty when there is none.
  type: list
  elements: str
"""

import math
import re
from fractions import Fraction

from ansible.errors import AnsibleFilterError

# k8s.io/apimachinery/pkg/api/resource: <number><suffix>, suffix binary (Ki..Ei), decimal SI (n u m "" k M G T P E)
# or a decimal exponent (e3, E-2).
QUANTITY = re.compile(r'^(?P<num>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?$')
BINARY = {'Ki': 1, 'Mi': 2, 'Gi': 3, 'Ti': 4, 'Pi': 5, 'Ei': 6}
DECIMAL = {'n': -9, 'u': -6, 'm': -3, 'k': 3, 'M': 6, 'G': 9, 'T': 12, 'P': 15, 'E': 18}
SECTIONS = ('requests', 'limits')
RESOURCES = ('cpu', 'memory', 'ephemeral-storage')
BYTES = ('memory', 'ephemeral-storage')
# Java -Xmx sizes: bytes, or k/K, m/M, g/G (and t/T) multiples of 1024.
JVM = re.compile(r'^(?P<num>[0-9]+)(?P<unit>[kKmMgGtT]?)$')
JVM_UNITS = {'': 0, 'k': 1, 'm': 2, 'g': 3, 't': 4}


def parse_quantity(value):
    """A Kubernetes quantity as an exact Fraction, or None when it is not one (booleans are not)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        return Fraction(repr(value)) if math.isfinite(value) else None
    if not isinstance(value, str):
        return None
    match = QUANTITY.match(value.strip())
    if not match:
        return None
    number = Fraction(match.group('num'))
    suffix = match.group('suffix') or ''
    if suffix in BINARY:
        return number * 1024 ** BINARY[suffix]
    if suffix in DECIMAL:
        return number * Fraction(10) ** DECIMAL[suffix]
    if suffix:
        return number * Fraction(10) ** int(suffix[1:])
    return number


def show(value):
    return repr(value) if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)


def resources_problems(resources, name='resources'):
    """One sentence per problem of a container resources mapping; [] when it is good."""
    if resources is None:
        return []
    if not isinstance(resources, dict):
        return ["%s must be a mapping with requests and/or limits, got %s" % (name, show(resources))]
    problems = []
    parsed = {}
    for section in resources:
        if section not in SECTIONS:
            problems.append("%s has the unknown key %s (known: requests, limits)" % (name, show(section)))
            continue
        values = resources[section]
        if values is None:
            continue
        if not isinstance(values, dict):
            problems.append("%s.%s must be a mapping of %s, got %s" % (name, section, ', '.join(RESOURCES), show(values)))
            continue
        for resource, value in values.items():
            where = '%s.%s.%s' % (name, section, resource)
            if resource not in RESOURCES:
                problems.append("%s.%s has the unknown resource %s (known: %s)"
                                % (name, section, show(resource), ', '.join(RESOURCES)))
                continue
            amount = parse_quantity(value)
            if amount is None:
                problems.append("%s is %s, not a Kubernetes quantity (such as %s)"
                                % (where, show(value), '100m, 0.5 or 2' if resource == 'cpu' else '512Mi or 2Gi'))
            elif amount < 0:
                problems.append("%s is %s: it must not be negative" % (where, show(value)))
            elif resource in BYTES and amount.denominator != 1:
                problems.append("%s is %s, a fraction of a byte (m means milli): write Mi or M, such as 512Mi"
                                % (where, show(value)))
            else:
                parsed[(section, resource)] = amount
    for resource in RESOURCES:
        request, limit = parsed.get(('requests', resource)), parsed.get(('limits', resource))
        if request is not None and limit is not None and limit < request:
            problems.append("%s.limits.%s (%s) is below %s.requests.%s (%s): a limit must be at least its request"
                            % (name, resource, show(resources['limits'][resource]), name, resource,
                               show(resources['requests'][resource])))
    return problems


def k8s_quantity(value):
    """A Kubernetes quantity as a number (int when whole, else float)."""
    amount = parse_quantity(value)
    if amount is None:
        raise AnsibleFilterError("k8s_quantity: %s is not a Kubernetes quantity" % show(value))
    return amount.numerator if amount.denominator == 1 else float(amount)


def jvm_size(value):
    """A Java heap size (-Xmx syntax: 1g, 512m, 1048576) in bytes."""
    match = JVM.match(value.strip()) if isinstance(value, str) else None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if not match:
        raise AnsibleFilterError("jvm_size: %s is not a Java heap size such as 1g or 512m" % show(value))
    return int(match.group('num')) * 1024 ** JVM_UNITS[match.group('unit').lower()]


class FilterModule(object):
    def filters(self):
        return {'k8s_resources_problems': resources_problems, 'k8s_quantity': k8s_quantity, 'jvm_size': jvm_size}
