"""The grafana role's manifests as Grafana would read them: the datasource provisioning file (in a Secret)
parses and provides every datasource uid the dashboards use, with the right types, URLs and indices; the
dashboard provider reads the directory the dashboard ConfigMaps are mounted at; every shipped dashboard is
in a ConfigMap of its own under the 1 MiB object limit; no credential is in a ConfigMap, the Deployment or
the config checksum; the registry override, OpenSearch, external-store and persistence variants render
as they should and pass a real kube-apiserver's server-side dry run.

Grafana itself does not run here (AGPL-licensed, not buildable in this environment, and there is no
container runtime), so these checks follow Grafana's documented provisioning format."""
from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from manifests import load_all

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DASHBOARDS = sorted((REPO / "roles" / "grafana" / "files" / "dashboards").glob("*.json"))
CONFIGMAP_LIMIT = 1024 * 1024  # the API server refuses larger objects (etcd's request limit is about 1.5 MiB)
SECRETS = {"admin_password": "adm1n-S3cret-value-xyz", "logs_username": "reader-user-abc",
           "logs_password": "l0gs-S3cret-value-xyz", "logs_ca": "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"}


def render(tmp_path: Path, **extra) -> list[dict]:
    """Every object the role's templates render with its defaults plus extra (values as JSON)."""
    out = tmp_path / f"out-{len(list(tmp_path.iterdir()))}"
    out.mkdir()
    res = subprocess.run([str(BIN / "ansible-playbook"), str(REPO / "tests" / "render" / "render.yml"),
                          "-e", json.dumps({"role": "grafana", "out": str(out), **extra})],
                         capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    return [o for f in sorted(out.glob("*.yaml")) for o in load_all(f)]


def one(objs: list[dict], kind: str, name: str) -> dict:
    found = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def secret_data(obj: dict) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}


def datasources(objs: list[dict]) -> dict[str, dict]:
    text = secret_data(one(objs, "Secret", "grafana-datasources"))["datasources.yaml"]
    doc = yaml.safe_load(text)
    assert doc["apiVersion"] == 1 and doc["prune"] is True
    by_uid = {d["uid"]: d for d in doc["datasources"]}
    assert len(by_uid) == len(doc["datasources"]), "duplicate datasource uids"
    return by_uid


def container(objs: list[dict]) -> dict:
    return one(objs, "Deployment", "grafana")["spec"]["template"]["spec"]["containers"][0]


def env(objs: list[dict]) -> dict[str, dict]:
    return {e["name"]: e for e in container(objs)["env"]}


@pytest.fixture(scope="module")
def default(tmp_path_factory) -> list[dict]:
    return render(tmp_path_factory.mktemp("grafana"), _grafana_secret_values=SECRETS)


def test_datasources_provide_prometheus_and_both_log_indices(default):
    ds = datasources(default)
    assert set(ds) == {"unimon-prometheus", "unimon-logs", "unimon-vm-logs"}
    prom = ds["unimon-prometheus"]
    assert prom["type"] == "prometheus" and prom["isDefault"] is True and prom["access"] == "proxy"
    # The prometheus role's Service: prometheus-<prometheus_name>, port 9090 (roles/prometheus).
    assert prom["url"] == "http://prometheus-unimon.unimon.svc:9090"
    for uid, index in (("unimon-logs", "kubernetes-*"), ("unimon-vm-logs", "virt-launcher-*")):
        logs = ds[uid]
        assert logs["type"] == "elasticsearch"
        # The logging role's store Service (roles/logging/vars/main.yml: https, port 9200).
        assert logs["url"] == "https://elasticsearch.unimon.svc:9200"
        assert logs["jsonData"]["index"] == index and logs["jsonData"]["timeField"] == "@timestamp"
        assert logs["jsonData"]["logMessageField"] == "message"
        # Credentials only as references to environment variables the Deployment sets from a Secret.
        assert logs["basicAuth"] is True and logs["basicAuthUser"] == "${UNIMON_LOGS_USERNAME}"
        assert logs["secureJsonData"]["basicAuthPassword"] == "${UNIMON_LOGS_PASSWORD}"
        assert logs["jsonData"]["tlsAuthWithCACert"] is True and logs["secureJsonData"]["tlsCACert"] == SECRETS["logs_ca"]
    e = env(default)
    for name in ("UNIMON_LOGS_USERNAME", "UNIMON_LOGS_PASSWORD"):
        assert e[name]["valueFrom"]["secretKeyRef"]["name"] == "grafana-datasources"


