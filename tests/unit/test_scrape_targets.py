"""unimon.stack.scrape_targets against a real Prometheus (lab binary) scraping a real node-exporter
and a port nobody listens on; fault answers (401, not Prometheus, nothing listening) from small
local HTTP servers, since a healthy Prometheus does not produce them on demand."""
from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from lab_versions import lab_versions
from module_runner import run_module

LAB_BIN = Path.home() / ".cache" / "unimon-lab" / "bin"
VERSIONS = lab_versions()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    prom = LAB_BIN / f"prometheus-{VERSIONS['PROMETHEUS_VERSION']}"
    nexp = LAB_BIN / f"node_exporter-{VERSIONS['NODE_EXPORTER_VERSION']}"
    if not prom.exists() or not nexp.exists():
        pytest.fail(f"lab binaries missing ({prom}, {nexp}): run make lab-build")
    work = tmp_path_factory.mktemp("prom")
    ne_port, dead_port, prom_port = free_port(), free_port(), free_port()
    (work / "prometheus.yml").write_text(json.dumps({
        "global": {"scrape_interval": "1s", "scrape_timeout": "500ms"},
        "scrape_configs": [
            {"job_name": "node", "static_configs": [{"targets": [f"127.0.0.1:{ne_port}"]}]},
            {"job_name": "flaky", "static_configs": [{"targets": [f"127.0.0.1:{ne_port}", f"127.0.0.1:{dead_port}"]}]},
        ]}))
    procs = [
        subprocess.Popen([str(nexp), f"--web.listen-address=127.0.0.1:{ne_port}", "--collector.disable-defaults",
                          "--collector.loadavg"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen([str(prom), f"--config.file={work / 'prometheus.yml'}", f"--storage.tsdb.path={work / 'data'}",
                          f"--web.listen-address=127.0.0.1:{prom_port}"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL),
    ]
    url = f"http://127.0.0.1:{prom_port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url + "/-/ready", timeout=1)
            break
        except OSError:
            time.sleep(0.3)
    yield {"url": url, "dead": f"127.0.0.1:{dead_port}"}
    for p in procs:
        p.terminate()
        p.wait(10)


def test_all_expectations_met(prometheus):
    res = run_module("scrape_targets", {"url": prometheus["url"], "timeout": 30,
                                        "expect": [{"job": "node", "all_up": True}, {"job": "flaky", "min_up": 1}]})
    assert not res.get("failed"), res
    assert res["changed"] is False
    assert res["jobs"]["node"]["up"] == 1 and res["jobs"]["flaky"]["up"] == 1
    assert res["jobs"]["flaky"]["down"] + res["jobs"]["flaky"]["unknown"] == 1


def test_a_down_target_fails_and_is_named(prometheus):
    res = run_module("scrape_targets", {"url": prometheus["url"], "timeout": 8,
                                        "expect": [{"job": "flaky", "all_up": True}]})
    assert res["failed"] is True
    assert "job 'flaky': 1 of 2 targets up" in res["msg"]
    assert prometheus["dead"] in res["msg"]
    assert any(f["instance"] == prometheus["dead"] and "refused" in f["last_error"] for f in res["failing"]), res


def test_missing_job_fails(prometheus):
    res = run_module("scrape_targets", {"url": prometheus["url"], "timeout": 3,
                                        "expect": [{"job": "kubelet", "min_up": 1}]})
    assert res["failed"] is True and "job 'kubelet' has no targets" in res["msg"]


def test_runs_in_check_mode(prometheus):
    res = run_module("scrape_targets", {"url": prometheus["url"], "timeout": 30, "expect": [{"job": "node", "min_up": 1}]},
                     check=True)
    assert not res.get("failed") and res["jobs"]["node"]["up"] == 1


class _Canned(BaseHTTPRequestHandler):
    status, body = 200, b""

    def do_GET(self):  # noqa: N802 - http.server API
        self.send_response(self.status)
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


def serve(status: int, body: bytes) -> str:
    handler = type("H", (_Canned,), {"status": status, "body": body})
    server = HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}"


@pytest.mark.parametrize("url,needle", [
    (lambda: serve(401, b"no"), "401 (unauthorized"),
    (lambda: serve(200, b"<html>hello</html>"), "not JSON"),
    (lambda: serve(200, b'{"status": "success", "data": {}}'), "did not answer like Prometheus"),
    (lambda: f"http://127.0.0.1:{free_port()}", "cannot reach"),
])
def test_faults_give_one_clear_message(url, needle):
    res = run_module("scrape_targets", {"url": url(), "timeout": 2, "expect": [{"job": "node", "min_up": 1}]})
    assert res["failed"] is True
    assert needle in res["msg"], res["msg"]
    assert "Traceback" not in json.dumps(res)


def test_bad_expectation_is_refused():
    res = run_module("scrape_targets", {"url": "http://127.0.0.1:1", "expect": [{"job": "node"}]})
    assert res["failed"] is True and "needs min_up or all_up" in res["msg"]


# unimon.stack.promql against the same real Prometheus.
def test_promql_series_and_values(prometheus):
    res = run_module("promql", {"url": prometheus["url"], "timeout": 30, "query": 'up{job="node"}', "min_value": 1})
    assert not res.get("failed"), res
    assert res["result"][0]["metric"]["job"] == "node" and res["result"][0]["value"] == 1.0


def test_promql_empty_expectation_names_the_offending_series(prometheus):
    res = run_module("promql", {"url": prometheus["url"], "timeout": 5, "query": "up == 0", "expect": "empty"})
    assert res["failed"] is True
    assert "expected no series, got 1" in res["msg"] and prometheus["dead"] in res["msg"]


def test_promql_bad_query_is_reported(prometheus):
    res = run_module("promql", {"url": prometheus["url"], "timeout": 2, "query": "up{"})
    assert res["failed"] is True and "400" in res["msg"]
