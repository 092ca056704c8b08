"""The one connection layer (plugins/module_utils/k8s_auth.py) on the lab's real kube-apiserver: options set
once through the action group reach kubernetes.core's modules and ours, impersonation is what the API server
authorizes and records, and a token with the CA, given as host / api_key / ca_cert, is enough for the
inventory plugin (no kubeconfig, as in an AWX job or a pod)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kubernetes import client

NS = "unimon-auth-test"
SA = "reader"
PLAY = "../tests/integration/playbooks/k8s_auth.yml"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def namespace(api, core):
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
    core.create_namespaced_service_account(NS, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=SA)))
    rbac = client.RbacAuthorizationV1Api(api)
    rbac.create_cluster_role(client.V1ClusterRole(
        metadata=client.V1ObjectMeta(name="unimon-auth-test-nodes"),
        rules=[client.V1PolicyRule(api_groups=[""], resources=["nodes"], verbs=["list"])]))
    rbac.create_cluster_role_binding(client.V1ClusterRoleBinding(
        metadata=client.V1ObjectMeta(name="unimon-auth-test-nodes"),
        role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="unimon-auth-test-nodes"),
        subjects=[client.RbacV1Subject(kind="ServiceAccount", name=SA, namespace=NS)]))
    yield NS
    rbac.delete_cluster_role_binding("unimon-auth-test-nodes")
    rbac.delete_cluster_role("unimon-auth-test-nodes")
    core.delete_namespace(NS)


def run(playbook, tmp_path, *args):
    extra = {"auth_namespace": NS, "auth_service_account": SA, "auth_dest": str(tmp_path / "token")}
    return playbook(PLAY, "-e", json.dumps(extra), *args)


def audit_events(lab, since: float) -> list[dict]:
    time.sleep(1.5)  # the apiserver writes audit events asynchronously
    with open(lab["audit_log"], encoding="utf-8") as fh:
        fh.seek(since)
        return [json.loads(line) for line in fh if line.strip()]


def test_group_defaults_reach_both_collections_modules(namespace, playbook, lab, tmp_path):
    res = run(playbook, tmp_path)
    assert res.rc == 0, res.out[-3000:]
    token = (tmp_path / "token").read_text()
    assert token.count(".") == 2  # a JWT from the TokenRequest API


def test_impersonation_is_what_the_api_server_authorizes(namespace, playbook, lab, tmp_path):
    mark = os.path.getsize(lab["audit_log"])
    nobody = f"system:serviceaccount:{NS}:nobody"
    res = run(playbook, tmp_path, "-e", f"auth_impersonate={nobody}")
    assert res.rc != 0
    # ours, then kubernetes.core's k8s_info, got the impersonation header from the group defaults
    assert f"TokenRequest for {NS}/{SA} failed: 403" in res.out, res.out[-3000:]
    assert nobody in res.out and "cannot get resource" in res.out, res.out[-3000:]
    assert not (tmp_path / "token").exists()
    seen = [e for e in audit_events(lab, mark) if e.get("impersonatedUser", {}).get("username") == nobody
            and e.get("objectRef", {}).get("resource") == "serviceaccounts"]
    assert seen and all(e["responseStatus"]["code"] == 403 for e in seen)
    assert {e["user"]["username"] for e in seen} == {"unimon-lab-admin"}


def test_inventory_plugin_with_host_token_and_ca_only(namespace, playbook, lab, core, tmp_path):
    res = run(playbook, tmp_path)
    assert res.rc == 0, res.out[-3000:]
    config = {"plugin": "unimon.stack.cluster", "include_vmis": False,
              "connections": [{"name": "by-token", "host": lab["api"], "api_key": (tmp_path / "token").read_text(),
                               "ca_cert": lab["ca"]}]}
    path = tmp_path / "token.cluster.yml"
    path.write_text(json.dumps(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("K8S_AUTH_") and k != "KUBECONFIG"}
    env.update(HOME=str(tmp_path), ANSIBLE_INVENTORY_UNPARSED_FAILED="1", ANSIBLE_INVENTORY_ENABLED="unimon.stack.cluster")
    proc = subprocess.run([str(BIN / "ansible-inventory"), "-i", str(path), "--list"], capture_output=True, text=True,
                          env=env, check=False, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    inv = json.loads(proc.stdout)
    assert set(inv["cluster_by_token"]["hosts"]) == {n.metadata.name for n in core.list_node().items}
    # the same connection without the CA: TLS verification stays on and names the failure
    config["connections"][0].pop("ca_cert")
    path.write_text(json.dumps(config))
    proc = subprocess.run([str(BIN / "ansible-inventory"), "-i", str(path), "--list"], capture_output=True, text=True,
                          env=env, check=False, timeout=120)
    assert proc.returncode != 0 and "CERTIFICATE_VERIFY_FAILED" in proc.stderr, proc.stderr[-3000:]
