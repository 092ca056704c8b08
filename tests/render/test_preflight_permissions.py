"""The preflight role reviews, before any write, the permissions each role needs (roles/preflight/vars/main.yml).
Keep that list honest: every object every role renders is covered, in the right scope, and every
(group, resource, kind) it names is what the real API server (discovery) and the operator CRDs say."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from manifests import load_all
from test_manifests import ROLES

REPO = Path(__file__).resolve().parents[2]
PERMS = yaml.safe_load((REPO / "roles" / "preflight" / "vars" / "main.yml").read_text())["_preflight_permissions"]
DEFAULT_ROLES = yaml.safe_load((REPO / "roles" / "preflight" / "defaults" / "main.yml").read_text())["preflight_roles"]


def scope_of(obj: dict, cluster_scoped: set) -> str:
    if (group_of(obj), obj["kind"]) in cluster_scoped:
        return "cluster"
    return "kube-system" if obj["metadata"].get("namespace") == "kube-system" else "role"


def group_of(obj: dict) -> str:
    return obj["apiVersion"].rsplit("/", 1)[0] if "/" in obj["apiVersion"] else ""


def entry_scope(entry: dict) -> str:
    return "cluster" if entry.get("cluster") else ("kube-system" if entry.get("namespace") == "kube-system" else "role")


def uncovered(objs: list[dict], entries: list[dict], cluster_scoped: set) -> list[str]:
    have = {(e["group"], e.get("kind"), entry_scope(e)) for e in entries}
    return sorted({f"{group_of(o) or 'core'}/{o['kind']} ({scope_of(o, cluster_scoped)})" for o in objs
                   if (group_of(o), o["kind"], scope_of(o, cluster_scoped)) not in have})


@pytest.fixture(scope="module")
def discovery(lab) -> dict:
    """(group, kind) -> (resource, namespaced): built-ins from the lab API server, operator kinds from its CRDs."""
    out = subprocess.run([lab["kubectl"], "--kubeconfig", lab["kubeconfig"], "api-resources", "--no-headers",
                          "-o", "wide"], capture_output=True, text=True, check=True).stdout
    found = {}
    for line in out.splitlines():
        cols = line.split()
        # NAME [SHORTNAMES] APIVERSION NAMESPACED KIND VERBS [CATEGORIES]
        i = next(n for n, c in enumerate(cols) if c in ("true", "false"))
        api_version = cols[i - 1]
        group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
        found[(group, cols[i + 1])] = (cols[0], cols[i] == "true")
    crd_dir = sorted((Path(lab["state"]).parent / "crds").glob("prometheus-operator-*"))[-1]
    for f in crd_dir.glob("*.yaml"):
        for crd in load_all(f):
            spec = crd["spec"]
            found[(spec["group"], spec["names"]["kind"])] = (spec["names"]["plural"], spec["scope"] == "Namespaced")
    return found


def test_every_role_site_runs_has_permissions_listed():
    assert set(ROLES) <= set(PERMS), f"no permissions listed for {sorted(set(ROLES) - set(PERMS))}"
    assert set(DEFAULT_ROLES) <= set(PERMS)


@pytest.mark.parametrize("role", ROLES)
def test_every_rendered_object_is_covered(render, discovery, role):
    objs = [o for f in sorted(render(role).glob("*.yaml")) for o in load_all(f)]
    assert objs, f"{role} rendered nothing"
    cluster_scoped = {k for k, (_resource, namespaced) in discovery.items() if not namespaced}
    missing = uncovered(objs, PERMS[role], cluster_scoped)
    assert not missing, f"{role} writes kinds preflight does not review: {missing}"


@pytest.mark.parametrize("role", ROLES)
def test_shared_namespace_and_crds_are_covered(role):
    """Objects not rendered from templates: the shared Namespace (k8s_apply ensure_namespace) and CRDs."""
    task_dir = REPO / "roles" / role / "tasks"
    tasks = "".join(p.read_text() for p in task_dir.glob("*.yml"))
    kinds = {e.get("kind") for e in PERMS[role]}
    if "tasks_from: namespace" in tasks:
        assert "Namespace" in kinds, f"{role} creates the shared namespace"
    writes_crds = (task_dir / "crds.yml").is_file() or any(
        "CustomResourceDefinition" in json.dumps(task["kubernetes.core.k8s"])
        for f in task_dir.glob("*.yml") for task in _tasks(yaml.safe_load(f.read_text()) or [])
        if "kubernetes.core.k8s" in task)
    if writes_crds:
        assert "CustomResourceDefinition" in kinds, f"{role} applies CRDs"


def _tasks(items: list) -> list[dict]:
    """Every task, blocks opened."""
    out = []
    for item in items:
        out.append(item)
        for key in ("block", "rescue", "always"):
            out += _tasks(item.get(key) or [])
    return out


@pytest.mark.parametrize("role", sorted(PERMS))
def test_entries_name_real_resources_in_the_right_scope(discovery, role):
    for e in PERMS[role]:
        if "kind" not in e:  # a subresource review (serviceaccounts/token)
            assert e.get("subresource") and e.get("verbs"), e
            continue
        if (e["group"], e["kind"]) not in discovery and e["group"] == "kubevirt.io":
            continue  # the KubeVirt CRDs are only in a lab where a test made stand-ins of them
        resource, namespaced = discovery[(e["group"], e["kind"])]
        assert e["resource"] == resource, f"{role}: {e['kind']} is {resource}, not {e['resource']}"
        assert bool(e.get("cluster")) == (not namespaced), f"{role}: {e['kind']} scope"


def test_the_coverage_check_catches_a_missing_kind():
    objs = [{"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "x", "namespace": "unimon"}},
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "y", "namespace": "kube-system"}}]
    entries = [{"group": "", "resource": "services", "kind": "Service"}]
    assert uncovered(objs, entries, set()) == ["apps/DaemonSet (role)", "core/Service (kube-system)"]
