"""The lab's real nodes (lab/realnode.py: kubelet v1.34, containerd, runc): what the rest of the suite assumes
about the kubelet and the runtime, checked against the real programs. The container log format and file
names (tests/cri_log.py, used by the peer tier's Fluentd), the kubelet's volume layout (tests/pod_view.py,
used by the peer tier's categraf), the kubelet's metrics endpoints behind the kubelet_auth role's ClusterRole,
and the node_exporter role's DaemonSet running from a locally built image.

The nodes are part of the lab; this module's pods live in their own namespace (tests/real_nodes.py)."""
from __future__ import annotations

import json
import re
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes import client

import real_nodes
from cri_log import CHUNK, LINE, cri_line, cri_lines
from lab_fixtures import wait_until
from manifests import load_all
from pod_view import lay_out

REPO = Path(__file__).resolve().parents[2]
NS = "lab-real"
LONG_OUT, LONG_ERR = "o" * (2 * CHUNK + 1000), "e" * (CHUNK + 5)
# Both long lines are written at once, so their chunks interleave in the file (what concat's
# stream_identity_key is for); a line of exactly CHUNK bytes stays one F chunk.
WRITER = f"""echo first out; echo first err >&2
( head -c {len(LONG_OUT)} /dev/zero | tr '\\0' o; echo ) &
( head -c {len(LONG_ERR)} /dev/zero | tr '\\0' e; echo ) >&2 &
wait
head -c {CHUNK} /dev/zero | tr '\\0' x; echo
echo last out; exec sleep 3600"""


def render(role: str, tmp: Path, **extra) -> list[dict]:
    out = tmp / f"render-{role}"
    out.mkdir()
    res = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), str(REPO / "tests" / "render" / "render.yml"),
                          "-e", f"role={role}", "-e", f"out={out}", "-e", json.dumps(extra)],
                         capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    return [o for f in sorted(out.glob("*.yaml")) for o in load_all(f)]


@pytest.fixture(scope="module")
def real(lab, core):
    state = real_nodes.start(core, NS)
    yield {"nodes": real_nodes.NODES, "state": state}
    real_nodes.stop(core, NS)


def run_pod(core, name: str, node: str, script: str, volumes=None, mounts=None) -> client.V1Pod:
    real_nodes.busybox_pod(core, NS, name, node, script, volumes=volumes, mounts=mounts)
    return real_nodes.running(core, NS, name)


def test_nodes_are_real_and_ready_and_the_kwok_nodes_tainted(real, core, lab):
    for name in real["nodes"]:
        node = core.read_node(name)
        assert node.status.node_info.container_runtime_version.startswith("containerd://")
        assert node.status.node_info.kubelet_version == "v1.34.4"
        assert not node.spec.taints  # the stack's Deployments and StatefulSets land here
        assert any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)
    for kwok in lab["nodes"]:
        assert [(t.key, t.effect) for t in core.read_node(kwok["name"]).spec.taints] == [("kwok.x-k8s.io/node", "NoSchedule")]


@pytest.fixture(scope="module")
def writer(real, core):
    pod = run_pod(core, "writer", real["nodes"][0], WRITER)
    link, file = real_nodes.log_file(real["state"] / real["nodes"][0] / "varlog", pod)
    wait_until("the writer's last line in its log file", lambda: "last out" in file.read_text(), 30)
    return {"link": link, "file": file, "uid": pod.metadata.uid}


def test_log_files_are_where_and_named_as_the_stand_ins_assume(writer):
    target = str(writer["link"].readlink())
    assert re.fullmatch(rf"/var/log/pods/{NS}_writer_{writer['uid']}/main/0\.log", target), target


