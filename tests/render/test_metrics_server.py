"""metrics_server's rendered objects fit together the way the API server and metrics-server will use them:
the APIService names the Service that is rendered (name, namespace, port), that Service's targetPort is the
container port metrics-server listens on (--secure-port), which the probes use too; bindings name the
ServiceAccount the Deployment runs as and ClusterRoles that exist (or the built-in system:auth-delegator and
extension-apiserver-authentication-reader); no rule grants nodes/proxy. Every flag is one the real
metrics-server binary of the lab accepts (its --help), and the variants (serving certificate with caBundle,
kubelet CA, insecure kubelet TLS, another port, a mirror registry) pass the lab API server's schema
validation (server-side dry run)."""
from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest

from lab_versions import lab_versions
from manifests import load_all

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
PEM = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUV2nZ\n-----END CERTIFICATE-----\n"
TLS = {"metrics_server_tls_secret": "metrics-server-tls", "metrics_server_ca_bundle": PEM}


@pytest.fixture(scope="module")
def render_ms(tmp_path_factory):
    """render_ms(**vars) -> ({kind/name: object}, directory)."""
    def _render(**extra):
        out = tmp_path_factory.mktemp("metrics-server")
        res = subprocess.run([str(BIN / "ansible-playbook"), str(HERE / "render.yml"), "-e", "role=metrics_server",
                              "-e", f"out={out}", "-e", json.dumps(extra)], capture_output=True, text=True, check=False)
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
        objs = {f"{o['kind']}/{o['metadata']['name']}": o for f in sorted(out.glob("*.yaml")) for o in load_all(f)}
        return objs, out
    return _render


def container(objs) -> dict:
    return objs["Deployment/metrics-server"]["spec"]["template"]["spec"]["containers"][0]


def args_of(objs) -> dict[str, str]:
    out = {}
    for arg in container(objs)["args"]:
        key, value = arg.split("=", 1) if "=" in arg else (arg, "")
        out[key] = value
    return out


def port_number(c: dict, ref) -> int:
    """A port reference (number or name) resolved against the container's ports, as the kubelet does."""
    if isinstance(ref, int):
        return ref
    named = [p["containerPort"] for p in c["ports"] if p["name"] == ref]
    assert len(named) == 1, f"no container port named {ref}"
    return named[0]


def check_wiring(objs) -> None:
    api = objs["APIService/v1beta1.metrics.k8s.io"]["spec"]
    assert (api["group"], api["version"]) == ("metrics.k8s.io", "v1beta1")
    assert api["groupPriorityMinimum"] == 100 and api["versionPriority"] == 100
    svc = objs[f"Service/{api['service']['name']}"]
    assert svc["metadata"]["namespace"] == api["service"]["namespace"]
    svc_ports = [p for p in svc["spec"]["ports"] if p["port"] == api["service"]["port"]]
    assert len(svc_ports) == 1, f"Service {svc['metadata']['name']} has no port {api['service']['port']}"
    svc_port = svc_ports[0]
    dep = objs["Deployment/metrics-server"]
    assert dep["metadata"]["namespace"] == svc["metadata"]["namespace"]
    pod = dep["spec"]["template"]
    assert svc["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert dep["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    c = container(objs)
    secure = int(args_of(objs)["--secure-port"])
    assert port_number(c, svc_port["targetPort"]) == secure
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/livez")):
        get = c[probe]["httpGet"]
        assert (get["path"], get["scheme"], port_number(c, get["port"])) == (path, "HTTPS", secure)
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert mounts["/tmp"] in {v["name"] for v in pod["spec"]["volumes"]}
    assert args_of(objs)["--cert-dir"] == "/tmp"


def check_rbac(objs) -> None:
    dep = objs["Deployment/metrics-server"]
    sa = objs[f"ServiceAccount/{dep['spec']['template']['spec']['serviceAccountName']}"]
    me = {"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": sa["metadata"]["namespace"]}
    builtin = {("ClusterRole", "system:auth-delegator"), ("Role", "extension-apiserver-authentication-reader")}
    bindings = [o for o in objs.values() if o["kind"] in ("ClusterRoleBinding", "RoleBinding")]
    assert len(bindings) == 3
    for b in bindings:
        assert b["subjects"] == [me], b["metadata"]["name"]
        ref = (b["roleRef"]["kind"], b["roleRef"]["name"])
        assert ref in builtin or f"{ref[0]}/{ref[1]}" in objs, f"{b['metadata']['name']} binds a missing {ref}"
        if ref[0] == "Role":
            assert b["metadata"]["namespace"] == "kube-system"
    for role in (o for o in objs.values() if o["kind"] == "ClusterRole"):
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] and "*" not in rule["resources"]
            assert "nodes/proxy" not in rule["resources"], role["metadata"]["name"]
    server = objs["ClusterRole/unimon-metrics-server"]["rules"]
    assert {"apiGroups": [""], "resources": ["nodes/metrics"], "verbs": ["get"]} in server
    reader = objs["ClusterRole/unimon-aggregated-metrics-reader"]
    for verb in ("view", "edit", "admin"):
        assert reader["metadata"]["labels"][f"rbac.authorization.k8s.io/aggregate-to-{verb}"] == "true"
    assert reader["rules"] == [{"apiGroups": ["metrics.k8s.io"], "resources": ["nodes", "pods"],
                                "verbs": ["get", "list", "watch"]}]


