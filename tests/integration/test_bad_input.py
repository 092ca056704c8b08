"""Wrong values across roles: site.yml must fail in its validation play, before any write to the
cluster, with a message naming the variable. Every row of tests/bad_input.py is checked for its message in the
unit tier (tests/unit/test_validate_input.py, one playbook); here the first row of each role, and of the shared
settings, goes through site.yml against the lab, where the API server's audit log shows that nothing was written."""
from __future__ import annotations

import json

import pytest

from bad_input import CASES, owner, site_roles


def first_row_of_each_role():
    seen, rows = set(), []
    for row in CASES:
        if owner(row[0]) not in seen:
            seen.add(owner(row[0]))
            rows.append(row)
    return rows


SITE_CASES = first_row_of_each_role()


def test_every_role_has_a_site_row():
    assert {owner(row[0]) for row in SITE_CASES} == {"unimon", *site_roles()}


@pytest.mark.parametrize("var,value,needle", SITE_CASES, ids=[f"{c[0]}={c[1]}" for c in SITE_CASES])
def test_bad_value_fails_before_any_write(playbook, audit, var, value, needle):
    run = playbook("site.yml", "-e", json.dumps({var: json.loads(value)}))
    assert run.rc != 0, f"{var}={value} was accepted"
    assert needle in run.out, run.out[-2000:]
    assert "Traceback" not in run.out
    assert "Check every role's input before any role writes" in run.out
    assert "Install the unimon monitoring stack" not in run.out, "failed only after the install play started"
    assert audit.writes() == [], f"{var}={value} wrote before failing"


VERIFY_CASES = [
    # playbooks/verify.yml alone: (variable, value as JSON, text the failure must contain)
    ("verify_expect", '[{"jobb": "x", "min_up": "many"}]', "verify_expect[0]"),
    ("verify_expect", '[{"job": "x", "all_up": "yes"}]', "verify_expect[0]"),
    ("verify_expect", '[{"job": "x", "min_up": 1}, {"job": "y", "min_up": 1.5}]', "verify_expect[1]"),
    ("verify_log_max_age", "0", "verify_log_max_age"),
    ("verify_categraf_nodes", "-1", "verify_categraf_nodes"),
    ("unimon_namespace", '"Unimon"', "unimon_namespace"),
]


@pytest.mark.parametrize("var,value,needle", VERIFY_CASES, ids=[f"{c[0]}={c[1]}" for c in VERIFY_CASES])
def test_verify_playbook_checks_before_contacting_the_cluster(playbook, var, value, needle):
    run = playbook("verify.yml", "-e", json.dumps({var: json.loads(value)}))
    assert run.rc != 0, f"{var}={value} was accepted"
    assert needle in run.out, run.out[-2000:]
    assert "Traceback" not in run.out
    # preflight's first task that reads the cluster never started
    assert "Learn what the cluster exposes and review" not in run.out, "failed only after contacting the cluster"
