"""The log_store module's request bodies and compare logic (plugins/module_utils/log_store_objects.py).

Per object kind, the body the module builds from the role's inputs (roles/logging/vars/main.yml) equals the
body the role's uri tasks rendered before the module existed: tests/unit/logging_bodies_before.yml keeps
those Jinja expressions verbatim and renders them with Ansible, for several settings. The checksum each
object carries is part of that body, so objects put by the old tasks read as unchanged after the upgrade."""
from __future__ import annotations

import json

import pytest

SCENARIOS = {
    "elasticsearch-install": {},
    "elasticsearch-external-no-retention": {"logging_store_mode": "external", "logging_retention_days": 0},
    "elasticsearch-three-nodes-journal": {"logging_store_replicas": 3, "logging_fluentd_journal": True,
                                          "logging_retention_days": 30},
    "elasticsearch-no-ui": {"logging_ui": False, "logging_index_prefix": "k8s"},
    "opensearch-install": {"logging_backend": "opensearch", "logging_retention_days": 7},
    "opensearch-external": {"logging_backend": "opensearch", "logging_store_mode": "external",
                            "logging_index_replicas": 2},
}


@pytest.fixture(scope="module")
def objs(collection_module):
    return collection_module("plugins.module_utils.log_store_objects")


@pytest.fixture(scope="module", params=sorted(SCENARIOS))
def rendered(request, tmp_path_factory, render_before):
    """What the old Jinja rendered, and the role's new log_store inputs, for one set of role variables."""
    data = render_before("logging_bodies_before.yml", SCENARIOS[request.param],
                         tmp_path_factory.mktemp("bodies") / "bodies.json")
    data["flavour"] = SCENARIOS[request.param].get("logging_backend", "elasticsearch")
    return data


def old(rendered, prefix):
    return [o for o in rendered["objects"] if o["path"].startswith(prefix)]


def test_policy_body_equals_the_old_template(objs, rendered):
    flavour, policies = rendered["flavour"], rendered["inputs"]["policies"]
    before = old(rendered, "/_ilm/") + old(rendered, "/_plugins/_ism/")
    assert len(policies) == len(before) <= 1
    for policy, expected in zip(policies, before):
        assert objs.policy_path(flavour, policy["name"]) == expected["path"]
        assert objs.policy_body(flavour, policy["retention_days"], policy["index_patterns"]) == expected["body"]


def test_index_template_bodies_equal_the_old_template(objs, rendered):
    flavour, templates = rendered["flavour"], rendered["inputs"]["index_templates"]
    before = old(rendered, "/_index_template/")
    assert [objs.template_path(t["name"]) for t in templates] == [o["path"] for o in before]
    for tpl, expected in zip(templates, before):
        # The module's defaults for the options the role does not pass.
        body = objs.template_body(flavour, tpl["index_patterns"], tpl["mappings"], tpl["replicas"], 1, 200,
                                  tpl["lifecycle_policy"])
        assert body == expected["body"]
        assert body["_meta"]["checksum"] == expected["checksum"]


def test_role_bodies_equal_the_old_template(objs, rendered):
    before = old(rendered, "/_security/role/")
    roles = rendered["inputs"]["roles"] if before else []
    assert [objs.role_path(r["name"]) for r in roles] == [o["path"] for o in before]
    for role, expected in zip(roles, before):
        assert objs.role_body(role["cluster"], role["indices"]) == expected["body"]


def test_user_requests_equal_the_old_template(objs, rendered):
    users = rendered["inputs"]["users"]
    before = rendered["users"] if old(rendered, "/_security/role/") else []
    assert len(users) == len(before)
    for user, expected in zip(users, before):
        got = objs.user_request(user["name"], user["password"], user.get("roles", []), user.get("reserved", False))
        assert got == (expected["method"], expected["path"], expected["body"])


def test_data_view_requests_equal_the_old_template(objs, rendered):
    flavour, views = rendered["flavour"], rendered["inputs"]["data_views"]
    before = rendered["views"]
    assert len(before) == 2 * len(views)
    for expected, view in zip(before, views + views):
        got = objs.data_view_request(flavour, view["id"], view["title"], view["name"], "@timestamp", expected["exists"])
        assert got == (expected["method"], expected["path"], expected["body"])


