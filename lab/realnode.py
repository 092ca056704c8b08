"""The lab's real nodes: a kubelet with its own containerd and runc per node, each in its own network
namespace (node address on the lab bridge, pods on a CNI bridge inside it) and its own mount namespace
(its own /var/log, so neither kubelet sees or cleans the other's log files), with its own cgroup root.
Images are OCI tars the lab writes from binaries it built (lab/oci_image.py) and imports into each
node's containerd. Facts behind every setting: ../shared/lab-notes/real-node.md. Standard library only.

Real nodes carry the taint unimon.io/real-node=true:NoSchedule, so only pods that tolerate it land there
(the test workloads in tests/integration/test_real_nodes.py); the kwok nodes keep serving everything else.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import labctl as lab
import oci_image

# name, network namespace, node address, pod subnet (routed by the other node and the host)
REAL_NODES = [("lab-real-1", "unimon-r1", "10.250.0.21", "10.251.1.0/24"),
              ("lab-real-2", "unimon-r2", "10.250.0.22", "10.251.2.0/24")]
REAL = lab.STATE / "real"
RUN = Path("/run/unimon-lab")          # sockets and containerd state: short paths (socket length limit)
MNTNS = RUN / "mntns"                  # persistent mount namespaces, one file per node
PAUSE_REF = "lab.local/pause:v1"
BUSYBOX_REF = "lab.local/busybox:v1"
DEBS = {"containerd": "/usr/bin/containerd", "runc": "/usr/sbin/runc",
        "containernetworking-plugins": "/usr/lib/cni/bridge", "busybox-static": "/bin/busybox"}
CGROUP_V1 = Path("/sys/fs/cgroup")
KUBELET_CLIENT = "unimon-lab-apiserver-kubelet-client"  # CN of labctl's apiserver-kubelet-client


def images() -> dict[str, dict]:
    """Image reference -> how to build it. Component images carry the exact references the roles render."""
    v = lab.V
    bb = Path("/bin/busybox")
    out = {
        PAUSE_REF: {"files": {"/bin/busybox": bb}, "entrypoint": ["/bin/busybox", "sleep", "2147483647"]},
        BUSYBOX_REF: {"files": {"/bin/busybox": bb},
                      "links": {f"/bin/{n}": "busybox" for n in ("sh", "echo", "printf", "head", "tr", "sleep", "cat", "ls", "yes", "dd")},
                      "entrypoint": ["/bin/sh"]},
    }
    # (reference, path in the image, lab binary, version key): each binary where the upstream image has it, so
    # the roles' args-only containers start it as the upstream entrypoint would.
    operator = v['PROMETHEUS_OPERATOR_VERSION']
    for ref, path, name, key in [
        (f"quay.io/prometheus/node-exporter:{v['NODE_EXPORTER_VERSION']}", "/bin/node_exporter", "node_exporter",
         "NODE_EXPORTER_VERSION"),
        (f"quay.io/prometheus-operator/prometheus-operator:{operator}", "/bin/operator", "prometheus-operator",
         "PROMETHEUS_OPERATOR_VERSION"),
        (f"quay.io/prometheus-operator/prometheus-config-reloader:{operator}", "/bin/prometheus-config-reloader",
         "prometheus-config-reloader", "PROMETHEUS_OPERATOR_VERSION"),
        (f"quay.io/prometheus/prometheus:{prometheus_tag(v['PROMETHEUS_VERSION'])}", "/bin/prometheus", "prometheus",
         "PROMETHEUS_VERSION"),
        (f"quay.io/prometheus/alertmanager:{v['ALERTMANAGER_VERSION']}", "/bin/alertmanager", "alertmanager",
         "ALERTMANAGER_VERSION"),
        (f"registry.k8s.io/kube-state-metrics/kube-state-metrics:{v['KUBE_STATE_METRICS_VERSION']}",
         "/kube-state-metrics", "kube-state-metrics", "KUBE_STATE_METRICS_VERSION"),
        (f"registry.k8s.io/metrics-server/metrics-server:{v['METRICS_SERVER_VERSION']}", "/metrics-server",
         "metrics-server", "METRICS_SERVER_VERSION"),
    ]:
        out[ref] = {"files": {path: lab.BIN / f"{name}-{v[key]}"}, "entrypoint": [path], "user": "65534"}
    return out


def prometheus_tag(module_version: str) -> str:
    """The release tag of a Prometheus Go module version: v0.309.1 is v3.9.1."""
    _major, minor, patch = module_version.lstrip("v").split(".")
    return f"v{int(minor) // 100}.{int(minor) % 100}.{patch}"


def log(msg: str) -> None:
    lab.log(msg)


def need_debs() -> None:
    missing = [p for p, path in DEBS.items() if not Path(path).exists()]
    if not missing:
        return
    log(f"installing Debian packages {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *missing]):
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if res.returncode:
            sys.exit(f"lab: real nodes need the Debian packages {', '.join(missing)}; `{' '.join(cmd)}` failed:\n"
                     f"{res.stdout[-1500:]}{res.stderr[-1500:]}")


def build_images() -> dict[str, Path]:
    out = {}
    for ref, spec in images().items():
        name = ref.replace("/", "_").replace(":", "_")
        tar = lab.CACHE / "images" / f"{name}.tar"
        if not tar.exists():
            missing = [str(p) for p in spec["files"].values() if isinstance(p, Path) and not p.exists()]
            if missing:
                sys.exit(f"lab: image {ref} needs {', '.join(missing)}; run lab/build.sh")
            oci_image.write_image(tar, ref, spec["files"], spec["entrypoint"], user=spec.get("user", ""),
                                  links=spec.get("links"))
            log(f"image {ref} written to {tar}")
        out[ref] = tar
    return out


# ---------------------------------------------------------------- PKI
def make_pki() -> None:
    os.chdir(lab.PKI)
    for name, _ns, ip, _cidr in REAL_NODES:
        if not Path(f"node-{name}.crt").exists():
            # One certificate serves the kubelet's port and identifies it to the API server (NodeRestriction).
            Path(f"node-{name}.ext").write_text(f"subjectAltName=IP:{ip},DNS:{name}\n"
                                                "extendedKeyUsage=serverAuth,clientAuth\n")
            lab.sign(f"node-{name}", f"/O=system:nodes/CN=system:node:{name}", f"node-{name}.ext")
    os.chdir(lab.HERE)


# ---------------------------------------------------------------- namespaces and cgroups
def cgroup_dirs(node: str) -> list[Path]:
    return [d / node for d in CGROUP_V1.iterdir() if d.is_dir() and (d / "cgroup.procs").exists()
            and d.name != "unified"]


def cgroups_up(node: str) -> None:
    """The kubelet refuses a cgroupRoot that does not exist in every hierarchy; cpuset needs its cpus/mems."""
    for d in cgroup_dirs(node):
        d.mkdir(exist_ok=True)
        if d.parent.name == "cpuset":
            for f in ("cpuset.cpus", "cpuset.mems"):
                if not (d / f).read_text().strip():
                    (d / f).write_text((d.parent / f).read_text())


def cgroups_down(node: str) -> None:
    """Kill what is left in the node's cgroups (containers whose shim died), then remove them, leaves first."""
    for d in cgroup_dirs(node):
        if not d.exists():
            continue
        subs = sorted((p for p in d.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True)
        for cg in [*subs, d]:
            for pid in (cg / "cgroup.procs").read_text().split() if (cg / "cgroup.procs").exists() else []:
                try:
                    os.kill(int(pid), 9)
                except OSError:
                    pass
        for cg in [*subs, d]:
            for _attempt in range(20):
                try:
                    cg.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)


