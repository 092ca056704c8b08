"""scrape_targets on a big Prometheus: a local HTTP server answers /api/v1/targets with 10,000 active
targets. We time the module's own work (HTTP read + parse + per-job summary) and the whole module as a
playbook task, each against a bare json.loads of the same bytes measured in the same run, and print
the ratios. Run through `make bench` (needs the collection built: ANSIBLE_COLLECTIONS_PATH)."""
from __future__ import annotations

import http.server
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from module_runner import run_module  # noqa: E402  pylint: disable=wrong-import-position

TARGETS = 10_000
JOBS = 25
REPEAT = 7


def answer() -> bytes:
    targets = []
    for i in range(TARGETS):
        job = f"job-{i % JOBS}"
        instance = f"10.{i // 65536}.{(i // 256) % 256}.{i % 256}:9100"
        targets.append({
            "discoveredLabels": {"__address__": instance, "__scheme__": "http", "job": job},
            "labels": {"instance": instance, "job": job, "namespace": "bench", "pod": f"pod-{i}"},
            "scrapePool": job, "scrapeUrl": f"http://{instance}/metrics", "globalUrl": f"http://{instance}/metrics",
            "lastError": "" if i % 500 else "connection refused", "lastScrape": "2026-11-22T04:00:00Z",
            "lastScrapeDuration": 0.0123, "health": "up" if i % 500 else "down",
            "scrapeInterval": "30s", "scrapeTimeout": "10s"})
    return json.dumps({"status": "success", "data": {"activeTargets": targets, "droppedTargets": []}}).encode()


def serve(body: bytes) -> tuple[http.server.HTTPServer, str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # keep the bench output clean
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def median_time(fn) -> float:
    times = []
    for round_no in range(REPEAT):  # noqa: B007 - only counts
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    coll = os.environ.get("ANSIBLE_COLLECTIONS_PATH")
    if not coll:
        sys.exit("bench: ANSIBLE_COLLECTIONS_PATH is not set; run it through make bench")
    sys.path.insert(0, coll.split(os.pathsep)[0])
    # pylint: disable=import-outside-toplevel,import-error
    from ansible_collections.unimon.stack.plugins.module_utils.unimon_http import ENDPOINT_ARGS, Endpoint
    from ansible_collections.unimon.stack.plugins.modules.scrape_targets import summarize

    body = answer()
    server, url = serve(body)
    expect = [{"job": f"job-{j}", "all_up": True} for j in range(JOBS)]
    params = {k: v.get("default") for k, v in ENDPOINT_ARGS.items()}
    params["url"] = url
    endpoint = Endpoint(params)

    def module_work():
        data = endpoint.get_json("/api/v1/targets?state=active")
        jobs, failing, unmet = summarize(data["data"]["activeTargets"], expect)
        assert len(jobs) == JOBS and len(failing) == TARGETS // 500 and unmet

    baseline = median_time(lambda: json.loads(body))
    ours = median_time(module_work)
    # The whole module as a task: Ansible's process start and module transfer included.
    t0 = time.perf_counter()
    result = run_module("scrape_targets", {"url": url, "expect": [{"job": "job-0", "min_up": 1}], "timeout": 5})
    task = time.perf_counter() - t0
    assert not result.get("failed"), result
    want_up = sum(1 for i in range(0, TARGETS, JOBS) if i % 500)
    assert result["jobs"]["job-0"]["up"] == want_up, result["jobs"]["job-0"]
    server.shutdown()

    print(f"answer: {TARGETS} targets, {len(body) / 1e6:.1f} MB, median of {REPEAT}")
    print(f"json.loads of the bytes          {baseline * 1000:8.1f} ms   1.0x")
    print(f"module work (HTTP+parse+summary) {ours * 1000:8.1f} ms  {ours / baseline:5.1f}x")
    print(f"whole task via ansible           {task * 1000:8.1f} ms  {task / baseline:5.1f}x (one run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
