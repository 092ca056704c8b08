"""The versions pinned in roles/_common (unimon_versions, the one list) are what the lab builds and runs
(lab/versions.env): the lab tiers prove the stack with the programs the roles install. Each role's version
variable reads its pin from there instead of repeating it."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from lab_versions import lab_versions

REPO = Path(__file__).resolve().parents[2]

# unimon_versions key -> lab/versions.env key
LAB_KEYS = {
    "prometheus_operator": "PROMETHEUS_OPERATOR_VERSION",
    "kube_state_metrics": "KUBE_STATE_METRICS_VERSION",
    "prometheus": "PROMETHEUS_VERSION",
    "alertmanager": "ALERTMANAGER_VERSION",
    "node_exporter": "NODE_EXPORTER_VERSION",
    "metrics_server": "METRICS_SERVER_VERSION",
    "elasticsearch": "ELASTICSEARCH_VERSION",
}
# role variable -> the unimon_versions key it must read
ROLE_PINS = {
    ("prometheus_operator", "prometheus_operator_version"): "prometheus_operator",
    ("kube_state_metrics", "kube_state_metrics_version"): "kube_state_metrics",
    ("prometheus", "prometheus_version"): "prometheus",
    ("prometheus", "prometheus_alertmanager_version"): "alertmanager",
    ("node_exporter", "node_exporter_version"): "node_exporter",
    ("metrics_server", "metrics_server_version"): "metrics_server",
    ("categraf", "categraf_version"): "categraf",
    ("grafana", "grafana_version"): "grafana",
    ("logging", "logging_fluentd_version"): "fluentd",
}


def defaults(role: str) -> dict:
    return yaml.safe_load((REPO / "roles" / role / "defaults" / "main.yml").read_text())


def pins() -> dict:
    return defaults("_common")["unimon_versions"]


def release_of(lab_value: str) -> str:
    """Prometheus 3.x is built from its Go module, versioned v0.3MM.P for release v3.MM.P."""
    m = re.fullmatch(r"v0\.3(\d\d)\.(\d+)", lab_value)
    return f"v3.{int(m.group(1))}.{m.group(2)}" if m else lab_value


@pytest.mark.parametrize("key", sorted(LAB_KEYS))
def test_pin_is_what_the_lab_runs(key):
    assert pins()[key] == release_of(lab_versions()[LAB_KEYS[key]]), \
        f"roles/_common/defaults/main.yml unimon_versions.{key} and lab/versions.env {LAB_KEYS[key]} differ"


@pytest.mark.parametrize("role,var", sorted(ROLE_PINS))
def test_role_reads_its_pin(role, var):
    assert defaults(role)[var] == f"{{{{ unimon_versions.{ROLE_PINS[(role, var)]} }}}}", \
        f"roles/{role}/defaults/main.yml {var} repeats a version instead of reading unimon_versions"


def test_every_pin_is_read():
    used = set(ROLE_PINS.values()) | {"elasticsearch", "opensearch"}  # the store's, by logging_backend
    assert set(pins()) == used


def test_no_role_default_pins_a_version_of_its_own():
    """A literal version in a role's defaults would be a second list beside unimon_versions."""
    version = re.compile(r"^[a-z_]+_version: ['\"]?v?\d+\.\d+\.\d+", re.M)
    offenders = [str(p.relative_to(REPO)) for p in REPO.glob("roles/[!_]*/defaults/main.yml") if version.search(p.read_text())]
    assert not offenders, offenders


def test_the_store_version_follows_the_backend():
    assert defaults("logging")["logging_store_version"] == "{{ unimon_versions[logging_backend] }}"
    assert "unimon_versions[grafana_logs_backend]" in defaults("grafana")["grafana_logs_store_version"]