def net_up(idx: int, name: str, ns: str, ip: str, cidr: str) -> None:
    if lab.run("ip", "netns", "pids", ns, check=False).returncode != 0:
        lab.join_bridge(ns, ip, f"unimon-r{idx}h", f"unimon-r{idx}n")
        # Forwarding inside the node's own namespace only: the machine's setting is left alone.
        lab.run("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        # Service IPs route nowhere (no kube-proxy): in-cluster clients reach the API server through this.
        lab.run("ip", "netns", "exec", ns, "iptables", "-t", "nat", "-A", "PREROUTING", "-d", "10.96.0.1/32", "-p", "tcp",
                "--dport", "443", "-j", "DNAT", "--to-destination", f"{lab.HOST_IP}:6443", check=False)
    # Pod subnets: the host, the kwok nodes, the fake pods' namespace and the other node reach them through the
    # node's address on the bridge (the host does not forward, so every namespace needs its own route).
    lab.run("ip", "route", "replace", cidr, "via", ip)
    for other_ns in [n for _name, n, _ip in lab.NODES] + [lab.PODS_NS]:
        lab.run("ip", "-n", other_ns, "route", "replace", cidr, "via", ip, check=False)
    for other, _ons, oip, ocidr in REAL_NODES:
        if other != name:
            lab.run("ip", "-n", ns, "route", "replace", ocidr, "via", oip, check=False)
    # Fake pod IPs: refused at once by the fake pods' namespace, as from the host.
    lab.run("ip", "-n", ns, "route", "replace", lab.POD_CIDR, "via", lab.PODS_NS_IP, check=False)


def mntns_up(name: str) -> Path:
    """A persistent mount namespace per node, where the node's own directory is mounted on /var/log."""
    MNTNS.mkdir(parents=True, exist_ok=True)
    if "unimon-lab/mntns" not in Path("/proc/self/mountinfo").read_text():
        lab.run("mount", "--bind", str(MNTNS), str(MNTNS))
        lab.run("mount", "--make-private", str(MNTNS))
    nsfile = MNTNS / name
    varlog = REAL / name / "varlog"
    varlog.mkdir(parents=True, exist_ok=True)
    if nsfile.exists() and lab.run("nsenter", f"--mount={nsfile}", "true", check=False).returncode == 0:
        return nsfile
    nsfile.touch()
    # Private from the host (the /var/log bind and the kubelet's volume mounts stay in), then shared inside:
    # the runtime refuses HostToContainer propagation (node-exporter's rootfs mount) on a private "/".
    lab.run("unshare", f"--mount={nsfile}", "--propagation", "private", "sh", "-c",
            f"mount --bind {varlog} /var/log && mount --make-rshared /")
    return nsfile


def in_node(name: str, ns: str, cmd: list[str]) -> list[str]:
    return ["nsenter", f"--mount={MNTNS / name}", f"--net=/run/netns/{ns}", "--", *cmd]


# ---------------------------------------------------------------- containerd, kubelet
CONTAINERD_CONFIG = """version = 2
root = "{root}"
state = "{state}"
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "{pause}"
    netns_mounts_under_state_dir = true
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    disable_hugetlb_controller = true
    tolerate_missing_hugetlb_controller = true
    # No CAP_SYS_RESOURCE here: runc cannot set a negative oom_score_adj, which every sandbox asks for.
    restrict_oom_score_adj = true
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          SystemdCgroup = false
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "{cni}"
"""


def kubelet_config(name: str, ip: str, d: Path, sock: Path) -> dict:
    pki = lab.PKI
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
        "address": ip, "port": 10250, "readOnlyPort": 0, "healthzBindAddress": "127.0.0.1", "healthzPort": 10248,
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True, "cacheTTL": "10s"},
                           "x509": {"clientCAFile": str(pki / "ca.crt")}},
        "authorization": {"mode": "Webhook", "webhook": {"cacheAuthorizedTTL": "10s", "cacheUnauthorizedTTL": "10s"}},
        "tlsCertFile": str(pki / f"node-{name}.crt"), "tlsPrivateKeyFile": str(pki / f"node-{name}.key"),
        "cgroupDriver": "cgroupfs", "cgroupRoot": f"/{name}", "cgroupsPerQOS": True, "enforceNodeAllocatable": ["pods"],
        "failCgroupV1": False, "failSwapOn": False,
        "containerRuntimeEndpoint": f"unix://{sock}", "staticPodPath": str(d / "manifests"),
        "containerLogMaxSize": "10Mi", "containerLogMaxFiles": 3, "clusterDomain": "cluster.local",
        "resolvConf": "/etc/resolv.conf", "maxPods": 30, "serializeImagePulls": False,
        # Image GC off: the lab's images exist only locally and must never be collected.
        "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%",
                         "nodefs.inodesFree": "1%"},
        "makeIPTablesUtilChains": False,
        "nodeStatusReportFrequency": "10s",
    }


