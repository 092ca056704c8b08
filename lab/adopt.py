"""Run one container of a (kwok-faked) pod as a real process: the lab's stand-in for a kubelet.

kwok only pretends pods run. For the pods whose behaviour the tests must see for real (the
Prometheus the operator generated, kube-state-metrics, Alertmanager, metrics-server) `labctl.py adopt` reads the pod
from the apiserver and starts the matching lab binary with the container's own arguments and
environment, in a network namespace that owns the pod IP, with the pod's volumes materialised
(Secrets, ConfigMaps, emptyDirs, the projected ServiceAccount token from the TokenRequest API) and
bind-mounted at their mountPaths in a private mount namespace. The operator-generated config is
therefore used unmodified, with the pod's own RBAC. What the config-reloader sidecar does
(decompress the generated config) is done here too; re-adopting restarts the process.
"""
from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
import shlex
import shutil
from pathlib import Path

import labctl as lab

# container name -> (lab binary, version key)
BINARIES = {
    "prometheus": ("prometheus", "PROMETHEUS_VERSION"),
    "alertmanager": ("alertmanager", "ALERTMANAGER_VERSION"),
    "kube-state-metrics": ("kube-state-metrics", "KUBE_STATE_METRICS_VERSION"),
    # In-cluster config from the materialised ServiceAccount volume; serves the aggregated metrics.k8s.io API
    # at the pod IP, which the API server dials (--enable-aggregator-routing).
    "metrics-server": ("metrics-server", "METRICS_SERVER_VERSION"),
}
ROOT = lab.STATE / "adopt"
CREATED_DIRS = ROOT / "created-dirs.json"


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _secret(ns: str, name: str) -> dict[str, bytes]:
    obj = lab.http(f"{lab.API}/api/v1/namespaces/{ns}/secrets/{name}")
    return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}


def _configmap(ns: str, name: str) -> dict[str, bytes]:
    obj = lab.http(f"{lab.API}/api/v1/namespaces/{ns}/configmaps/{name}")
    return {k: v.encode() for k, v in (obj.get("data") or {}).items()}


def _items(data: dict[str, bytes], items: list | None) -> dict[str, bytes]:
    if not items:
        return data
    return {i["path"]: data[i["key"]] for i in items if i["key"] in data}


def _token(ns: str, sa: str, source: dict) -> bytes:
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"expirationSeconds": max(source.get("expirationSeconds", 3600), 86400),
                     "audiences": [source["audience"]] if source.get("audience") else []}}
    res = lab.http(f"{lab.API}/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token", "POST", body)
    return res["status"]["token"].encode()


def materialize(volume: dict, dest: Path, pod: dict) -> Path:
    """Write one pod volume's files under dest and return it."""
    ns = pod["metadata"]["namespace"]
    if "emptyDir" not in volume and dest.exists():
        # A kubelet's Secret or ConfigMap volume holds exactly the current keys: files of an earlier adoption
        # (the operator's rule files are named after each PrometheusRule's UID) must not stay loaded.
        shutil.rmtree(dest)
    dest.mkdir(parents=True, exist_ok=True)
    files: dict[str, bytes] = {}
    if "secret" in volume:
        files = _items(_secret(ns, volume["secret"]["secretName"]), volume["secret"].get("items"))
    elif "configMap" in volume:
        files = _items(_configmap(ns, volume["configMap"]["name"]), volume["configMap"].get("items"))
    elif "projected" in volume:
        for src in volume["projected"]["sources"]:
            if "secret" in src:
                files.update(_items(_secret(ns, src["secret"]["name"]), src["secret"].get("items")))
            elif "configMap" in src:
                files.update(_items(_configmap(ns, src["configMap"]["name"]), src["configMap"].get("items")))
            elif "serviceAccountToken" in src:
                files[src["serviceAccountToken"]["path"]] = _token(ns, pod["spec"]["serviceAccountName"],
                                                                   src["serviceAccountToken"])
            elif "downwardAPI" in src:
                for item in src["downwardAPI"]["items"]:
                    field = item["fieldRef"]["fieldPath"]
                    files[item["path"]] = {"metadata.namespace": ns, "metadata.name": pod["metadata"]["name"]}.get(
                        field, "").encode()
    elif "emptyDir" not in volume:
        raise SystemExit(f"adopt: volume {volume['name']} of a kind the lab does not materialise: {sorted(volume)}")
    for rel, data in files.items():
        _write(dest / rel, data)
    return dest


def _env(container: dict, pod: dict) -> dict[str, str]:
    env = {"KUBERNETES_SERVICE_HOST": lab.HOST_IP, "KUBERNETES_SERVICE_PORT": "6443", "HOME": "/tmp"}
    fields = {"metadata.name": pod["metadata"]["name"], "metadata.namespace": pod["metadata"]["namespace"],
              "status.podIP": pod["status"].get("podIP", ""), "spec.nodeName": pod["spec"].get("nodeName", "")}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        elif "fieldRef" in item.get("valueFrom", {}):
            env[item["name"]] = fields.get(item["valueFrom"]["fieldRef"]["fieldPath"], "")
    return env


