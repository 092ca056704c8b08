"""Pods on the lab's real nodes (lab/realnode.py: kubelet, containerd, runc), for the tests that need the real
kubelet and runtime: tests/integration/test_real_nodes.py, test_metrics_stack.py and the peer tier's Fluentd.
The nodes are part of the lab (`make lab-up` starts them: the stack's pods run there); a test gets its own
namespaces, removed after it."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from kubernetes import client
from kubernetes.client.rest import ApiException

from lab_fixtures import REPO, wait_until

NODES = ["lab-real-1", "lab-real-2"]
NODE_IPS = {"lab-real-1": "10.250.0.21", "lab-real-2": "10.250.0.22"}
BUSYBOX = "lab.local/busybox:v1"


def labctl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "lab" / "labctl.py"), *args], capture_output=True, text=True, check=False)


def namespaces(core) -> set[str]:
    return {n.metadata.name for n in core.list_namespace().items}


def start(core, *own: str) -> Path:
    """Real nodes up (they are, after lab-up: real-up only checks) and the test's namespaces created fresh;
    returns the directory with each node's files."""
    up = labctl("real-up")
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
    for ns in own:
        wait_until(f"namespace {ns} left by an earlier run to go", lambda ns=ns: ns not in namespaces(core), 120)
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    return Path(json.loads(labctl("env").stdout)["state"]) / "real"


def stop(core, *own: str) -> None:
    """The test's namespaces deleted; the nodes keep running the stack."""
    for ns in own:
        try:
            core.delete_namespace(ns)
        except ApiException as err:
            if err.status != 404:
                raise
    for ns in own:
        wait_until(f"namespace {ns} to be deleted", lambda ns=ns: ns not in namespaces(core), 120)


def busybox_pod(core, ns: str, name: str, node: str, script: str, *, container: str = "main", labels=None,
                annotations=None, volumes=None, mounts=None, resources=None) -> None:
    core.create_namespaced_pod(ns, {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels or {}, "annotations": annotations or {}},
        "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1, "volumes": volumes or [],
                 "containers": [{"name": container, "image": BUSYBOX, "imagePullPolicy": "Never",
                                 "command": ["/bin/sh", "-c", script], "volumeMounts": mounts or [],
                                 "resources": resources or {}}]}})


def running(core, ns: str, name: str) -> client.V1Pod:
    return wait_until(f"pod {ns}/{name} running", lambda: (
        p := core.read_namespaced_pod(name, ns)).status.phase == "Running" and p.status.container_statuses[0].ready and p, 60)


def log_file(varlog: Path, pod: client.V1Pod) -> tuple[Path, Path]:
    """(the /var/log/containers link, the file it points to) of the pod's first container, seen from the host."""
    from cri_log import container_log_name  # pylint: disable=import-outside-toplevel
    status = pod.status.container_statuses[0]
    cid = status.container_id.split("://", 1)[1]
    link = varlog / "containers" / container_log_name(pod.metadata.name, pod.metadata.namespace, status.name, cid)
    wait_until(f"the log link of {pod.metadata.name}", link.is_symlink, 30)
    return link, varlog / Path(str(link.readlink())).relative_to("/var/log")