def test_dashboards_use_only_datasources_the_role_provides(default):
    ds = datasources(default)
    used = {}
    for path in DASHBOARDS:
        text = path.read_text()
        for ref in json.loads(text)["panels"]:
            for r in [ref.get("datasource")] + [t.get("datasource") for t in ref.get("targets", [])]:
                if r:
                    used[r["uid"]] = r["type"]
    assert used, "no datasource references found"
    for uid, typ in used.items():
        assert uid in ds, f"dashboards use {uid}, the role does not provision it"
        assert ds[uid]["type"] == typ, f"{uid}: dashboards say {typ}, the role provisions {ds[uid]['type']}"


def mount_problems(objs: list[dict]) -> list[str]:
    """Where the Deployment's mounts and Grafana's provisioning do not fit together."""
    problems = []
    pod = one(objs, "Deployment", "grafana")["spec"]["template"]["spec"]
    c = pod["containers"][0]
    mounts = {m["mountPath"].rstrip("/"): m for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    prov = {e["name"]: e.get("value") for e in c["env"]}.get("GF_PATHS_PROVISIONING", "/etc/grafana/provisioning")
    provider_cm = volumes.get(mounts.get(f"{prov}/dashboards", {}).get("name"), {}).get("configMap", {}).get("name")
    if provider_cm is None:
        return [f"no ConfigMap mounted at {prov}/dashboards"]
    provider = yaml.safe_load(next(iter(one(objs, "ConfigMap", provider_cm)["data"].values())))
    dashboard_cms = {o["metadata"]["name"] for o in objs if o["kind"] == "ConfigMap"
                     and any(k.endswith(".json") for k in o.get("data", {}))}
    for p in provider["providers"]:
        path = p["options"]["path"].rstrip("/")
        mount = mounts.get(path)
        if mount is None:
            problems.append(f"provider {p['name']} reads {path}, nothing is mounted there")
            continue
        sources = volumes[mount["name"]].get("projected", {}).get("sources", [])
        projected = {s["configMap"]["name"] for s in sources if "configMap" in s}
        if projected != dashboard_cms:
            problems.append(f"{path} holds {sorted(projected)}, the dashboards are in {sorted(dashboard_cms)}")
    ds_mount = mounts.get(f"{prov}/datasources")
    if ds_mount is None or "secret" not in volumes[ds_mount["name"]]:
        problems.append(f"no Secret mounted at {prov}/datasources")
    return problems


def test_provider_reads_where_the_dashboard_configmaps_are_mounted(default):
    assert mount_problems(default) == []
    pod = one(default, "Deployment", "grafana")["spec"]["template"]["spec"]
    provider = yaml.safe_load(one(default, "ConfigMap", "grafana-dashboard-provider")["data"]["unimon.yaml"])
    assert provider["apiVersion"] == 1
    (p,) = provider["providers"]
    assert p["type"] == "file" and p["allowUiUpdates"] is False and p["folder"] == "unimon"
    ds_volume = next(v for v in pod["volumes"] if v["name"] == "datasources")
    # Only the file is mounted; the credentials in the same Secret reach Grafana as environment variables.
    assert ds_volume["secret"]["items"] == [{"key": "datasources.yaml", "path": "unimon.yaml"}]


def test_the_mount_check_catches_a_moved_path(default):
    broken = json.loads(json.dumps(default))
    c = one(broken, "Deployment", "grafana")["spec"]["template"]["spec"]["containers"][0]
    next(m for m in c["volumeMounts"] if m["name"] == "dashboards")["mountPath"] = "/somewhere/else"
    assert any("nothing is mounted there" in p for p in mount_problems(broken))
    broken = json.loads(json.dumps(default))
    pod = one(broken, "Deployment", "grafana")["spec"]["template"]["spec"]
    next(v for v in pod["volumes"] if v["name"] == "dashboards")["projected"]["sources"].pop()
    assert any("the dashboards are in" in p for p in mount_problems(broken))


def test_every_dashboard_is_in_its_own_configmap_under_the_limit(default):
    assert len(DASHBOARDS) >= 5
    cms = {k: o for o in default if o["kind"] == "ConfigMap" for k in o.get("data", {}) if k.endswith(".json")}
    assert set(cms) == {p.name for p in DASHBOARDS}
    for path in DASHBOARDS:
        cm = cms[path.name]
        assert len(cm["data"]) == 1 and cm["metadata"]["name"] == f"grafana-dashboard-{path.stem}"
        assert json.loads(cm["data"][path.name]) == json.loads(path.read_text())
        size = len(json.dumps(cm).encode())
        assert size < CONFIGMAP_LIMIT, f"{path.name}: ConfigMap of {size} bytes"


def test_no_credential_outside_secrets(default):
    secrets = [o for o in default if o["kind"] == "Secret"]
    admin = secret_data(one(default, "Secret", "grafana-admin"))
    assert admin == {"admin-user": "admin", "admin-password": SECRETS["admin_password"]}
    assert secret_data(one(default, "Secret", "grafana-datasources"))["logs-password"] == SECRETS["logs_password"]
    clear = json.dumps([o for o in default if o["kind"] != "Secret"])
    decoded = secret_data(one(default, "Secret", "grafana-datasources"))["datasources.yaml"]
    for value in ("admin_password", "logs_password", "logs_username"):
        assert SECRETS[value] not in clear, f"{value} outside a Secret"
        assert SECRETS[value] not in decoded, f"{value} in the datasource file"
    assert all(e.get("value") is None or "S3cret" not in e["value"] for e in container(default)["env"])
    assert len(secrets) == 2


def test_checksum_follows_the_files_not_the_passwords(tmp_path, default):
    def checksum(objs):
        return one(objs, "Deployment", "grafana")["spec"]["template"]["metadata"]["annotations"]["unimon.io/config-checksum"]
    base = checksum(default)
    assert checksum(render(tmp_path, _grafana_secret_values={**SECRETS, "admin_password": "other-pass-1234"})) == base
    assert checksum(render(tmp_path, _grafana_secret_values=SECRETS, grafana_dashboards_folder="Ops")) != base
    assert checksum(render(tmp_path, _grafana_secret_values=SECRETS, logging_vm_index_prefix="vm-consoles")) != base


def test_image_registry_override(tmp_path):
    objs = render(tmp_path, unimon_image_registry="mirror.example:5000")
    assert container(objs)["image"] == "mirror.example:5000/grafana/grafana:12.4.2"
    assert container(render(tmp_path, grafana_version="12.3.0"))["image"] == "docker.io/grafana/grafana:12.3.0"


def test_pod_runs_without_api_access_as_non_root(default):
    sa = one(default, "ServiceAccount", "grafana")
    pod = one(default, "Deployment", "grafana")["spec"]["template"]["spec"]
    assert sa["automountServiceAccountToken"] is False and pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 472
    sc = pod["containers"][0]["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]] and "emptyDir" in volumes[mounts["/var/lib/grafana"]]
    svc = one(default, "Service", "grafana")
    assert svc["spec"]["ports"] == [{"name": "http", "port": 3000, "targetPort": "http"}]
    sm = one(default, "ServiceMonitor", "grafana")
    assert sm["spec"]["endpoints"][0]["port"] == "http" and sm["spec"]["endpoints"][0]["path"] == "/metrics"


def test_persistence_uses_the_claim_and_recreates(tmp_path):
    objs = render(tmp_path, grafana_persistence=True, grafana_storage_size="5Gi", grafana_storage_class="fast")
    dep = one(objs, "Deployment", "grafana")
    assert dep["spec"]["strategy"]["type"] == "Recreate"
    data = next(v for v in dep["spec"]["template"]["spec"]["volumes"] if v["name"] == "data")
    assert data == {"name": "data", "persistentVolumeClaim": {"claimName": "grafana-data"}}
    pvc = one(objs, "PersistentVolumeClaim", "grafana-data")
    assert pvc["spec"]["resources"]["requests"]["storage"] == "5Gi" and pvc["spec"]["storageClassName"] == "fast"


def test_opensearch_uses_the_plugin(tmp_path):
    objs = render(tmp_path, logging_backend="opensearch", logging_store_version="2.19.1")
    ds = datasources(objs)
    for uid, index in (("unimon-logs", "kubernetes-*"), ("unimon-vm-logs", "virt-launcher-*")):
        assert ds[uid]["type"] == "grafana-opensearch-datasource"
        assert ds[uid]["url"] == "https://opensearch.unimon.svc:9200"
        assert ds[uid]["jsonData"]["database"] == index and ds[uid]["jsonData"]["flavor"] == "opensearch"
        assert ds[uid]["jsonData"]["version"] == "2.19.1"
    assert env(objs)["GF_PLUGINS_PREINSTALL"]["value"] == "grafana-opensearch-datasource"
    offline = env(render(tmp_path, unimon_airgapped=True, logging_backend="opensearch", grafana_plugins=[]))
    assert "GF_PLUGINS_PREINSTALL" not in offline and offline["GF_PLUGINS_PREINSTALL_DISABLED"]["value"] == "true"


def test_external_store_and_own_credentials_secret(tmp_path):
    objs = render(tmp_path, logging_store_mode="external", logging_external_url="https://logs.example.org:9200")
    ds = datasources(objs)
    assert ds["unimon-logs"]["url"] == "https://logs.example.org:9200"
    # No reader user in external mode and none given: no credentials at all.
    assert "basicAuth" not in ds["unimon-logs"] and "UNIMON_LOGS_PASSWORD" not in env(objs)
    assert "logs-password" not in secret_data(one(objs, "Secret", "grafana-datasources"))
    objs = render(tmp_path, logging_store_mode="external", logging_external_url="https://logs.example.org:9200",
                  grafana_logs_credentials_secret="logs-reader")
    ref = env(objs)["UNIMON_LOGS_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "logs-reader", "key": "password"}
    assert datasources(objs)["unimon-logs"]["basicAuth"] is True


def test_logs_datasources_switch_off(tmp_path):
    objs = render(tmp_path, logging_state="absent")
    assert set(datasources(objs)) == {"unimon-prometheus"}
    assert "UNIMON_LOGS_USERNAME" not in env(objs)


def test_settings_become_environment_variables(tmp_path):
    e = env(render(tmp_path, grafana_settings={"server": {"root_url": "https://grafana.example.org/"},
                                               "auth.anonymous": {"enabled": True}}))
    assert e["GF_SERVER_ROOT_URL"]["value"] == "https://grafana.example.org/"
    assert e["GF_AUTH_ANONYMOUS_ENABLED"]["value"] == "true"  # overrides the role's "false", once
    names = [x["name"] for x in container(render(tmp_path, grafana_settings={"auth.anonymous": {"enabled": True}}))["env"]]
    assert len(names) == len(set(names))


def test_variants_pass_the_apiserver_dry_run(lab, tmp_path):
    for extra in ({"grafana_persistence": True, "logging_backend": "opensearch"},
                  {"logging_store_mode": "external", "logging_external_url": "https://logs.example.org:9200",
                   "grafana_logs_credentials_secret": "logs-reader", "grafana_tolerations": [{"operator": "Exists"}]}):
        objs = render(tmp_path, grafana_namespace="default", _grafana_secret_values=SECRETS, **extra)
        objs = [o for o in objs if o["kind"] != "ServiceMonitor"]  # the CRDs' schema is test_manifests' job
        manifest = tmp_path / "variant.yaml"
        manifest.write_text(yaml.safe_dump_all(objs))
        res = subprocess.run([lab["kubectl"], "--kubeconfig", lab["kubeconfig"], "apply", "--server-side",
                              "--dry-run=server", "--field-manager=render-test", "--force-conflicts", "-f", str(manifest)],
                             capture_output=True, text=True, check=False)
        assert res.returncode == 0, f"{extra}: {res.stderr}"