def node_up(idx: int, name: str, ns: str, ip: str, cidr: str, tars: dict[str, Path]) -> None:
    d = REAL / name
    run_dir = RUN / name
    for sub in ("containerd", "cni/net.d", "cni-ipam", "kubelet", "manifests"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    sock = run_dir / "containerd.sock"
    net_up(idx, name, ns, ip, cidr)
    mntns_up(name)
    cgroups_up(name)
    gw = cidr.rsplit(".", 1)[0] + ".1"
    (d / "cni/net.d/10-unimon.conflist").write_text(json.dumps({
        "cniVersion": "1.0.0", "name": "unimon-pods", "plugins": [
            # isGateway inside the node's namespace: it turns on forwarding there only.
            {"type": "bridge", "bridge": "cni0", "isGateway": True, "isDefaultGateway": True, "ipMasq": False,
             "hairpinMode": True,
             "ipam": {"type": "host-local", "dataDir": str(d / "cni-ipam"),
                      "ranges": [[{"subnet": cidr, "gateway": gw, "rangeStart": cidr.rsplit(".", 1)[0] + ".10"}]]}},
            {"type": "loopback"}]}, indent=1))
    (d / "containerd.toml").write_text(CONTAINERD_CONFIG.format(
        root=d / "containerd", state=run_dir / "state", sock=sock, pause=PAUSE_REF, cni=d / "cni/net.d"))
    if not lab.pid_of(f"containerd-{name}"):  # a socket left by a lab that did not stop would pass the wait below
        sock.unlink(missing_ok=True)
    lab.start(f"containerd-{name}", in_node(name, ns, ["containerd", "--config", str(d / "containerd.toml")]))
    lab.wait_for(f"containerd on {name}", sock.exists, 30)
    ctr = ["ctr", "-a", str(sock), "-n", "k8s.io"]
    have = lab.run(*ctr, "images", "ls", "-q", check=False).stdout.split()
    for ref, tar in tars.items():
        if ref not in have:
            res = lab.run(*ctr, "images", "import", str(tar), check=False)
            if res.returncode:
                sys.exit(f"lab: importing {ref} into {name}'s containerd failed: {res.stderr.strip()}")
    cfg = d / "kubelet-config.json"
    cfg.write_text(json.dumps(kubelet_config(name, ip, d, sock), indent=1))
    kcfg = lab.PKI / f"node-{name}.kubeconfig"
    if not kcfg.exists():
        lab.kubeconfig_for(f"node-{name}", f"https://{lab.HOST_IP}:6443")
    lab.start(f"kubelet-{name}", in_node(name, ns, [
        lab.binary("kubelet", "KUBERNETES_VERSION"), f"--config={cfg}", f"--kubeconfig={kcfg}",
        f"--hostname-override={name}", f"--node-ip={ip}", f"--root-dir={d / 'kubelet'}",
        # Without this cAdvisor does not find containerd's containers, and its series lack pod labels.
        f"--containerd={sock}", "--v=1"]))


def node_ready(name: str) -> bool:
    try:
        node = lab.http(f"{lab.API}/api/v1/nodes/{name}")
    except (OSError, ValueError):
        return False
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node.get("status", {}).get("conditions", []))


