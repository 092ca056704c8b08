# -*- coding: utf-8 -*-
# Copyright: unimon.stack developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Formatting for the verify role's summary table."""

from __future__ import annotations

DOCUMENTATION = r"""
name: verify_row
short_description: One line of the verify summary table
version_added: 0.1.0
description:
  - Formats a scrape job's counts (as returned by M(unimon.stack.scrape_targets) in C(jobs)) next to
    what was expected of it.
options:
  _input:
    description: Job name.
    type: str
    required: true
  jobs:
    description: The C(jobs) result of M(unimon.stack.scrape_targets).
    type: dict
    required: true
  expect:
    description: The expectations passed to M(unimon.stack.scrape_targets).
    type: list
    elements: dict
    required: true
"""

EXAMPLES = r"""
- name: Print one row per expected job
  ansible.builtin.debug:
    msg: "{{ expect | map(attribute='job') | map('unimon.stack.verify_row', result.jobs, expect) | list }}"
"""

RETURN = r"""
_value:
  description: A fixed-width text row.
  type: str
"""


def verify_row(job, jobs, expect):
    counts = (jobs or {}).get(job, {})
    wanted = next((e for e in expect if e.get('job') == job), {})
    want = 'all up' if wanted.get('all_up') else '>= %s up' % wanted.get('min_up', 0)
    return '%-28s %3d %5d %7d  %s' % (job, counts.get('up', 0), counts.get('down', 0), counts.get('unknown', 0), want)


class FilterModule(object):
    def filters(self):
        return {'verify_row': verify_row}
