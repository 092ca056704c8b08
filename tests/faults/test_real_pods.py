"""Faults on the stack's real pods (the lab's real nodes: kubelet, containerd, runc). The Prometheus process
dies: the kubelet restarts its container and verify passes again. A node-exporter pod is deleted: its
DaemonSet brings it back and the target is up again. A kubelet stops: the stack's Prometheus shows that
node's kubelet targets down while its node-exporter, a container the kubelet no longer watches, keeps
answering; started again, the targets come back.

Not tried here: the Node going NotReady and KubeNodeNotReady. The lab's controller-manager waits 5 minutes
before it marks a node NotReady (--node-monitor-grace-period, kept for the kwok nodes: see
test_apiserver_outage.py), and the alert waits 15 minutes more."""
from __future__ import annotations

import subprocess

import pytest
from kubernetes import client

import real_nodes
from lab_fixtures import wait_until
from stack_prometheus import NS, active_targets


@pytest.fixture(scope="module")
def stack(playbook, core):
    run = playbook("site.yml")
    assert run.rc == 0, run.out[-3000:]
    wait_until("prometheus-unimon-0 Ready", lambda: ready(core, "prometheus-unimon-0"), 180, 2)
    return run


def ready(core, name: str) -> client.V1Pod | None:
    try:
        pod = core.read_namespaced_pod(name, NS)
    except client.ApiException:
        return None
    ok = pod.status.phase == "Running" and all(c.ready for c in pod.status.container_statuses or [])
    return pod if ok and pod.status.container_statuses else None


def health(api, job: str, address: str) -> set[str]:
    return {t["health"] for t in active_targets(api) if t["labels"]["job"] == job and t["scrapeUrl"].split("/")[2].startswith(address + ":")}


def ctr(node: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ctr", "-a", f"/run/unimon-lab/{node}/containerd.sock", "-n", "k8s.io", *args],
                          capture_output=True, text=True, check=False, timeout=30)


def test_a_killed_prometheus_is_restarted_by_its_kubelet_and_verify_passes(stack, core, playbook):
    pod = ready(core, "prometheus-unimon-0")
    status = next(c for c in pod.status.container_statuses if c.name == "prometheus")
    killed = ctr(pod.spec.node_name, "tasks", "kill", "--signal", "SIGKILL", status.container_id.split("://", 1)[1])
    assert killed.returncode == 0, killed.stderr

    def restarted():
        now = ready(core, "prometheus-unimon-0")
        prom = now and next(c for c in now.status.container_statuses if c.name == "prometheus")
        return prom if prom and prom.restart_count > status.restart_count else None
    after = wait_until("the kubelet to restart the killed Prometheus", restarted, 180, 2)
    assert after.last_state.terminated.exit_code == 137  # SIGKILL, as the kubelet saw it
    run = playbook("verify.yml")
    assert run.rc == 0, run.out[-3000:]


def test_a_deleted_node_exporter_pod_comes_back(stack, core, api):
    node = real_nodes.NODES[1]
    ip = real_nodes.NODE_IPS[node]
    [old] = [p for p in core.list_namespaced_pod(NS, label_selector="app.kubernetes.io/name=node-exporter").items
             if p.spec.node_name == node]
    wait_until(f"node-exporter of {node} up", lambda: health(api, "node-exporter", ip) == {"up"}, 120, 3)
    core.delete_namespaced_pod(old.metadata.name, NS)

    def replaced():
        pods = [p for p in core.list_namespaced_pod(NS, label_selector="app.kubernetes.io/name=node-exporter").items
                if p.spec.node_name == node and p.metadata.uid != old.metadata.uid and ready(core, p.metadata.name)]
        return pods or None
    wait_until(f"the DaemonSet to bring node-exporter back on {node}", replaced, 120, 2)
    wait_until(f"node-exporter of {node} up again", lambda: health(api, "node-exporter", ip) == {"up"}, 120, 3)


def test_a_stopped_kubelet_shows_its_targets_down(stack, api):
    node = real_nodes.NODES[1]
    ip = real_nodes.NODE_IPS[node]
    wait_until(f"kubelet targets of {node} up", lambda: health(api, "kubelet", ip) == {"up"}, 240, 5)
    stopped = real_nodes.labctl("stop", f"kubelet-{node}")
    assert stopped.returncode == 0, stopped.stderr
    try:
        wait_until(f"kubelet targets of {node} down", lambda: health(api, "kubelet", ip) == {"down"}, 120, 5)
        # The containers outlive their kubelet (containerd keeps them): node-exporter still answers.
        assert health(api, "node-exporter", ip) == {"up"}
    finally:
        up = real_nodes.labctl("real-up")
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-2000:]
    wait_until(f"kubelet targets of {node} up again", lambda: health(api, "kubelet", ip) == {"up"}, 240, 5)