def test_log_lines_have_the_format_the_stand_ins_write(writer):
    lines = writer["file"].read_text().splitlines(keepends=True)
    parsed = [LINE.match(line.rstrip("\n")) for line in lines]
    assert all(parsed), [line[:80] for line, m in zip(lines, parsed) if not m]
    # Our writer reproduces each real line byte for byte from its fields (time format included).
    for line, m in zip(lines, parsed):
        assert cri_line(m["stream"], m["tag"], m["text"], when=m["time"]) == line
    by_stream: dict[str, list[tuple[str, str]]] = {"stdout": [], "stderr": []}
    for m in parsed:
        by_stream[m["stream"]].append((m["tag"], m["text"]))
    # Per stream, the chunks are exactly what cri_lines() makes of each logical line.
    expected = {"stdout": ["first out", LONG_OUT, "x" * CHUNK, "last out"], "stderr": ["first err", LONG_ERR]}
    for stream, texts in expected.items():
        want = [(LINE.match(c)["tag"], LINE.match(c)["text"]) for t in texts for c in cri_lines(stream, t).splitlines()]
        assert by_stream[stream] == want
    # And the two streams' chunks really did interleave in the file.
    order = [m["stream"] for m in parsed if m["tag"] == "P" or len(m["text"]) > 1000]
    assert order != sorted(order, key=["stdout", "stderr"].index), order


def tree(root: Path) -> list[str]:
    """Kind and name of every entry under root, with symlink targets; the kubelet's timestamped directory
    name normalised."""
    stamp = re.compile(r"\.\.\d{4}_\d\d_\d\d_\d\d_\d\d_\d\d\.\d+")
    out = []
    for p in sorted(root.rglob("*")):
        rel = stamp.sub("..STAMP", str(p.relative_to(root)))
        kind = f"L {stamp.sub('..STAMP', str(p.readlink()))}" if p.is_symlink() else "D" if p.is_dir() else "F"
        out.append(f"{rel} {kind}")
    return sorted(out)


def test_the_kubelets_volume_layout_is_what_pod_view_writes(real, core, tmp_path):
    """categraf's DaemonSet volumes, mounted by the real kubelet in a pod that lists what it sees."""
    objs = {f"{o['kind']}/{o['metadata']['name']}": o for o in render("categraf", tmp_path)}
    spec = objs["DaemonSet/categraf"]["spec"]["template"]["spec"]
    [ctr] = [c for c in spec["containers"] if c["name"] == "categraf"]
    wanted = {m["name"] for m in ctr["volumeMounts"]}
    volumes = [v for v in spec["volumes"] if v["name"] in wanted and ("configMap" in v or "projected" in v or "secret" in v)]
    mounts = [m for m in ctr["volumeMounts"] if m["name"] in {v["name"] for v in volumes}]
    for obj in objs.values():
        if obj["kind"] in ("ConfigMap", "Secret"):
            body = {**obj, "metadata": {"name": obj["metadata"]["name"], "namespace": NS}}
            create = core.create_namespaced_config_map if obj["kind"] == "ConfigMap" else core.create_namespaced_secret
            create(NS, body)
    root = min((m["mountPath"] for m in mounts), key=len)
    listing = ("cd " + root + " && /bin/busybox find . -mindepth 1 | /bin/busybox sort | while read -r f; do "
               "if [ -L \"$f\" ]; then echo \"$f L $(/bin/busybox readlink \"$f\")\"; elif [ -d \"$f\" ]; then echo \"$f D\"; "
               "else echo \"$f F\"; fi; done; echo END; exec sleep 3600")
    run_pod(core, "volumes", real["nodes"][1], listing, volumes=volumes, mounts=mounts)
    logs = wait_until("the listing", lambda: "END" in (t := core.read_namespaced_pod_log("volumes", NS)) and t, 30)
    stamp = re.compile(r"\.\.\d{4}_\d\d_\d\d_\d\d_\d\d_\d\d\.\d+")
    real_view = sorted(stamp.sub("..STAMP", line.removeprefix("./")) for line in logs.splitlines() if line != "END")
    ours = lay_out({**spec, "volumes": volumes, "containers": [{**ctr, "volumeMounts": mounts}]}, "categraf", objs, tmp_path / "view")
    assert "..data L ..STAMP" in real_view and "input.prometheus D" in real_view, real_view
    assert tree(ours / root.lstrip("/")) == real_view