def tail(log_name: str, lines: int = 15) -> str:
    path = lab.LOGS / log_name
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def wait_ready(name: str, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if node_ready(name):
            return
        if not lab.pid_of(f"kubelet-{name}"):
            break
        time.sleep(0.5)
    sys.exit(f"lab: real node {name} is not Ready after {timeout:.0f}s.\n--- kubelet (last lines of "
             f"{lab.LOGS}/kubelet-{name}.log)\n{tail(f'kubelet-{name}.log')}\n--- containerd\n"
             f"{tail(f'containerd-{name}.log')}")


def untaint(name: str) -> None:
    """Real nodes take every pod now; a Node registered by an older lab kept the taint it registered with."""
    node = lab.http(f"{lab.API}/api/v1/nodes/{name}")
    taints = node["spec"].get("taints") or []
    keep = [t for t in taints if t["key"] != "unimon.io/real-node"]
    if keep != taints:
        lab.http(f"{lab.API}/api/v1/nodes/{name}", "PATCH", {"spec": {"taints": keep or None}},
                 content_type="application/merge-patch+json")


def rbac() -> None:
    """The API server's kubelet client may use the kubelet API (logs, exec), as kubeadm grants it."""
    obj = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
           "metadata": {"name": "unimon-lab-apiserver-kubelet-client"},
           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:kubelet-api-admin"},
           "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": KUBELET_CLIENT}]}
    lab.create_once(f"{lab.API}/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", obj)


