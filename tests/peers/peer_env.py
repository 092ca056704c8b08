"""What the peer tier shares: where the peer programs are (environment variables, never paths in the
repository), a mount namespace that shows a program the paths a pod would see, and the log store's
root endpoint, which the lab's Elasticsearch lacks."""
from __future__ import annotations

import http.server
import json
import os
import shlex
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest


def peer_command(variable: str, what: str) -> list[str]:
    """The command line in $variable, or skip the test saying how to give it."""
    value = os.environ.get(variable, "").strip()
    if not value:
        pytest.skip(f"{variable} is not set: {what} (see docs/testing.md, 'Peer tier')")
    cmd = shlex.split(value)
    if not os.access(cmd[0], os.X_OK):
        pytest.fail(f"{variable}={value!r}: {cmd[0]} is not an executable file")
    return cmd


def in_pod_paths(cmd: list[str], binds: dict[str, Path], **popen) -> subprocess.Popen:
    """Start cmd in a private mount namespace where each target path shows the given directory, as the
    pod's volumes would. /run gets an empty tmpfs first, so /var/run/secrets/... needs nothing on the host."""
    script = ["mount -t tmpfs unimon-peer /run"]
    for target, source in binds.items():
        script.append(f"mkdir -p {shlex.quote(target)} && mount --bind {shlex.quote(str(source))} {shlex.quote(target)}")
    script.append('exec "$@"')
    return subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-ec", " && ".join(script), "peer", *cmd],
                            **popen)


def stop_process(proc: subprocess.Popen, timeout: float = 30) -> float:
    """SIGTERM, then SIGKILL after timeout; returns the seconds it took (0 when it had already exited)."""
    if proc.poll() is not None:
        return 0.0
    start = time.time()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return time.time() - start


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StoreRoot:
    """Forwards every request to the lab's Elasticsearch and answers only `GET /` itself.

    The lab's Elasticsearch (the integ-test zip from Maven Central) has no rest-root module, so `GET /`
    answers 405, and every Elasticsearch client checks the product there before its first request.
    The answer is the one a real server of `version` gives (number, build flavour, tagline and the
    X-Elastic-Product header the client checks); everything else, _bulk included, is the real server's."""

    def __init__(self, upstream: str, version: str, port: int | None = None):
        self.upstream, self.version = upstream.rstrip("/"), version
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests: list[str] = []
        self._server: http.server.ThreadingHTTPServer | None = None

    def start(self) -> "StoreRoot":
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _answer(self):
                owner.requests.append(f"{self.command} {self.path}")
                if self.command in ("GET", "HEAD") and self.path.split("?")[0] == "/":
                    body = json.dumps({"name": "lab", "cluster_name": "unimon-lab", "tagline": "You Know, for Search",
                                       "version": {"number": owner.version, "build_flavor": "default"}}).encode()
                    self._reply(200, {"Content-Type": "application/json", "X-Elastic-Product": "Elasticsearch"}, body)
                    return
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "accept", "authorization")}
                req = urllib.request.Request(owner.upstream + self.path, data=data, method=self.command, headers=headers)
                try:
                    with urllib.request.urlopen(req, timeout=60) as resp:
                        self._reply(resp.status, dict(resp.headers), resp.read())
                except urllib.error.HTTPError as err:
                    self._reply(err.code, dict(err.headers), err.read())

            def _reply(self, status, headers, body):
                self.send_response(status)
                for k, v in headers.items():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _answer

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
