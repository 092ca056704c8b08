"""unimon.stack.log_flow against the lab's real Elasticsearch: a fresh stream passes, a stale one and a
missing one fail and are named with their lag, filters select by field (container name), and a
store that is not there gives one clear message."""
from __future__ import annotations

import datetime
import json
import threading
import time
import urllib.request
import uuid

import pytest

from module_runner import run_module


def bulk(es: str, index: str, docs: list[dict]) -> None:
    lines = []
    for doc in docs:
        lines += [json.dumps({"index": {"_index": index}}), json.dumps(doc)]
    req = urllib.request.Request(es + "/_bulk?refresh=true", data=("\n".join(lines) + "\n").encode(),
                                 headers={"Content-Type": "application/x-ndjson"})
    with urllib.request.urlopen(req, timeout=20) as resp:
        assert json.loads(resp.read())["errors"] is False


def iso(delta_seconds: float) -> str:
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=delta_seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@pytest.fixture(scope="module")
def indices(lab):
    run = uuid.uuid4().hex[:8]
    fresh, stale = f"kubernetes-{run}-fresh", f"virt-launcher-{run}-stale"
    bulk(lab["elasticsearch"], fresh, [
        {"@timestamp": iso(-5), "message": "GET /healthz 200",
         "kubernetes": {"namespace_name": "shop", "container_name": "web", "pod_name": "web-1"}},
        {"@timestamp": iso(-2), "message": "order 42 placed",
         "kubernetes": {"namespace_name": "shop", "container_name": "api", "pod_name": "api-1"}},
    ])
    bulk(lab["elasticsearch"], stale, [
        {"@timestamp": iso(-3600), "message": "[  OK  ] Reached target Multi-User System.",
         "kubernetes": {"namespace_name": "vms", "container_name": "guest-console-log",
                        "labels": {"vm_kubevirt_io/name": "db-vm"}}},
    ])
    return {"run": run, "fresh": fresh, "stale": stale}


def test_fresh_stream_passes_with_count_and_lag(lab, indices):
    res = run_module("log_flow", {"url": lab["elasticsearch"], "timeout": 10, "streams": [
        {"name": "shop", "index": f"kubernetes-{indices['run']}-*", "filters": {"kubernetes.namespace_name": "shop"}},
        {"name": "api", "index": f"kubernetes-{indices['run']}-*", "filters": {"kubernetes.container_name": "api"}},
    ]})
    assert not res.get("failed"), res
    assert res["streams"]["shop"]["count"] == 2
    assert res["streams"]["api"]["count"] == 1
    assert 0 <= res["streams"]["api"]["lag_seconds"] < 60


def test_stale_and_missing_streams_fail_and_are_named(lab, indices):
    res = run_module("log_flow", {"url": lab["elasticsearch"], "timeout": 3, "streams": [
        {"name": "vm-consoles", "index": f"virt-launcher-{indices['run']}-*",
         "filters": {"kubernetes.container_name": "guest-console-log"}, "max_age": 600},
        {"name": "nothing", "index": f"kubernetes-{indices['run']}-*", "filters": {"kubernetes.namespace_name": "nope"}},
        {"name": "shop", "index": f"kubernetes-{indices['run']}-*", "filters": {"kubernetes.namespace_name": "shop"}},
    ]})
    assert res["failed"] is True
    assert "stream 'vm-consoles'" in res["msg"] and "older than 600s" in res["msg"]
    assert "stream 'nothing'" in res["msg"] and "no documents" in res["msg"]
    assert "stream 'shop'" not in res["msg"]
    assert res["streams"]["vm-consoles"]["lag_seconds"] > 3500
    assert res["streams"]["vm-consoles"]["count"] == 0


def test_unreachable_store_gives_one_message():
    res = run_module("log_flow", {"url": "http://127.0.0.1:1", "timeout": 2,
                                  "streams": [{"name": "x", "index": "kubernetes-*"}]})
    assert res["failed"] is True and "cannot reach" in res["msg"]
    assert "Traceback" not in json.dumps(res)


def ship_canary_marker(core, es: str, index: str, stop: threading.Event) -> None:
    """Plays Fluentd's part: kwok pods print nothing, so once the canary pod exists this writes the line
    its container would have printed, shaped like our Fluentd output, into the real Elasticsearch."""
    while not stop.is_set():
        pods = core.list_namespaced_pod("default", label_selector="app.kubernetes.io/name=unimon-log-canary").items
        if pods:
            pod = pods[0]
            marker = pod.spec.containers[0].command[-1].split()[-1]
            bulk(es, index, [{"@timestamp": iso(0), "message": marker,
                              "kubernetes": {"namespace_name": "default", "pod_name": pod.metadata.name,
                                             "container_name": "canary"}}])
            return
        time.sleep(0.3)


def canary_pods(core) -> list:
    return [p for p in core.list_namespaced_pod("default", label_selector="app.kubernetes.io/name=unimon-log-canary").items
            if not p.metadata.deletion_timestamp]


def test_canary_marker_found_latency_reported_pod_removed(lab, core, indices):
    index = f"kubernetes-{indices['run']}-canary"
    stop = threading.Event()
    shipper = threading.Thread(target=ship_canary_marker, args=(core, lab["elasticsearch"], index, stop), daemon=True)
    shipper.start()
    try:
        res = run_module("log_flow", {
            "url": lab["elasticsearch"], "kubeconfig": lab["kubeconfig"], "timeout": 10,
            "streams": [{"name": "shop", "index": f"kubernetes-{indices['run']}-*"}],
            "canary": {"enabled": True, "index": f"kubernetes-{indices['run']}-*", "timeout": 60}})
    finally:
        stop.set()
        shipper.join(5)
    assert not res.get("failed"), res
    assert res["changed"] is False
    assert res["canary"]["found"] is True
    assert res["canary"]["marker"].startswith("unimon-canary-")
    assert 0 < res["canary"]["latency_seconds"] < 60
    assert canary_pods(core) == [], "the canary pod was left behind"


def test_canary_marker_missing_fails_named_and_cleans_up(lab, core, indices):
    res = run_module("log_flow", {
        "url": lab["elasticsearch"], "kubeconfig": lab["kubeconfig"], "timeout": 10,
        "streams": [{"name": "shop", "index": f"kubernetes-{indices['run']}-*"}],
        "canary": {"enabled": True, "index": f"kubernetes-{indices['run']}-*", "timeout": 4}})
    assert res["failed"] is True
    assert res["canary"]["marker"] in res["msg"] and "not searchable" in res["msg"]
    assert canary_pods(core) == [], "the canary pod was left behind"


def test_canary_skipped_in_check_mode(lab, core, indices):
    res = run_module("log_flow", {
        "url": lab["elasticsearch"], "kubeconfig": lab["kubeconfig"], "timeout": 10,
        "streams": [{"name": "shop", "index": f"kubernetes-{indices['run']}-*"}],
        "canary": {"enabled": True}}, check=True)
    assert not res.get("failed"), res
    assert res["canary"]["skipped"] is True
    assert canary_pods(core) == []