def up() -> int:
    t0 = time.time()
    need_debs()
    if not lab.up_url(lab.API + "/readyz"):
        sys.exit("lab: the control plane is not up; run make lab-up first")
    cmdline = " ".join(open(f"/proc/{lab.pid_of('kube-apiserver')}/cmdline").read().split("\0"))
    if "--kubelet-client-certificate" not in cmdline:
        sys.exit("lab: this API server was started without a kubelet client; restart the lab (make lab-down lab-up)")
    make_pki()
    tars = build_images()
    rbac()
    for idx, (name, ns, ip, cidr) in enumerate(REAL_NODES, 1):
        node_up(idx, name, ns, ip, cidr, tars)
    for name, *_rest in REAL_NODES:
        wait_ready(name)
        untaint(name)
    log(f"real nodes Ready in {time.time() - t0:.1f}s: {', '.join(n for n, *_rest in REAL_NODES)}")
    return 0


def down(delete_nodes: bool = True) -> int:
    for name, ns, _ip, cidr in REAL_NODES:
        lab.stop(f"kubelet-{name}")
        lab.stop(f"containerd-{name}")
        cgroups_down(name)
        # Shims left by containerd: their parent is gone; their command line names this node's socket.
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                if (proc / "comm").read_text().startswith("containerd-shim") and str(RUN / name) in (proc / "cmdline").read_text():
                    os.kill(int(proc.name), 9)
            except OSError:
                pass
        nsfile = MNTNS / name
        if nsfile.exists():
            lab.run("umount", "-l", str(nsfile), check=False)
            nsfile.unlink(missing_ok=True)
        lab.run("ip", "route", "del", cidr, check=False)
        lab.run("ip", "netns", "del", ns, check=False)
        shutil.rmtree(RUN / name, ignore_errors=True)
        if delete_nodes:
            try:
                lab.http(f"{lab.API}/api/v1/nodes/{name}", "DELETE", timeout=5)
            except (OSError, ValueError):
                pass
    if MNTNS.exists() and not any(MNTNS.iterdir()):
        lab.run("umount", "-l", str(MNTNS), check=False)
    return 0


def status() -> list[tuple[str, bool, int]]:
    """(node, Ready, resident memory in MiB of its kubelet, containerd and containers)."""
    out = []
    for name, *_rest in REAL_NODES:
        rss = 0
        pids = [lab.pid_of(f"kubelet-{name}"), lab.pid_of(f"containerd-{name}")]
        for d in cgroup_dirs(name):
            if d.parent.name == "memory" and (d / "memory.usage_in_bytes").exists():
                rss += int((d / "memory.usage_in_bytes").read_text()) // 2**20
        for pid in [p for p in pids if p]:
            try:
                rss += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 2**20
            except OSError:
                pass
        out.append((name, node_ready(name) and all(pids), rss))
    return out
