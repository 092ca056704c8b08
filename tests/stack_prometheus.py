"""The stack's own Prometheus on the lab, read through the API server's service proxy (the way a user without
network access to pods reads it): shared by the integration tests and the faults on real pods."""
from __future__ import annotations

import json

NS = "unimon"
PROXY = f"/api/v1/namespaces/{NS}/services/prometheus-unimon:web/proxy"


def proxied(api, path: str) -> dict:
    """GET a Prometheus API path through the service proxy."""
    resp = api.call_api(PROXY + path, "GET", auth_settings=["BearerToken"], _preload_content=False,
                        _return_http_data_only=True)
    return json.loads(resp.data)


def active_targets(api) -> list[dict]:
    return proxied(api, "/api/v1/targets?state=active")["data"]["activeTargets"]
