# -*- coding: utf-8 -*-
# Copyright: unimon.stack developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which scrape jobs verify expects, from the switches site.yml ran with (one table, unit tested)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: expected_scrape_jobs
short_description: The scrape jobs verify expects up, from the roles' switches
version_added: 0.3.0
description:
  - Turns the variables that switch components and scrapes on or off into the expectations
    M(unimon.stack.scrape_targets) takes, one per job C({job, all_up}) or C({job, min_up}).
  - A variable that is unset (the value V(__unset__)) takes the role's default; the scrape switches of the
    control-plane components default to what preflight found (C(unimon_detected)), as the prometheus role's
    defaults do.
  - Jobs named in O(skip) are left out; O(extra) is appended.
options:
  _input:
    description: Variable name to value, V(__unset__) for unset (see P(unimon.stack.scrape_switch_names#filter)).
    type: dict
    required: true
  detected:
    description: The C(unimon_detected) fact of the preflight role, or an empty mapping.
    type: dict
    default: {}
  skip:
    description: Job names not to expect.
    type: list
    elements: str
    default: []
  extra:
    description: Expectations added as given.
    type: list
    elements: dict
    default: []
"""

EXAMPLES = r"""
- name: Expectations from the variables in scope
  ansible.builtin.set_fact:
    expect: >-
      {{ dict(names | zip(query('ansible.builtin.vars', *names, default='__unset__')))
         | unimon.stack.expected_scrape_jobs(unimon_detected | default({}), verify_skip_jobs, verify_expect) }}
  vars:
    names: "{{ [] | unimon.stack.scrape_switch_names }}"
"""

RETURN = r"""
_value:
  description: Expectations, in a fixed order.
  type: list
  elements: dict
"""

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean

UNSET = "__unset__"

# job (prometheus_name is filled in), expectation, switch variable and its default (a key of detected
# and the default without preflight, or a constant), and the state variable of the role that installs it.
JOBS = (
    ("node-exporter", "all_up", ("node_exporter_service_monitor", True), "node_exporter_state"),
    ("kube-state-metrics", "min_up", ("kube_state_metrics_service_monitor", True), "kube_state_metrics_state"),
    ("prometheus-{name}", "all_up", None, None),
    ("alertmanager-{name}", "all_up", ("prometheus_alertmanager_enabled", True), None),
    ("apiserver", "min_up", ("prometheus_scrape_apiserver", True), None),
    ("kubelet", "all_up", ("prometheus_scrape_kubelet", True), None),
    ("kube-scheduler", "min_up", ("prometheus_scrape_scheduler", ("scheduler_scrapable", True)), None),
    ("kube-controller-manager", "min_up",
     ("prometheus_scrape_controller_manager", ("controller_manager_scrapable", True)), None),
    ("kube-proxy", "all_up", ("prometheus_scrape_kube_proxy", ("kube_proxy_scrapable", True)), None),
    ("kube-dns", "min_up", ("prometheus_scrape_coredns", ("coredns_scrapable", True)), None),
    ("etcd", "min_up", ("prometheus_scrape_etcd", ("etcd_scrapable", False)), None),
    ("grafana", "all_up", ("grafana_service_monitor", True), "grafana_state"),
    ("fluentd", "all_up", ("logging_fluentd_service_monitor", True), "logging_state"),
)
# Also needed: Fluentd's own switch, and the name in the Prometheus and Alertmanager job names.
OTHER_NAMES = ("prometheus_name", "logging_fluentd")


def scrape_switch_names(_ignored=None):
    """The variable names expected_scrape_jobs reads."""
    names = [switch[0] for _job, _how, switch, _state in JOBS if switch]
    names += [state for _job, _how, _switch, state in JOBS if state]
    return names + list(OTHER_NAMES)


def _on(value):
    """As Ansible's bool filter reads a switch (the roles' argument specs have checked it already)."""
    return boolean(value, strict=False)


def expected_scrape_jobs(settings, detected=None, skip=None, extra=None):
    if not isinstance(settings, dict):
        raise AnsibleFilterError("expected_scrape_jobs takes a mapping of variable names to values")
    unknown = sorted(set(settings) - set(scrape_switch_names()))
    if unknown:
        raise AnsibleFilterError("expected_scrape_jobs does not read %s" % ", ".join(unknown))
    detected = detected or {}

    def value(name, default):
        got = settings.get(name, UNSET)
        return default if got == UNSET else got

    name = value("prometheus_name", "unimon")
    expect = []
    for job, how, switch, state in JOBS:
        if switch:
            var, default = switch
            if isinstance(default, tuple):
                default = detected.get(default[0], default[1])
            if not _on(value(var, default)):
                continue
        if state and value(state, "present") != "present":
            continue
        if job == "fluentd" and not _on(value("logging_fluentd", True)):
            continue
        expect.append({"job": job.format(name=name), how: 1 if how == "min_up" else True})
    skip = set(skip or [])
    return [e for e in expect if e["job"] not in skip] + list(extra or [])


class FilterModule(object):
    def filters(self):
        return {"expected_scrape_jobs": expected_scrape_jobs, "scrape_switch_names": scrape_switch_names}
