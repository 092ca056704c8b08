"""Log store documents as our fluent.conf makes real Fluentd write them, for tests that index documents
themselves (tests/integration/test_logging.py, where Fluentd cannot run).

These are not our idea of Fluentd's output: tests/peers/test_fluentd.py runs the real Fluentd on the
logging role's configuration and fails when the documents it wrote have other fields than these
(field_paths), so a change in Fluentd, a plugin or fluent.conf shows up here as a failing peer run."""
from __future__ import annotations

import datetime
import uuid


def container_document(now: datetime.datetime) -> dict:
    """A container line: the cri parser's stream and message, kubernetes_metadata's kubernetes.*, label,
    namespace-label and annotation keys de-dotted (app.kubernetes.io/name -> app_kubernetes_io/name)."""
    return {
        "stream": "stdout", "message": '10.0.0.7 - - "GET /healthz HTTP/1.1" 200 2', "time": _cri_time(now),
        "docker": {"container_id": "b" * 64},
        "kubernetes": {
            "container_name": "nginx", "container_image": "docker.io/library/nginx:1.27",
            "container_image_id": "docker.io/library/nginx@sha256:" + "d" * 64, "namespace_name": "shop",
            "pod_name": "web-5d8f7-x2x9q",
            "pod_id": str(uuid.uuid4()), "pod_ip": "10.250.128.7", "host": "lab-node-1",
            "labels": {"app": "web", "app_kubernetes_io/name": "web"},
            "namespace_id": str(uuid.uuid4()),
            "namespace_labels": {"kubernetes_io/metadata_name": "shop"},
        },
        "@timestamp": _timestamp(now),
    }


def vm_console_document(now: datetime.datetime) -> dict:
    """A serial console line of a virt-launcher pod: vm_name from the kubevirt.io/domain annotation."""
    return {
        "stream": "stdout", "message": "[  OK  ] Reached target Multi-User System.", "time": _cri_time(now),
        "docker": {"container_id": "c" * 64},
        "kubernetes": {
            "container_name": "guest-console-log", "container_image": "quay.io/kubevirt/virt-launcher:v1.6.0",
            "container_image_id": "quay.io/kubevirt/virt-launcher@sha256:" + "e" * 64,
            "namespace_name": "vms", "pod_name": "virt-launcher-db-vm-x7k2p",
            "pod_id": str(uuid.uuid4()), "pod_ip": "10.250.128.8", "host": "lab-node-2",
            "labels": {"kubevirt_io": "virt-launcher", "vm_kubevirt_io/name": "db",
                       "kubevirt_io/created-by": str(uuid.uuid4())},
            "annotations": {"kubevirt_io/domain": "db.vm"},
            "namespace_id": str(uuid.uuid4()),
            "namespace_labels": {"kubernetes_io/metadata_name": "vms"},
        },
        "vm_name": "db.vm",
        "@timestamp": _timestamp(now),
    }


def field_paths(doc: dict, prefix: str = "", keep: tuple[str, ...] = ()) -> set[str]:
    """Dotted paths of a document's leaves. Under the maps named in keep (labels, annotations: their keys
    depend on the pod) only the map itself counts."""
    out = set()
    for key, value in doc.items():
        path = prefix + key
        if isinstance(value, dict) and path not in keep:
            out |= field_paths(value, path + ".", keep)
        else:
            out.add(path)
    return out


VARIABLE_MAPS = ("kubernetes.labels", "kubernetes.annotations", "kubernetes.namespace_labels")


def _cri_time(now: datetime.datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


def _timestamp(now: datetime.datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+00:00"