@pytest.fixture(scope="module")
def metrics_server_flags(lab) -> set[str]:
    """The flags the lab's real metrics-server binary accepts."""
    binary = Path(lab["bin"]) / f"metrics-server-{_version()}"
    out = subprocess.run([str(binary), "--help"], capture_output=True, text=True, check=False)
    flags = {w.split("=")[0].rstrip(",") for line in (out.stdout + out.stderr).splitlines()
             for w in line.split() if w.startswith("--")}
    assert "--secure-port" in flags and "--kubelet-use-node-status-port" in flags, out.stdout[-1000:]
    return flags


def _version() -> str:
    return lab_versions()["METRICS_SERVER_VERSION"]


VARIANTS = {
    "defaults": {},
    "serving-certificate": TLS,
    "kubelet-ca": {"metrics_server_kubelet_ca_cert": PEM},
    "kubelet-insecure": {"metrics_server_kubelet_insecure_tls": True},
    "port-4443-no-priority": {"metrics_server_secure_port": 4443, "metrics_server_priority_class_name": ""},
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_objects_fit_together(render_ms, variant):
    objs = render_ms(**VARIANTS[variant])[0]
    check_wiring(objs)
    check_rbac(objs)


@pytest.mark.parametrize("variant", VARIANTS)
def test_flags_exist_in_the_real_binary(render_ms, metrics_server_flags, variant):
    objs = render_ms(**VARIANTS[variant])[0]
    unknown = sorted(set(args_of(objs)) - metrics_server_flags)
    assert not unknown, f"metrics-server {_version()} has no {unknown}"


@pytest.mark.parametrize("variant", VARIANTS)
def test_apiserver_accepts_every_variant(render_ms, lab, variant):
    out = render_ms(metrics_server_namespace="default", **VARIANTS[variant])[1]
    for f in sorted(out.glob("*.yaml")):
        res = subprocess.run([lab["kubectl"], "--kubeconfig", lab["kubeconfig"], "apply", "--server-side",
                              "--dry-run=server", "--field-manager=render-test", "--force-conflicts", "-f", str(f)],
                             capture_output=True, text=True, check=False)
        assert res.returncode == 0, f"{variant} {f.name}: {res.stderr}"


def test_defaults_verify_kubelets_and_skip_verifying_the_self_signed_serving_cert(render_ms):
    objs = render_ms()[0]
    args = args_of(objs)
    assert "--kubelet-insecure-tls" not in args and "--kubelet-certificate-authority" not in args
    assert "--tls-cert-file" not in args
    api = objs["APIService/v1beta1.metrics.k8s.io"]["spec"]
    assert api["insecureSkipTLSVerify"] is True and "caBundle" not in api
    assert args["--kubelet-use-node-status-port"] == ""
    assert args["--kubelet-preferred-address-types"] == "InternalIP,ExternalIP,Hostname"
    c = container(objs)
    assert c["image"] == "registry.k8s.io/metrics-server/metrics-server:v0.8.0"
    assert c["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]}}
    pod = objs["Deployment/metrics-server"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert objs["Deployment/metrics-server"]["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_serving_certificate_is_verified_by_the_aggregator(render_ms):
    objs = render_ms(**TLS)[0]
    api = objs["APIService/v1beta1.metrics.k8s.io"]["spec"]
    assert api["insecureSkipTLSVerify"] is False
    assert base64.b64decode(api["caBundle"]).decode() == PEM
    c = container(objs)
    pod = objs["Deployment/metrics-server"]["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v.get("secret", {}).get("secretName") == "metrics-server-tls")
    mount = next(m for m in c["volumeMounts"] if m["name"] == volume["name"])
    args = args_of(objs)
    assert args["--tls-cert-file"] == f"{mount['mountPath']}/tls.crt"
    assert args["--tls-private-key-file"] == f"{mount['mountPath']}/tls.key"


def test_kubelet_ca_reaches_the_flag(render_ms):
    objs = render_ms(metrics_server_kubelet_ca_cert=PEM)[0]
    cm = objs["ConfigMap/metrics-server-kubelet-ca"]
    key = next(iter(cm["data"]))
    assert cm["data"][key] == PEM
    pod = objs["Deployment/metrics-server"]["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v.get("configMap", {}).get("name") == cm["metadata"]["name"])
    mount = next(m for m in container(objs)["volumeMounts"] if m["name"] == volume["name"])
    assert args_of(objs)["--kubelet-certificate-authority"] == f"{mount['mountPath']}/{key}"
    assert "--kubelet-insecure-tls" not in args_of(objs)


def test_kubelet_insecure_is_opt_in(render_ms):
    objs = render_ms(metrics_server_kubelet_insecure_tls=True)[0]
    assert "--kubelet-insecure-tls" in args_of(objs)
    assert "ConfigMap/metrics-server-kubelet-ca" not in objs


def test_another_secure_port_moves_everything(render_ms):
    objs = render_ms(metrics_server_secure_port=4443, metrics_server_priority_class_name="")[0]
    assert args_of(objs)["--secure-port"] == "4443"
    assert container(objs)["ports"][0]["containerPort"] == 4443
    assert "priorityClassName" not in objs["Deployment/metrics-server"]["spec"]["template"]["spec"]


@pytest.mark.parametrize("breakage", ["secure-port", "apiservice-port", "apiservice-namespace", "probe-port"])
def test_the_wiring_check_catches_a_mismatch(render_ms, breakage):
    """The consistency check must fail on manifests that would not work (guards against a vacuous test)."""
    objs = render_ms()[0]
    c = container(objs)
    api = objs["APIService/v1beta1.metrics.k8s.io"]["spec"]
    if breakage == "secure-port":
        c["args"] = ["--secure-port=4443" if a.startswith("--secure-port") else a for a in c["args"]]
    elif breakage == "apiservice-port":
        api["service"]["port"] = 8443
    elif breakage == "apiservice-namespace":
        api["service"]["namespace"] = "kube-system"
    else:
        c["readinessProbe"]["httpGet"]["port"] = "metrics"
    with pytest.raises(AssertionError):
        check_wiring(objs)


def test_image_registry_override(render_ms):
    objs = render_ms(unimon_image_registry="mirror.example:5000/k8s")[0]
    assert container(objs)["image"] == "mirror.example:5000/k8s/metrics-server/metrics-server:v0.8.0"
    objs = render_ms(metrics_server_version="v0.8.1")[0]
    assert container(objs)["image"].endswith("/metrics-server:v0.8.1")
    assert objs["Deployment/metrics-server"]["metadata"]["labels"]["app.kubernetes.io/version"] == "v0.8.1"