# ------------------------------------------------------------------------------------------- comparing
def test_differences_ignore_what_the_store_adds_and_its_stringified_settings(objs):
    want = objs.template_body("elasticsearch", ["a-*"], {"properties": {"m": {"type": "text"}}}, 0, 1, 200, "p")
    live = json.loads(json.dumps(want))
    live["template"]["settings"]["index"] = {"number_of_shards": "1", "number_of_replicas": "0",
                                             "lifecycle": {"name": "p"}, "uuid": "x"}
    live["version"] = 3
    assert objs.differences(want, live) == []
    live["template"]["settings"]["index"]["number_of_replicas"] = "2"
    assert objs.differences(want, live) == ["template.settings.index.number_of_replicas"]
    assert objs.project(want, live)["template"]["settings"]["index"]["number_of_replicas"] == "2"
    assert "uuid" not in objs.project(want, live)["template"]["settings"]["index"]


def test_differences_on_lists_missing_keys_and_types(objs):
    assert objs.differences({"a": [1, 2]}, {"a": [1]}) == ["a"]
    assert objs.differences({"a": [{"x": 1}]}, {"a": [{"x": 1, "y": 2}]}) == []
    assert objs.differences({"a": {"b": 1}}, {}) == ["a"]
    assert objs.differences({"a": {"b": 1}}, {"a": "text"}) == ["a"]
    assert objs.differences({"a": True}, {"a": "true"}) == []
    assert objs.differences({"a": "1"}, {"a": "01"}) == ["a"]


def test_a_changed_retention_changes_the_checksum(objs):
    week = objs.policy_body("elasticsearch", 7, [])
    month = objs.policy_body("elasticsearch", 30, [])
    assert week["policy"]["_meta"]["checksum"] != month["policy"]["_meta"]["checksum"]
    assert objs.differences(month, week) == ["policy._meta.checksum", "policy.phases.delete.min_age"]


def test_live_objects_from_each_api_answer(objs):
    assert objs.live_object("index_template", "elasticsearch", "t", {"index_templates": [
        {"name": "t", "index_template": {"priority": 200}}]}) == {"priority": 200}
    assert objs.live_object("policy", "elasticsearch", "p", {"p": {"version": 1, "policy": {"phases": {}}}}) == {
        "policy": {"phases": {}}}
    assert objs.live_object("policy", "opensearch", "p", {"_id": "p", "_seq_no": 4, "policy": {"x": 1}}) == {"policy": {"x": 1}}
    assert objs.live_object("role", "elasticsearch", "r", {}) is None
    assert objs.live_object("data_view", "opensearch", "v", {"attributes": {"title": "a-*"}}) == {"title": "a-*"}
    assert objs.live_object("data_view", "elasticsearch", "v", {"data_view": {"title": "a-*"}}) == {"title": "a-*"}


def test_only_ism_updates_carry_seq_no_and_primary_term(objs):
    answer = {"_id": "p", "_seq_no": 7, "_primary_term": 2, "policy": {}}
    assert objs.concurrency_query("opensearch", "policy", answer) == "?if_seq_no=7&if_primary_term=2"
    assert objs.concurrency_query("elasticsearch", "policy", answer) == ""
    assert objs.concurrency_query("opensearch", "index_template", answer) == ""


@pytest.fixture(scope="module")
def http(collection_module):
    return collection_module("plugins.module_utils.unimon_http")


def test_error_reasons_of_elasticsearch_opensearch_and_kibana(http):
    es = b'{"error":{"root_cause":[{"type":"illegal_argument_exception","reason":"bad field"}],"type":"x","reason":"y"},"status":400}'
    assert http.error_reason(es) == "illegal_argument_exception: bad field"
    assert http.error_reason(b'{"statusCode":400,"error":"Bad Request","message":"needs kbn-xsrf"}') == "Bad Request: needs kbn-xsrf"
    assert http.error_reason(b"<html>gateway</html>") == "<html>gateway</html>"


def test_messages_never_name_credentials_in_the_url(http):
    endpoint = http.Endpoint({"url": "https://user:secret@store:9200/", "request_timeout": 1})
    assert endpoint.describe == "https://store:9200"
