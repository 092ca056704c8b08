"""unimon.stack.log_store against a real Elasticsearch, when one is given:

    UNIMON_TEST_ES_URL=https://127.0.0.1:19200 UNIMON_TEST_ES_USER=elastic UNIMON_TEST_ES_PASSWORD=...
    UNIMON_TEST_ES_CA=/path/ca.crt make unit

(docs/testing.md says how to start one from the lab's cached distribution, with security and TLS). Skipped,
saying so, otherwise. create -> rerun changes nothing -> a field changed behind the module's back is
reported (check mode, diff) and repaired -> absent removes -> absent again changes nothing; wrong
credentials, an unverified certificate and an unreachable store fail with clear messages.

The lab's distribution (the integ-test zip) has no ILM and cannot store native roles or users (its security
index needs the analysis-common module): those parts skip when the store refuses them. Kibana, OpenSearch
and OpenSearch Dashboards do not run here: tests/unit/test_logging_api.py covers their requests with a mock."""
from __future__ import annotations

import base64
import json
import os
import ssl
import urllib.error
import urllib.request
import uuid

import pytest

from module_runner import run_module

URL = os.environ.get("UNIMON_TEST_ES_URL", "").rstrip("/")
USER = os.environ.get("UNIMON_TEST_ES_USER", "")
PASSWORD = os.environ.get("UNIMON_TEST_ES_PASSWORD", "")
CA = os.environ.get("UNIMON_TEST_ES_CA", "")
RUN = uuid.uuid4().hex[:6]
NAME = f"unimon-lstest{RUN}"

pytestmark = pytest.mark.skipif(not URL, reason="UNIMON_TEST_ES_URL is not set: no real Elasticsearch to test "
                                "log_store against (see docs/testing.md, 'log_store against a real Elasticsearch')")

MAPPINGS = {"dynamic_templates": [{"strings_as_keywords": {"match_mapping_type": "string",
                                                           "mapping": {"type": "keyword", "ignore_above": 1024}}}],
            "properties": {"@timestamp": {"type": "date"}, "message": {"type": "text"},
                           "kubernetes": {"properties": {"labels": {"type": "object"}}}}}


def es(path: str, method: str = "GET", body=None):
    headers = {"Content-Type": "application/json"}
    if USER:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    ctx = ssl.create_default_context(cafile=CA or None) if URL.startswith("https") else None
    req = urllib.request.Request(URL + path, data=json.dumps(body).encode() if body is not None else None,
                                 method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30, context=ctx) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def args(**extra) -> dict:
    base = {"url": URL, "validate_certs": True}
    if USER:
        base.update(username=USER, password=PASSWORD)
    if CA:
        base["ca_cert"] = open(CA, encoding="ascii").read()
    return {**base, **extra}


TEMPLATES = [{"name": NAME, "index_patterns": [f"lstest{RUN}-*"], "replicas": 0, "mappings": MAPPINGS}]


@pytest.fixture
def clean():
    yield
    es(f"/_index_template/{NAME}", "DELETE")
    es(f"/_ilm/policy/{NAME}", "DELETE")
    es(f"/_security/role/{NAME}", "DELETE")
    es(f"/_security/user/{NAME}", "DELETE")


