"""kubelet_auth on the lab: exactly nodes/metrics and nodes/stats, nodes/proxy only when opted in (with
a warning), a TokenRequest token in a 0600 file that authenticates and never shows in the output."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from kubernetes import client

NS = "unimon"
SA = "unimon-kubelet-scraper"
ROLE_PLAY = str(Path(__file__).parent / "playbooks" / "kubelet_auth.yml")


def allowed(api, verb, resource, subresource=None, namespace=None) -> bool:
    sar = client.V1SubjectAccessReview(spec=client.V1SubjectAccessReviewSpec(
        user=f"system:serviceaccount:{NS}:{SA}", groups=["system:serviceaccounts", f"system:serviceaccounts:{NS}"],
        resource_attributes=client.V1ResourceAttributes(verb=verb, resource=resource, subresource=subresource,
                                                        namespace=namespace)))
    return client.AuthorizationV1Api(api).create_subject_access_review(sar).status.allowed


@pytest.fixture(scope="module")
def token_file(tmp_path_factory):
    return tmp_path_factory.mktemp("kubelet-auth") / "token"


@pytest.fixture(scope="module")
def installed(playbook, token_file):
    # The role alone (site.yml's own idempotence is test_prometheus_operator's): converging the whole stack
    # here twice cost two minutes and proved nothing more about kubelet_auth.
    run = playbook(ROLE_PLAY, "-e", f"kubelet_auth_token_file={token_file}", "-v")
    assert run.rc == 0, run.out[-3000:]
    return run


@pytest.mark.parametrize("verb,resource,subresource,namespace,expected", [
    ("get", "nodes", "metrics", None, True),
    ("get", "nodes", "stats", None, True),
    ("list", "nodes", None, None, True),
    ("get", "nodes", "proxy", None, False),
    ("get", "secrets", None, "kube-system", False),
    ("create", "pods", "exec", "default", False),
])
def test_least_privilege(installed, api, verb, resource, subresource, namespace, expected):
    assert allowed(api, verb, resource, subresource, namespace) is expected


def test_token_file_is_private_authenticates_and_stays_out_of_output(installed, token_file, lab):
    assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
    token = token_file.read_text().strip()
    assert token.count(".") == 2
    assert token not in installed.out
    cfg = client.Configuration()
    cfg.host, cfg.ssl_ca_cert = lab["api"], lab["ca"]
    cfg.api_key = {"authorization": "Bearer " + token}
    who = client.AuthenticationV1Api(client.ApiClient(cfg)).create_self_subject_review(client.V1SelfSubjectReview())
    assert who.status.user_info.username == f"system:serviceaccount:{NS}:{SA}"


def test_rerun_keeps_the_token_and_changes_nothing(installed, playbook, token_file):
    before = token_file.read_text()
    run = playbook(ROLE_PLAY, "-e", f"kubelet_auth_token_file={token_file}")
    assert run.rc == 0 and run.changed == 0, run.out[-3000:]
    assert token_file.read_text() == before


def test_nodes_proxy_only_by_opt_in_with_a_warning(installed, playbook, api, token_file):
    run = playbook(ROLE_PLAY, "-e", "kubelet_auth_allow_nodes_proxy=true", "-e", f"kubelet_auth_token_file={token_file}")
    try:
        assert run.rc == 0, run.out[-3000:]
        assert "allows exec into every" in run.out
        assert allowed(api, "get", "nodes", "proxy") is True
    finally:
        back = playbook(ROLE_PLAY, "-e", f"kubelet_auth_token_file={token_file}")
        assert back.rc == 0, back.out[-3000:]
    assert allowed(api, "get", "nodes", "proxy") is False


def test_bad_duration_is_refused_before_writing(playbook, audit):
    run = playbook("site.yml", "-e", "kubelet_auth_token_duration=60")
    assert run.rc != 0 and "kubelet_auth_token_duration" in run.out
    assert audit.writes() == []
