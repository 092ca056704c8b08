"""The one connection layer (plugins/module_utils/k8s_auth.py): kubernetes.core's get_api_client with its
options and K8S_AUTH_* variables, and the service proxy requests unimon_http sends through that client.

The kubeconfigs here are files we write for the kubernetes client to read (its own format, loaded by its
own loader); resolving them makes no request. The HTTP server only records what the client sent: which
path, which headers. What a real API server does with those requests is the lab tier's
(tests/integration/test_k8s_auth.py, and verify, log_flow and preflight through the lab's kube-apiserver)."""
from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml


@pytest.fixture(scope="module")
def mods(collection_module):
    return collection_module("plugins.module_utils.k8s_auth"), collection_module("plugins.module_utils.unimon_http")


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("K8S_AUTH_") or name in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.kube/config of the machine


@pytest.fixture
def recorder():
    """A plain HTTP server answering every request with {"ok": true} and keeping path and headers."""
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            seen.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                         "groups": self.headers.get_all("Impersonate-Group")})
            body = json.dumps({"ok": True}).encode()
            status = 403 if "forbidden" in self.path else 200
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield "http://127.0.0.1:%d" % server.server_port, seen
    server.shutdown()


def kubeconfig(path, server, token="tok-a", context="lab", extra_contexts=()):
    contexts = [{"name": context, "context": {"cluster": "c", "user": "u"}}]
    contexts += [{"name": n, "context": {"cluster": "c", "user": "u2"}} for n in extra_contexts]
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": context,
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"token": token}}, {"name": "u2", "user": {"token": "tok-b"}}],
        "contexts": contexts,
    }))
    return str(path)


def test_kubeconfig_file_and_context_are_read(mods, clean_env, tmp_path):
    auth, _http = mods
    path = kubeconfig(tmp_path / "kc", "https://api.example:6443", extra_contexts=["other"])
    cfg = auth.api_client({"kubeconfig": path}).configuration
    assert cfg.host == "https://api.example:6443"
    assert cfg.api_key["authorization"] == "Bearer tok-a"
    cfg = auth.api_client({"kubeconfig": path, "context": "other"}).configuration
    assert cfg.api_key["authorization"] == "Bearer tok-b"


def test_k8s_auth_variables_are_the_fallback(mods, clean_env, monkeypatch, tmp_path):
    auth, _http = mods
    url = "https://awx-given:6443"
    monkeypatch.setenv("K8S_AUTH_HOST", url + "/")
    monkeypatch.setenv("K8S_AUTH_API_KEY", "from-awx")
    monkeypatch.setenv("K8S_AUTH_VERIFY_SSL", "false")
    cfg = auth.api_client({}).configuration
    assert (cfg.host, cfg.api_key["authorization"], cfg.verify_ssl) == (url, "Bearer from-awx", False)
    # An option given to the module wins over the variable.
    cfg = auth.api_client({"api_key": "opt"}).configuration
    assert cfg.api_key["authorization"] == "Bearer opt"
    monkeypatch.delenv("K8S_AUTH_HOST")
    monkeypatch.delenv("K8S_AUTH_API_KEY")
    monkeypatch.setenv("K8S_AUTH_KUBECONFIG", kubeconfig(tmp_path / "kc", url, token="from-file"))
    assert auth.api_client({}).configuration.api_key["authorization"] == "Bearer from-file"


def test_kubeconfig_as_a_mapping(mods, clean_env, tmp_path):
    auth, _http = mods
    mapping = yaml.safe_load(open(kubeconfig(tmp_path / "kc", "https://mapped:6443", token="mapped")))
    assert auth.api_client({"kubeconfig": mapping}).configuration.api_key["authorization"] == "Bearer mapped"


def test_unreadable_kubeconfig_is_one_line_naming_the_file(mods, clean_env, tmp_path):
    auth, _http = mods
    with pytest.raises(auth.K8sAuthError) as err:
        auth.api_client({"kubeconfig": str(tmp_path / "missing")})
    assert str(tmp_path / "missing") in str(err.value) and "\n" not in str(err.value)
    assert str(err.value).startswith("cannot load Kubernetes credentials")


def test_login_options_can_be_left_to_the_endpoint(mods):
    auth, http = mods
    assert {"username", "password", "validate_certs"} <= set(auth.k8s_auth_spec())
    assert not {"username", "password"} & set(auth.k8s_auth_spec(login=False))
    # The endpoint modules' own username / password / validate_certs are the service's.
    assert http.ENDPOINT_ARGS["validate_certs"] == {"type": "bool", "default": True}
    assert "impersonate_user" in http.ENDPOINT_ARGS and "api_key" in http.ENDPOINT_ARGS


def test_service_proxy_requests_go_through_the_client(mods, clean_env, tmp_path, recorder):
    _auth, http = mods
    url, seen = recorder
    params = {"kubeconfig": kubeconfig(tmp_path / "kc", url, token="proxy-token"), "namespace": "unimon",
              "service": "prometheus-operated", "port": "web", "scheme": "http", "request_timeout": 5,
              "impersonate_user": "system:serviceaccount:unimon:reader", "impersonate_groups": ["g1", "g2"],
              # the service's login: must not reach the API server
              "username": "es-user", "password": "es-pass", "validate_certs": True}
    endpoint = http.Endpoint(params)
    assert endpoint.get_json("/api/v1/targets?state=active") == {"ok": True}
    req = seen[-1]
    assert req["path"] == "/api/v1/namespaces/unimon/services/http%3Aprometheus-operated%3Aweb/proxy/api/v1/targets?state=active"
    assert req["headers"]["authorization"] == "Bearer proxy-token"
    assert req["headers"]["impersonate-user"] == "system:serviceaccount:unimon:reader"
    assert req["groups"] == ["g1", "g2"]  # one header per group, as the API server reads them
    assert "es-user" not in json.dumps(req["headers"])
    assert endpoint.call("GET", "/x", expect=(200,)) == (200, {"ok": True})
    with pytest.raises(http.EndpointError) as err:
        endpoint.get_json("/forbidden")
    assert "answered 403 (forbidden" in str(err.value) and "through the API server" in str(err.value)


def test_unreachable_api_server_is_one_line(mods, clean_env, tmp_path):
    _auth, http = mods
    params = {"kubeconfig": kubeconfig(tmp_path / "kc", "http://127.0.0.1:9"), "namespace": "n", "service": "s",
              "port": "80", "scheme": "http", "request_timeout": 2}
    with pytest.raises(http.EndpointError) as err:
        http.Endpoint(params).get_json("/")
    assert str(err.value).startswith("cannot reach service n/s port 80 through the API server http://127.0.0.1:9")
    assert "refused" in str(err.value) and "\n" not in str(err.value)
