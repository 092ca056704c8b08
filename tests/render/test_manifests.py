"""Every role's rendered manifests: our labels on every object, least privilege in every ClusterRole,
and accepted by a real kube-apiserver's schema validation (server-side dry run, nothing stored)."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from manifests import load_all

ROLES = ["prometheus_operator", "prometheus", "node_exporter", "kube_state_metrics", "metrics_server", "alert_rules",
         "kubelet_auth", "kubevirt_monitoring", "categraf", "logging", "grafana"]
# Per-role overrides so every rendered object lands in a namespace the lab has.
NAMESPACE_VARS = {"kubevirt_monitoring": ["kubevirt_monitoring_kubevirt_namespace"]}
FORBIDDEN = {("", "nodes/proxy"), ("", "pods/exec"), ("", "pods/attach"), ("", "*")}


@pytest.mark.parametrize("role", ROLES)
def test_objects_carry_our_labels(render, role):
    objs = [o for f in sorted(render(role).glob("*.yaml")) for o in load_all(f)]
    assert objs, f"{role} rendered no objects"
    for obj in objs:
        labels = obj["metadata"].get("labels", {})
        assert labels.get("app.kubernetes.io/part-of") == "unimon", f"{obj['kind']}/{obj['metadata']['name']}"
        assert labels.get("app.kubernetes.io/managed-by") == "unimon.stack", f"{obj['kind']}/{obj['metadata']['name']}"


@pytest.mark.parametrize("role", ROLES)
def test_cluster_roles_grant_no_proxy_or_exec(render, role):
    for f in render(role).glob("*.yaml"):
        for obj in load_all(f):
            if obj["kind"] not in ("ClusterRole", "Role"):
                continue
            for rule in obj["rules"]:
                for group in rule.get("apiGroups", []):
                    for res in rule.get("resources", []):
                        assert (group, res) not in FORBIDDEN, f"{obj['metadata']['name']} grants {group}/{res}"


@pytest.fixture(scope="module")
def operator_crds(lab):
    """Custom resources are validated against the CRDs' schemas. The lab installs the operator's CRDs
    when it starts (its prometheus-operator needs them); install them here only if they are missing,
    and then take away only what this fixture installed."""
    crds = str(sorted((Path(lab["state"]).parent / "crds").glob("prometheus-operator-*"))[-1])
    kubectl = [lab["kubectl"], "--kubeconfig", lab["kubeconfig"]]
    present = subprocess.run(kubectl + ["get", "crd", "prometheuses.monitoring.coreos.com"],
                             capture_output=True, check=False).returncode == 0
    if not present:
        subprocess.run(kubectl + ["apply", "--server-side", "--force-conflicts", "--field-manager=render-test",
                                  "-f", crds], capture_output=True, check=True)
    subprocess.run(kubectl + ["wait", "--for=condition=Established", "crd", "--all", "--timeout=120s"],
                   capture_output=True, check=True)
    yield
    if not present:
        subprocess.run(kubectl + ["delete", "-f", crds, "--wait=true"], capture_output=True, check=False)


@pytest.mark.parametrize("role", ROLES)
def test_apiserver_accepts_manifests(render, lab, operator_crds, role):
    out = render(role, **{var: "default" for var in [f"{role}_namespace", *NAMESPACE_VARS.get(role, [])]})
    kubectl = lab["kubectl"]
    for f in sorted(out.glob("*.yaml")):
        res = subprocess.run([kubectl, "--kubeconfig", lab["kubeconfig"], "apply", "--server-side", "--dry-run=server",
                              "--field-manager=render-test", "--force-conflicts", "-f", str(f)],
                             capture_output=True, text=True, check=False)
        assert res.returncode == 0, f"{f.name}: {res.stderr}"
        assert "(server dry run)" in res.stdout


@pytest.mark.parametrize("period", [None, "20s"])
def test_operator_refreshes_the_kubelet_service_as_often_as_asked(render, period):
    """--kubelet-sync-period decides how soon a joining node's kubelet is scraped (the operator's default: 3m)."""
    out = render("prometheus_operator", **({"prometheus_operator_kubelet_sync_period": period} if period else {}))
    deploy = next(o for o in load_all(out / "operator.yaml") if o["kind"] == "Deployment")
    args = deploy["spec"]["template"]["spec"]["containers"][0]["args"]
    assert f"--kubelet-sync-period={period or '3m'}" in args
    assert "--kubelet-service=kube-system/kubelet" in args


def pod_specs(obj: dict) -> list[dict]:
    """The pod specs an object makes: workloads' templates, and the operator's Prometheus and Alertmanager
    resources, whose spec.securityContext becomes their pods'."""
    kind, spec = obj["kind"], obj.get("spec", {})
    if kind in {"Deployment", "DaemonSet", "StatefulSet", "Job"}:
        return [spec["template"]["spec"]]
    if kind == "CronJob":
        return [spec["jobTemplate"]["spec"]["template"]["spec"]]
    if kind in {"Pod", "Prometheus", "Alertmanager"}:
        return [spec]
    return []


@pytest.mark.parametrize("role", ROLES)
def test_every_pod_runs_under_the_runtime_default_seccomp_profile(render, role):
    """Pod Security's restricted level asks for it; the node agents (host network and host paths) too."""
    for obj in (o for f in sorted(render(role).glob("*.yaml")) for o in load_all(f)):
        for spec in pod_specs(obj):
            pod_level = (spec.get("securityContext") or {}).get("seccompProfile", {}).get("type")
            for container in spec.get("containers", []) + spec.get("initContainers", []):
                profile = (container.get("securityContext") or {}).get("seccompProfile", {}).get("type", pod_level)
                assert profile == "RuntimeDefault", f"{obj['kind']}/{obj['metadata']['name']} container {container['name']}"


@pytest.mark.parametrize("resources,want", [
    (None, ["--config-reloader-cpu-request=10m", "--config-reloader-memory-request=50Mi",
            "--config-reloader-cpu-limit=0", "--config-reloader-memory-limit=50Mi"]),
    ({"requests": {"cpu": "5m"}, "limits": {"cpu": "100m", "memory": "64Mi"}},
     ["--config-reloader-cpu-request=5m", "--config-reloader-memory-request=0",
      "--config-reloader-cpu-limit=100m", "--config-reloader-memory-limit=64Mi"]),
])
def test_config_reloader_resources_become_the_operator_flags(render, resources, want):
    """A key left out is "0" (no request or limit) for the operator; by default the sidecar has no CPU limit,
    whose operator default (10m) raised CPUThrottlingHigh for the lab's config-reloader on a real node."""
    extra = {"prometheus_operator_config_reloader_resources": resources} if resources else {}
    out = render("prometheus_operator", **extra)
    deploy = next(o for o in load_all(out / "operator.yaml") if o["kind"] == "Deployment")
    args = deploy["spec"]["template"]["spec"]["containers"][0]["args"]
    assert sorted(a for a in args if a.startswith("--config-reloader-")) == sorted(want)
