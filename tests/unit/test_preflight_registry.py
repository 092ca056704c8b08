"""The air-gapped registry probe of the preflight role (GET <scheme>://<registry host>/v2/, 200 or 401
accepted) against real local HTTP and HTTPS servers: a registry that answers, one that wants credentials,
something that is not a registry, a certificate the probe cannot verify, and a port nobody listens on.
The servers stand in for a registry mirror, which cannot run here (no container registry is reachable)."""
from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


class Handler(BaseHTTPRequestHandler):

    def do_GET(self):  # noqa: N802 - http.server API
        code = self.server.answers.get(self.path, 404)
        self.send_response(code)
        if code in (200, 401):
            self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        if code == 401:
            self.send_header("WWW-Authenticate", 'Bearer realm="https://auth.example.invalid/token"')
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


def serve(answers: dict, context: ssl.SSLContext | None = None) -> str:
    srv = HTTPServer(("127.0.0.1", 0), Handler)
    srv.answers = answers
    if context:
        srv.socket = context.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return f"127.0.0.1:{srv.server_address[1]}"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA and a server certificate for 127.0.0.1, made with openssl."""
    d = tmp_path_factory.mktemp("pki")

    def ossl(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)
    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "1",
         "-subj", "/CN=preflight test CA")
    ossl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=127.0.0.1")
    (d / "ext").write_text("subjectAltName=IP:127.0.0.1\n")
    ossl("x509", "-req", "-in", "srv.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "srv.crt",
         "-days", "1", "-extfile", "ext")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(d / "srv.crt", d / "srv.key")
    return {"ca": str(d / "ca.crt"), "context": ctx}


def probe(tmp_path: Path, **extra) -> subprocess.CompletedProcess:
    play = tmp_path / "probe.yml"
    play.write_text(json.dumps([{
        "name": "Probe", "hosts": "localhost", "connection": "local", "gather_facts": False,
        "tasks": [{"name": "Registry", "ansible.builtin.include_role": {"name": "unimon.stack.preflight",
                                                                        "tasks_from": "registry.yml"}}]}]))
    args = [str(BIN / "ansible-playbook"), str(play), "-e", f"ansible_python_interpreter={sys.executable}",
            "-e", json.dumps({"unimon_airgapped": True, **extra})]
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run(args, capture_output=True, text=True, check=False, env=env, timeout=120)


def test_https_registry_verified_with_its_ca_passes(tmp_path, pki):
    host = serve({"/v2/": 200}, pki["context"])
    run = probe(tmp_path, unimon_image_registry=f"{host}/mirror/quay", preflight_registry_ca_path=pki["ca"])
    assert run.returncode == 0, run.stdout[-2000:]


def test_registry_asking_for_credentials_passes(tmp_path, pki):
    host = serve({"/v2/": 401}, pki["context"])
    run = probe(tmp_path, unimon_image_registry=host, preflight_registry_ca_path=pki["ca"])
    assert run.returncode == 0, run.stdout[-2000:]


def test_unverifiable_certificate_fails_unless_opted_out(tmp_path, pki):
    host = serve({"/v2/": 200}, pki["context"])
    run = probe(tmp_path, unimon_image_registry=host)
    assert run.returncode != 0
    assert "does not answer" in run.stdout and "CERTIFICATE_VERIFY_FAILED" in run.stdout, run.stdout[-2000:]
    assert probe(tmp_path, unimon_image_registry=host, preflight_registry_validate_certs=False).returncode == 0


def test_something_that_is_not_a_registry_fails(tmp_path):
    host = serve({"/": 200})
    run = probe(tmp_path, unimon_image_registry=host, preflight_registry_scheme="http")
    assert run.returncode != 0
    assert f"http://{host}/v2/ (status 404" in run.stdout, run.stdout[-2000:]


def test_nothing_listening_fails_naming_the_registry(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = probe(tmp_path, unimon_image_registry=f"127.0.0.1:{port}", preflight_registry_timeout=3)
    assert run.returncode != 0
    assert f"unimon_image_registry=127.0.0.1:{port} does not answer" in run.stdout, run.stdout[-2000:]
    assert "Traceback" not in run.stdout + run.stderr