def _envsubst(text: str, pod: dict) -> str:
    """$(VAR) expansion as the config-reloader does it, from the env of every container of the pod
    (the reloader's carries POD_NAME and SHARD)."""
    env: dict[str, str] = {}
    for container in pod["spec"]["containers"]:
        env.update(_env(container, pod))
    return re.sub(r"\$\(([A-Z_][A-Z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), text)


def _netns_for(ip: str) -> str:
    name = "unimon-a" + hashlib.sha1(ip.encode()).hexdigest()[:6]
    if name in lab.run("ip", "netns", "list", check=False).stdout.split():
        return name
    lab.join_bridge(name, ip, "ua" + name[-6:] + "h", "ua" + name[-6:] + "n", default_route=False)
    # Take the address out of the pods netns' refuse-everything range, and reach it on the bridge.
    lab.run("ip", "-n", lab.PODS_NS, "route", "replace", f"{ip}/32", "dev", "unimon-v%dn" % len(lab.NODES))
    lab.run("ip", "route", "replace", f"{ip}/32", "dev", lab.BRIDGE)
    return name


def _missing_ancestor(path: str) -> Path | None:
    """The top-most directory of path that does not exist on the host (None if all exist)."""
    p = Path(path)
    missing = None
    for parent in [p, *p.parents]:
        if parent.exists():
            break
        missing = parent
    return missing


def adopt(namespace: str, pod_name: str, container_name: str) -> str:
    pod = lab.http(f"{lab.API}/api/v1/namespaces/{namespace}/pods/{pod_name}")
    container = next((c for c in pod["spec"]["containers"] if c["name"] == container_name), None)
    if container is None or container_name not in BINARIES:
        raise SystemExit(f"adopt: {namespace}/{pod_name} has no container {container_name} the lab can run")
    ip = pod["status"].get("podIP")
    if not ip:
        raise SystemExit(f"adopt: {namespace}/{pod_name} has no pod IP yet")
    key = f"{namespace}.{pod_name}.{container_name}"
    work = ROOT / key
    volumes = {v["name"]: v for v in pod["spec"].get("volumes", [])}
    binds: list[tuple[Path, str]] = []
    for mount in container.get("volumeMounts", []):
        src = materialize(volumes[mount["name"]], work / "vol" / mount["name"], pod)
        binds.append((src / mount["subPath"] if mount.get("subPath") else src, mount["mountPath"]))
    # The config-reloader's part: decompress the operator-generated configuration into config-out.
    for vol_name, out_name in (("config", "prometheus.env.yaml"), ("config-volume", "alertmanager.env.yaml")):
        if vol_name in volumes and "config-out" in volumes:
            for gz in materialize(volumes[vol_name], work / "vol" / vol_name, pod).glob("*.gz"):
                text = gzip.decompress(gz.read_bytes()).decode()
                _write(work / "vol" / "config-out" / out_name, _envsubst(text, pod).encode())

    # Mount points that do not exist on the host get an empty directory there (recorded, removed by
    # lab-down) and a private tmpfs over it, so nothing else is written outside the state dir.
    created = set(json.loads(CREATED_DIRS.read_text())) if CREATED_DIRS.exists() else set()
    missing = {_missing_ancestor(str(Path(t).parent) if src.is_file() else t) for src, t in binds}
    missing.discard(None)
    # Decide every top before creating any: a directory created for one mount would hide the next.
    tops = sorted(str(m) for m in missing if not any(m != o and o in m.parents for o in missing))
    for top in tops:
        Path(top).mkdir(parents=True)
        created.add(top)
    ROOT.mkdir(parents=True, exist_ok=True)
    CREATED_DIRS.write_text(json.dumps(sorted(created)))
    script = ["set -e"] + [f"mount -t tmpfs tmpfs {shlex.quote(t)}" for t in tops]
    for src, target in binds:
        if src.is_file():
            script += [f"mkdir -p {shlex.quote(str(Path(target).parent))}", f"touch {shlex.quote(target)}"]
        else:
            script.append(f"mkdir -p {shlex.quote(target)}")
        script.append(f"mount --bind {shlex.quote(str(src))} {shlex.quote(target)}")
    binary, version_key = BINARIES[container_name]
    argv = [lab.binary(binary, version_key), *container.get("args", [])]
    script.append("exec " + " ".join(shlex.quote(a) for a in argv))

    name = f"adopted-{key}"
    pid = lab.pid_of(name)
    if pid:
        lab.stop(name)
    netns = _netns_for(ip)
    lab.start(name, ["ip", "netns", "exec", netns, "unshare", "-m", "--propagation", "private",
                     "sh", "-c", "\n".join(script)], env=_env(container, pod))
    return ip


def adopt_all(namespace: str) -> list[str]:
    """Adopt every running pod of the namespace that has a container the lab can run."""
    done = []
    running = set()
    for pod in lab.http(f"{lab.API}/api/v1/namespaces/{namespace}/pods")["items"]:
        if pod["status"].get("phase") != "Running" or pod["metadata"].get("deletionTimestamp"):
            continue
        running.add(pod["metadata"]["name"])
        for container in pod["spec"]["containers"]:
            if container["name"] in BINARIES:
                adopt(namespace, pod["metadata"]["name"], container["name"])
                done.append(f"{pod['metadata']['name']}/{container['name']}@{pod['status']['podIP']}")
    # Processes of pods that are gone (a new ReplicaSet, an uninstall) stop with them. Only those: a process
    # adopted by another checkout's adopt.py, for a container this one does not know, keeps running.
    for pidfile in lab.PIDS.glob(f"adopted-{namespace}.*.pid"):
        if pidfile.stem[len(f"adopted-{namespace}."):].rsplit(".", 1)[0] not in running:
            lab.stop(pidfile.stem)
    return done


def cleanup_dirs() -> None:
    if not CREATED_DIRS.exists():
        return
    for d in sorted(json.loads(CREATED_DIRS.read_text()), key=len, reverse=True):
        try:
            Path(d).rmdir()
        except OSError:
            pass
    CREATED_DIRS.unlink()
