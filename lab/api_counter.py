"""A counting reverse proxy in front of the lab apiserver, for tests and benchmarks that must know how
many API requests a client made (the lab's audit log records writes only).

It listens on 127.0.0.1 over plain HTTP, forwards every request to the apiserver over TLS with a lab
client certificate (one kept-alive connection per proxy thread), and records method, path and query
of each. `kubeconfig()` writes a kubeconfig pointing at the proxy, so any client (the kubernetes
Python client, kubectl, an inventory plugin) can be routed through it unchanged. Standard library only.

    with ApiCounter() as counter:
        run_client(counter.kubeconfig(tmpdir / "kc"))
        print(len(counter.requests), counter.requests[0])
"""
from __future__ import annotations

import http.client
import json
import os
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

CACHE = Path(os.environ.get("UNIMON_LAB_CACHE", Path.home() / ".cache" / "unimon-lab"))
STATE = Path(os.environ.get("UNIMON_LAB_STATE", CACHE / "run"))
PKI = STATE / "pki"
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


class ApiCounter:
    def __init__(self, upstream: str = "127.0.0.1:6443", identity: str = "admin"):
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        ctx = ssl.create_default_context(cafile=str(PKI / "ca.crt"))
        ctx.load_cert_chain(str(PKI / f"{identity}.crt"), str(PKI / f"{identity}.key"))
        local = threading.local()
        counter = self

        def upstream_conn(fresh: bool = False) -> http.client.HTTPSConnection:
            if fresh or getattr(local, "conn", None) is None:
                local.conn = http.client.HTTPSConnection(upstream, context=ctx, timeout=120)
            return local.conn

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format, *args):  # noqa: A002 - quiet
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                url = urlsplit(self.path)
                with counter._lock:
                    counter.requests.append({"method": self.command, "path": url.path, "query": url.query})
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP | {"host"}}
                for attempt in (0, 1):
                    conn = upstream_conn(fresh=attempt == 1)
                    try:
                        conn.request(self.command, self.path, body=body, headers=headers)
                        resp = conn.getresponse()
                        data = resp.read()
                        break
                    except (http.client.HTTPException, OSError):
                        conn.close()
                        if attempt:
                            raise
                self.send_response(resp.status, resp.reason)
                for key, value in resp.getheaders():
                    if key.lower() not in HOP_BY_HOP | {"content-length"}:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "ApiCounter":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()

    def count(self, path_part: str = "", method: str | None = None) -> int:
        with self._lock:
            return sum(1 for r in self.requests
                       if path_part in r["path"] and (method is None or r["method"] == method))

    def kubeconfig(self, path: Path, context: str = "counted") -> Path:
        """A kubeconfig (JSON is valid YAML) whose only context talks to the proxy."""
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": context,
            "clusters": [{"name": context, "cluster": {"server": self.url}}],
            "users": [{"name": context, "user": {}}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
        }))
        return path