@pytest.fixture(scope="module")
def scraper_token(real, api, core, tmp_path_factory) -> str:
    """A token of a ServiceAccount bound to exactly the kubelet_auth role's ClusterRole rules."""
    [role] = [o for o in render("kubelet_auth", tmp_path_factory.mktemp("ka")) if o["kind"] == "ClusterRole"
              and not any("nodes/proxy" in r.get("resources", []) for r in o["rules"])]
    rbac = client.RbacAuthorizationV1Api(api)
    name = f"lab-real-scraper-{uuid.uuid4().hex[:6]}"
    rbac.create_cluster_role({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                              "metadata": {"name": name}, "rules": role["rules"]})
    rbac.create_cluster_role_binding({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": "scraper", "namespace": NS}]})
    for sa in ("scraper", "nobody"):
        core.create_namespaced_service_account(NS, {"metadata": {"name": sa}})

    def tok(sa: str) -> str:
        return core.create_namespaced_service_account_token(sa, NS, client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600))).status.token
    yield {"scraper": tok("scraper"), "nobody": tok("nobody")}
    rbac.delete_cluster_role_binding(name)
    rbac.delete_cluster_role(name)


def kubelet_get(lab, path: str, token: str | None, node_ip: str = "10.250.0.21") -> tuple[int, str]:
    ctx = ssl.create_default_context(cafile=lab["ca"])  # verified against the cluster CA, as Prometheus does
    req = urllib.request.Request(f"https://{node_ip}:10250{path}", headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=10, context=ctx) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


@pytest.mark.parametrize("path", ["/metrics", "/metrics/cadvisor", "/metrics/probes", "/metrics/resource"])
def test_the_kubelet_serves_its_metrics_to_the_kubelet_auth_rules_only(lab, writer, scraper_token, path):
    assert kubelet_get(lab, path, scraper_token["scraper"])[0] == 200
    assert kubelet_get(lab, path, None)[0] == 401
    assert kubelet_get(lab, path, scraper_token["nobody"])[0] == 403


def test_nodes_proxy_paths_stay_closed_without_the_opt_in(lab, scraper_token):
    for path in ("/pods", "/runningpods/", "/configz"):
        assert kubelet_get(lab, path, scraper_token["scraper"])[0] == 403, path


def test_cadvisor_series_carry_pod_namespace_and_container(lab, writer, scraper_token):
    """Without the kubelet's --containerd flag they would not: the recording rules and container alerts
    group by these labels."""
    def series():
        body = kubelet_get(lab, "/metrics/cadvisor", scraper_token["scraper"])[1]
        names = ("container_cpu_usage_seconds_total{", "container_memory_working_set_bytes{")
        return [line for line in body.splitlines() if line.startswith(names)
                and f'namespace="{NS}"' in line and 'pod="writer"' in line and 'container="main"' in line]
    found = wait_until("cAdvisor series of the writer pod", lambda: len({s.split("{")[0] for s in series()}) == 2 and series(), 60)
    assert found


def test_the_node_exporter_role_runs_on_the_real_nodes(lab, real, tmp_path):
    """The role's own DaemonSet, image quay.io/prometheus/node-exporter as the lab built it, in a namespace of
    its own (the kwok nodes' exporters are host processes of the lab)."""
    ns = "lab-real-ne"
    kubectl = [lab["kubectl"], "--kubeconfig", lab["kubeconfig"]]
    # Another port: a node-exporter DaemonSet left installed by an earlier test may hold :9100 on this node.
    objs = render("node_exporter", tmp_path, node_exporter_namespace=ns, node_exporter_port=19100)
    ds = next(o for o in objs if o["kind"] == "DaemonSet")
    ds["spec"]["template"]["spec"]["nodeSelector"] = {"kubernetes.io/hostname": real["nodes"][1]}
    manifest = tmp_path / "ne.yaml"
    manifest.write_text(yaml.safe_dump_all([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}] +
                                           [o for o in objs if o.get("metadata", {}).get("namespace") == ns]))
    res = subprocess.run([*kubectl, "apply", "-f", str(manifest)], capture_output=True, text=True, check=False)
    try:
        assert res.returncode == 0, res.stderr
        wait_until("node-exporter Ready on the real node", lambda: subprocess.run(
            [*kubectl, "-n", ns, "get", "ds", ds["metadata"]["name"], "-o", "jsonpath={.status.numberReady}"],
            capture_output=True, text=True, check=False).stdout == "1", 60)
        port = ds["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
        with urllib.request.urlopen(f"http://10.250.0.22:{port}/metrics", timeout=10) as resp:
            body = resp.read().decode()
        assert "node_cpu_seconds_total" in body and "node_filesystem_avail_bytes" in body
    finally:
        subprocess.run([*kubectl, "delete", "namespace", ns, "--wait=false"], capture_output=True, check=False)
