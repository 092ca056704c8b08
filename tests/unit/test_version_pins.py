"""A version pinned in a role's defaults and the version the lab builds and runs (lab/versions.env) are the
same: the lab tiers prove the stack with the programs the roles install. Where two roles pin the same
program (grafana's datasource follows the logging role's store), both say the same."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

# role default -> lab/versions.env key
PINS = {
    ("prometheus_operator", "prometheus_operator_version"): "PROMETHEUS_OPERATOR_VERSION",
    ("kube_state_metrics", "kube_state_metrics_version"): "KUBE_STATE_METRICS_VERSION",
    ("prometheus", "prometheus_version"): "PROMETHEUS_VERSION",
    ("prometheus", "prometheus_alertmanager_version"): "ALERTMANAGER_VERSION",
    ("node_exporter", "node_exporter_version"): "NODE_EXPORTER_VERSION",
    ("metrics_server", "metrics_server_version"): "METRICS_SERVER_VERSION",
}


def lab_versions() -> dict:
    return dict(line.split("=", 1) for line in (REPO / "lab" / "versions.env").read_text().splitlines()
                if "=" in line and not line.startswith("#"))


def defaults(role: str) -> dict:
    return yaml.safe_load((REPO / "roles" / role / "defaults" / "main.yml").read_text())


def release_of(lab_value: str) -> str:
    """Prometheus 3.x is built from its Go module, versioned v0.3MM.P for release v3.MM.P."""
    m = re.fullmatch(r"v0\.3(\d\d)\.(\d+)", lab_value)
    return f"v3.{int(m.group(1))}.{m.group(2)}" if m else lab_value


@pytest.mark.parametrize("role,var", sorted(PINS))
def test_role_pin_is_what_the_lab_runs(role, var):
    assert defaults(role)[var] == release_of(lab_versions()[PINS[(role, var)]]), \
        f"roles/{role}/defaults/main.yml {var} and lab/versions.env {PINS[(role, var)]} differ"


def test_store_version_is_pinned_once_per_backend():
    logging = defaults("logging")["logging_store_version"]
    pins = re.findall(r"'(\d+\.\d+\.\d+)'", logging)
    assert pins[0] == lab_versions()["ELASTICSEARCH_VERSION"], "the lab's Elasticsearch is the logging role's"
    copies = re.findall(r"'(\d+\.\d+\.\d+)'", defaults("grafana")["grafana_logs_store_version"])
    assert copies == pins, f"grafana_logs_store_version pins {copies}, logging_store_version {pins}"
