"""The logging role's API calls: retention policy (Elasticsearch ILM, OpenSearch ISM), index templates,
Fluentd's and Kibana's users, data views (Kibana) and index patterns (OpenSearch Dashboards).

A MOCK, on purpose: Kibana, OpenSearch and OpenSearch Dashboards have no binaries that run here, and the
lab's Elasticsearch (the integ-test zip) has neither ILM nor security. This small HTTP server keeps what
is PUT/POSTed, answers GETs the way those APIs document (404 when missing, ISM's _seq_no/_primary_term,
_authenticate against the users set), insists on the xsrf headers and on ISM's optimistic concurrency,
and records every request. The index templates against a real Elasticsearch:
tests/integration/test_logging.py."""
from __future__ import annotations

import base64
import json
import os
import re
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


class Store:
    def __init__(self):
        self.objects: dict[str, dict] = {}
        self.users = {"elastic": "admin-pw"}
        self.requests: list[dict] = []
        self.seq = 0
        self.user_docs: dict[str, dict] = {}


def handler_for(store: Store):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep pytest output clean
            pass

        def reply(self, code: int, body: dict):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def handle_any(self):
            url = urlparse(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            store.requests.append({"method": self.command, "path": url.path, "query": parse_qs(url.query),
                                   "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
            path, obj = url.path, store.objects.get(url.path)
            if path.startswith("/_security/user/") and self.command == "GET":
                name = path.split("/")[3]
                if name not in store.users:
                    return self.reply(404, {})
                return self.reply(200, {name: {"username": name, **store.user_docs.get(name, {}), "enabled": True}})
            if path == "/_security/_authenticate":
                user, pw = base64.b64decode(self.headers["Authorization"].split()[1]).decode().split(":", 1)
                return self.reply(200, {"username": user}) if store.users.get(user) == pw else self.reply(401, {})
            if path.startswith("/api/") and self.command != "GET":
                xsrf = "kbn-xsrf" if path.startswith("/api/data_views") else "osd-xsrf"
                if xsrf not in self.headers:
                    return self.reply(400, {"message": f"Request must contain a {xsrf} header."})
            if self.command == "GET":
                if obj is None:
                    return self.reply(404, {"error": "not found"})
                name = path.rsplit("/", 1)[1]
                if path.startswith("/_index_template/"):
                    return self.reply(200, {"index_templates": [{"name": name, "index_template": obj}]})
                if path.startswith("/_ilm/policy/"):
                    return self.reply(200, {name: {"version": 1, "policy": obj["policy"]}})
                if path.startswith("/_plugins/_ism/policies/"):
                    return self.reply(200, {"_id": name, "_seq_no": obj["_seq_no"], "_primary_term": 1,
                                            "policy": obj["policy"]})
                if path.startswith("/_security/role/"):
                    return self.reply(200, {name: obj})
                if path.startswith("/api/data_views/data_view/"):
                    return self.reply(200, {"data_view": obj})
                return self.reply(200, {"id": name, "type": "index-pattern", "attributes": obj["attributes"]})
            if self.command == "DELETE":
                return self.reply(200, {}) if store.objects.pop(path, None) is not None else self.reply(404, {})
            if path.startswith("/_plugins/_ism/policies/") and obj is not None:
                q = parse_qs(url.query)
                if q.get("if_seq_no") != [str(obj["_seq_no"])] or q.get("if_primary_term") != ["1"]:
                    return self.reply(409, {"error": "version_conflict_engine_exception"})
            if path.startswith("/_security/user/"):
                name = path.split("/")[3]
                store.users[name] = body["password"]
                if "roles" in body:
                    store.user_docs[name] = {"roles": body["roles"], "metadata": body["metadata"]}
                return self.reply(200, {"created": True})
            if path == "/api/data_views/data_view":  # create: id inside the body
                store.objects[path + "/" + body["data_view"]["id"]] = body["data_view"]
                return self.reply(200, {"data_view": body["data_view"]})
            store.seq += 1
            store.objects[path] = dict(body, _seq_no=store.seq) if "_ism" in path else body
            return self.reply(200, {"acknowledged": True})

        do_GET = do_PUT = do_POST = do_DELETE = handle_any
    return Handler


@pytest.fixture
def server():
    store = Store()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    httpd = ThreadingHTTPServer(("127.0.0.1", port), handler_for(store))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield store, f"http://127.0.0.1:{port}"
    httpd.shutdown()


def run(extra: dict, check: bool = False) -> tuple[int, str, int]:
    env = {**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1"}
    if "ANSIBLE_COLLECTIONS_PATH" not in env:
        pytest.fail("ANSIBLE_COLLECTIONS_PATH is not set: run the tiers through make")
    cmd = [str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(REPO / "tests" / "unit" / "logging_api.yml"),
           "-e", json.dumps({"ansible_python_interpreter": sys.executable, **extra})] + (["--check"] if check else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)
    out = proc.stdout + proc.stderr
    changed = [int(x) for x in re.findall(r"changed=(\d+)", proc.stdout)]
    return proc.returncode, out, sum(changed)


def external(url: str, backend: str, **extra) -> dict:
    return {"logging_backend": backend, "logging_store_mode": "external", "logging_external_url": url,
            "logging_external_allow_http": True, "logging_external_username": "elastic",
            "logging_external_password": "admin-pw", "logging_retention_days": 7, "logging_ui_api_url": url, **extra}


def writes(store: Store) -> list[dict]:
    return [r for r in store.requests if r["method"] != "GET"]


def test_elasticsearch_ilm_templates_and_kibana_data_views(server):
    store, url = server
    rc, out, changed = run(external(url, "elasticsearch"))
    assert rc == 0, out[-3000:]
    assert changed == 1  # one unimon.stack.log_store task puts store objects and data views
    assert len(writes(store)) == 7  # ILM policy, three templates (containers, VM consoles, dead letters), three data views
    sent = {(r["method"], r["path"]): r for r in writes(store)}
    assert set(sent) == {("PUT", "/_ilm/policy/unimon-logs"), ("PUT", "/_index_template/unimon-kubernetes"),
                         ("PUT", "/_index_template/unimon-virt-launcher"), ("PUT", "/_index_template/unimon-dead-letter"),
                         ("POST", "/api/data_views/data_view")}
    ilm = sent["PUT", "/_ilm/policy/unimon-logs"]["body"]["policy"]
    assert ilm["phases"]["delete"] == {"min_age": "7d", "actions": {"delete": {}}}
    assert ilm["_meta"]["managed_by"] == "unimon.stack"
    tpl = sent["PUT", "/_index_template/unimon-virt-launcher"]["body"]
    assert tpl["index_patterns"] == ["virt-launcher-*"]
    assert tpl["template"]["settings"]["index"]["lifecycle"]["name"] == "unimon-logs"
    props = tpl["template"]["mappings"]["properties"]
    assert props["@timestamp"] == {"type": "date"} and props["message"] == {"type": "text"}
    assert props["vm_name"]["type"] == "keyword" and props["kubernetes"]["properties"]["container_name"]["type"] == "keyword"
    for r in writes(store):
        assert r["headers"]["authorization"] == "Basic " + base64.b64encode(b"elastic:admin-pw").decode()
        assert r["headers"]["content-type"] == "application/json"
    views = [r for r in writes(store) if r["path"] == "/api/data_views/data_view"]
    assert sorted(v["body"]["data_view"]["title"] for v in views) == ["dead-letter-*", "kubernetes-*", "virt-launcher-*"]
    for v in views:
        assert v["headers"]["kbn-xsrf"] == "true"
        assert v["body"]["data_view"]["timeFieldName"] == "@timestamp"
        assert v["body"]["data_view"]["id"] == "unimon-" + v["body"]["data_view"]["title"][:-2]
    assert "admin-pw" not in out

    before = len(store.requests)
    rc, out, changed = run(external(url, "elasticsearch"))
    assert rc == 0 and changed == 0, out[-3000:]
    assert all(r["method"] == "GET" for r in store.requests[before:])

    # A changed retention is one PUT of the policy, nothing else.
    before = len(store.requests)
    rc, out, changed = run(external(url, "elasticsearch", logging_retention_days=30))
    new = [r for r in store.requests[before:] if r["method"] != "GET"]
    assert rc == 0 and changed == 1, out[-3000:]
    assert [(r["method"], r["path"]) for r in new] == [("PUT", "/_ilm/policy/unimon-logs")]
    assert new[0]["body"]["policy"]["phases"]["delete"]["min_age"] == "30d"


def test_check_mode_sends_no_write(server):
    store, url = server
    rc, out, changed = run(external(url, "elasticsearch"), check=True)
    assert rc == 0, out[-3000:]
    assert changed == 1 and writes(store) == []
    assert "would PUT /_index_template/unimon-kubernetes" in out
    assert out.count("would POST /api/data_views/data_view") == 3


def test_opensearch_ism_with_concurrency_and_dashboards_index_patterns(server):
    store, url = server
    rc, out, changed = run(external(url, "opensearch"))
    assert rc == 0, out[-3000:]
    ism = [r for r in writes(store) if r["path"] == "/_plugins/_ism/policies/unimon-logs"]
    assert len(ism) == 1 and ism[0]["query"] == {}
    policy = ism[0]["body"]["policy"]
    assert policy["default_state"] == "hot"
    assert policy["states"][0]["transitions"] == [{"state_name": "delete", "conditions": {"min_index_age": "7d"}}]
    assert policy["states"][1]["actions"] == [{"delete": {}}]
    assert policy["ism_template"] == [{"index_patterns": ["kubernetes-*", "virt-launcher-*", "dead-letter-*"], "priority": 100}]
    tpl = store.objects["/_index_template/unimon-kubernetes"]
    assert "lifecycle" not in tpl["template"]["settings"]["index"]  # ISM attaches through ism_template
    patterns = [r for r in writes(store) if r["path"].startswith("/api/saved_objects/index-pattern/")]
    assert {(r["method"], r["path"]) for r in patterns} == {
        ("POST", "/api/saved_objects/index-pattern/unimon-kubernetes"),
        ("POST", "/api/saved_objects/index-pattern/unimon-virt-launcher"),
        ("POST", "/api/saved_objects/index-pattern/unimon-dead-letter")}
    for r in patterns:
        assert r["headers"]["osd-xsrf"] == "true"
        assert r["body"] == {"attributes": {"title": r["path"].rsplit("unimon-", 1)[1] + "-*", "timeFieldName": "@timestamp"}}

    rc, out, changed = run(external(url, "opensearch"))
    assert rc == 0 and changed == 0, out[-3000:]
    # A changed policy is updated with if_seq_no/if_primary_term (the mock refuses it otherwise).
    seq = store.objects["/_plugins/_ism/policies/unimon-logs"]["_seq_no"]
    rc, out, changed = run(external(url, "opensearch", logging_retention_days=3))
    assert rc == 0, out[-3000:]
    update = [r for r in writes(store) if r["path"] == "/_plugins/_ism/policies/unimon-logs"][-1]
    assert update["query"] == {"if_seq_no": [str(seq)], "if_primary_term": ["1"]}
    assert update["body"]["policy"]["states"][0]["transitions"][0]["conditions"]["min_index_age"] == "3d"


def test_dashboards_title_drift_is_repaired_with_put(server):
    store, url = server
    assert run(external(url, "opensearch"))[0] == 0
    store.objects["/api/saved_objects/index-pattern/unimon-kubernetes"]["attributes"]["title"] = "someone-edited-*"
    rc, out, changed = run(external(url, "opensearch"))
    assert rc == 0 and changed == 1, out[-3000:]
    last = writes(store)[-1]
    assert (last["method"], last["path"]) == ("PUT", "/api/saved_objects/index-pattern/unimon-kubernetes")


def test_installed_elasticsearch_users_are_set_once(server):
    store, url = server
    secrets = {"admin_password": "admin-pw", "ui_password": "kibana-pw", "fluentd_password": "fluentd-pw",
               "reader_password": "reader-pw", "ca_crt": ""}
    extra = {"logging_store_mode": "install", "logging_store_api_url": url, "logging_ui_api_url": url,
             "logging_retention_days": 0, "test_secret_values": secrets}
    rc, out, changed = run(extra)
    assert rc == 0, out[-3000:]
    role = store.objects["/_security/role/unimon_fluentd"]
    assert role["indices"] == [{"names": ["kubernetes-*", "virt-launcher-*", "dead-letter-*"],
                                "privileges": ["create_index", "create_doc", "index", "view_index_metadata"]}]
    assert role["cluster"] == ["monitor"]
    assert store.users["unimon-fluentd"] == "fluentd-pw" and store.users["kibana_system"] == "kibana-pw"
    user_put = [r for r in writes(store) if r["path"] == "/_security/user/unimon-fluentd"][0]
    assert user_put["body"]["roles"] == ["unimon_fluentd"]
    # The read-only user the grafana role's datasources use: searches and mappings on our prefixes only.
    reader = store.objects["/_security/role/unimon_reader"]
    assert reader["indices"] == [{"names": ["kubernetes-*", "virt-launcher-*", "dead-letter-*"],
                                  "privileges": ["read", "view_index_metadata"]}]
    assert reader["cluster"] == ["monitor"]
    assert store.users["unimon-reader"] == "reader-pw"
    assert [r for r in writes(store) if r["path"] == "/_security/user/unimon-reader"][0]["body"]["roles"] == ["unimon_reader"]
    for pw in ("fluentd-pw", "kibana-pw", "admin-pw", "reader-pw"):
        assert pw not in out
    before = len(writes(store))
    rc, out, changed = run(extra)
    assert rc == 0 and changed == 0 and len(writes(store)) == before, out[-3000:]


def test_absent_deletes_what_it_put_and_then_nothing(server):
    store, url = server
    assert run(external(url, "elasticsearch"))[0] == 0
    assert len(store.objects) == 7
    rc, out, changed = run(external(url, "elasticsearch", logging_state="absent"), check=True)
    assert rc == 0 and changed == 1 and len(store.objects) == 7, out[-3000:]
    assert out.count("would DELETE") == 7
    rc, out, changed = run(external(url, "elasticsearch", logging_state="absent"))
    assert rc == 0 and changed == 1, out[-3000:]
    assert sorted(r["path"] for r in writes(store) if r["method"] == "DELETE") == [
        "/_ilm/policy/unimon-logs", "/_index_template/unimon-dead-letter", "/_index_template/unimon-kubernetes",
        "/_index_template/unimon-virt-launcher", "/api/data_views/data_view/unimon-dead-letter",
        "/api/data_views/data_view/unimon-kubernetes", "/api/data_views/data_view/unimon-virt-launcher"]
    assert store.objects == {}
    rc, out, changed = run(external(url, "elasticsearch", logging_state="absent"))
    assert rc == 0 and changed == 0, out[-3000:]