def test_template_create_rerun_repair_absent(clean):
    res = run_module("log_store", args(index_templates=TEMPLATES))
    assert not res.get("failed") and res["changed"], res
    assert res["actions"] == [f"PUT /_index_template/{NAME}"]
    status, body = es(f"/_index_template/{NAME}")
    live = body["index_templates"][0]["index_template"]
    assert status == 200 and live["_meta"]["managed_by"] == "unimon.stack" and live["template"]["mappings"]["properties"][
        "message"] == {"type": "text"}

    res = run_module("log_store", args(index_templates=TEMPLATES))
    assert not res.get("failed") and not res["changed"] and res["actions"] == [], res
    assert res["objects"] == [{"kind": "index_template", "name": NAME, "result": "unchanged"}]

    # Someone sets one field behind our back and keeps our _meta: the checksum alone would not see it.
    live["template"]["settings"]["index"]["number_of_replicas"] = "3"
    assert es(f"/_index_template/{NAME}", "PUT", live)[0] == 200
    res = run_module("log_store", args(index_templates=TEMPLATES), check=True, diff=True)
    assert not res.get("failed") and res["changed"] and res["actions"] == [f"would PUT /_index_template/{NAME}"], res
    diff = res["diff"][0]
    assert diff["before"]["template"]["settings"]["index"]["number_of_replicas"] == "3"
    assert diff["after"]["template"]["settings"]["index"]["number_of_replicas"] == 0
    assert es(f"/_index_template/{NAME}")[1]["index_templates"][0]["index_template"]["template"]["settings"][
        "index"]["number_of_replicas"] == "3"  # check mode wrote nothing
    res = run_module("log_store", args(index_templates=TEMPLATES))
    assert res["changed"] and res["objects"][0]["result"] == "updated", res
    assert es(f"/_index_template/{NAME}")[1]["index_templates"][0]["index_template"]["template"]["settings"][
        "index"]["number_of_replicas"] == "0"
    assert not run_module("log_store", args(index_templates=TEMPLATES))["changed"]

    res = run_module("log_store", args(state="absent", index_templates=[{"name": NAME}]), check=True)
    assert res["changed"] and res["actions"] == [f"would DELETE /_index_template/{NAME}"], res
    assert es(f"/_index_template/{NAME}")[0] == 200
    res = run_module("log_store", args(state="absent", index_templates=[{"name": NAME}]))
    assert res["changed"] and es(f"/_index_template/{NAME}")[0] == 404, res
    res = run_module("log_store", args(state="absent", index_templates=[{"name": NAME}]))
    assert not res.get("failed") and not res["changed"], res


def test_ilm_policy_when_the_store_has_ilm(clean):
    if es("/_ilm/policy")[0] == 405:
        pytest.skip("this Elasticsearch has no ILM (the integ-test distribution); ILM bodies are covered by test_logging_api.py's mock")
    policy = [{"name": NAME, "retention_days": 7}]
    assert run_module("log_store", args(policies=policy))["changed"]
    assert not run_module("log_store", args(policies=policy))["changed"]
    res = run_module("log_store", args(policies=[{"name": NAME, "retention_days": 30}]), diff=True)
    assert res["changed"] and es(f"/_ilm/policy/{NAME}")[1][NAME]["policy"]["phases"]["delete"]["min_age"] == "30d"


def test_role_and_user_when_the_store_can_keep_them(clean):
    probe = es(f"/_security/role/{NAME}", "PUT", {"cluster": []})
    if probe[0] != 200:
        pytest.skip(f"this Elasticsearch cannot store native roles and users: {json.dumps(probe[1])[:200]}")
    roles = [{"name": NAME, "cluster": ["monitor"], "indices": [{"names": ["x-*"], "privileges": ["read"]}]}]
    users = [{"name": NAME, "password": "a-password-1", "roles": [NAME]}]
    res = run_module("log_store", args(roles=roles, users=users), diff=True)
    assert res["changed"] and "a-password-1" not in json.dumps(res), res
    assert not run_module("log_store", args(roles=roles, users=users))["changed"]
    res = run_module("log_store", args(roles=roles, users=[{**users[0], "password": "a-password-2"}]))
    assert [o["result"] for o in res["objects"]] == ["unchanged", "updated"], res


def test_wrong_credentials_fail_with_the_status_and_without_the_password():
    if not USER:
        pytest.skip("the store has no security (UNIMON_TEST_ES_USER not set)")
    res = run_module("log_store", args(password="not-the-password-xyz", wait_timeout=5, index_templates=TEMPLATES))
    assert res.get("failed") and "401" in res["msg"] and "not-the-password-xyz" not in json.dumps(res), res


def test_an_unverified_certificate_is_refused():
    if not URL.startswith("https") or not CA:
        pytest.skip("the store has no TLS with a private CA (UNIMON_TEST_ES_CA not set)")
    bare = {k: v for k, v in args(index_templates=TEMPLATES, wait_timeout=2).items() if k != "ca_cert"}
    res = run_module("log_store", bare)
    assert res.get("failed") and "CERTIFICATE_VERIFY_FAILED" in res["msg"].upper().replace(" ", "_"), res


def test_an_unreachable_store_is_retried_then_reported():
    res = run_module("log_store", {"url": "http://127.0.0.1:9", "wait_timeout": 3, "index_templates": TEMPLATES})
    assert res.get("failed") and "cannot reach http://127.0.0.1:9" in res["msg"] and "attempts" in res["msg"], res
