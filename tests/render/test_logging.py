"""The logging role's fluent.conf, read the way Fluentd reads its directives: every <source> has a parser,
every <match> has a file buffer with retries, every tag a source emits reaches exactly one <match>, and the
VM serial console is routed to its own index prefix. Also: the DaemonSet rolls when the config changes,
Fluentd's RBAC is read-only on pods and namespaces, the variants (Docker JSON, journal, OpenSearch, three
store nodes, external store) render and pass a real kube-apiserver's server-side dry run.

Fluentd itself cannot run here (no Ruby gems registry, and Debian has no fluentd package), so the
configuration is checked by structure; tests/integration/test_logging.py indexes documents of the
shape these outputs write into the lab's real Elasticsearch."""
from __future__ import annotations

import fnmatch
import hashlib
import re
import subprocess

import pytest

from manifests import load_all


class Directive:
    def __init__(self, name: str, arg: str):
        self.name, self.arg = name, arg
        self.params: dict[str, str] = {}
        self.children: list[Directive] = []

    def find(self, name: str) -> list["Directive"]:
        return [c for c in self.children if c.name == name]


def parse_fluent_conf(text: str) -> Directive:
    """Fluentd's config syntax: <name arg> ... </name> sections, 'key value' parameters, # comments."""
    root = Directive("root", "")
    stack = [root]
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if m := re.fullmatch(r"</(\w+)>", line):
            assert stack[-1].name == m.group(1), f"line {number}: </{m.group(1)}> closes <{stack[-1].name}>"
            stack.pop()
        elif m := re.fullmatch(r"<(\w+)(?:\s+([^>]*))?>", line):
            section = Directive(m.group(1), (m.group(2) or "").strip())
            stack[-1].children.append(section)
            stack.append(section)
        else:
            key, value = (line.split(" ", 1) + [""])[:2]
            assert key not in stack[-1].params, f"line {number}: {key} set twice in <{stack[-1].name}>"
            stack[-1].params[key] = value.strip()
    assert len(stack) == 1, f"<{stack[-1].name}> never closed"
    return root


def tag_matches(pattern: str, tag: str) -> bool:
    """Fluentd's match patterns: space-separated alternatives; * is one tag part, ** zero or more parts."""
    for alt in pattern.split():
        rx = re.escape(alt).replace(r"\*\*", "\0").replace(r"\*", r"[^.]*").replace("\0", ".*")
        rx = rx.replace(r"\..*", r"(\..*)?") if alt.endswith(".**") else rx
        if re.fullmatch(rx, tag):
            return True
    return False


def example_tag(source: Directive) -> str:
    """The tag a tail source gives a file: its tag with * replaced by the path, / turned into dots."""
    if source.params["@type"] == "tail":
        path = source.params["path"].replace("*", "virt-launcher-db-vm-x7k2p_vms_guest-console-log-" + "a" * 64, 1) \
            if "guest-console-log" in source.params["path"] else "/var/log/containers/web-1_shop_nginx-" + "b" * 64 + ".log"
        assert fnmatch.fnmatch(path, source.params["path"]), (path, source.params["path"])
        return source.params["tag"].replace("*", path.strip("/").replace("/", "."))
    return source.params["tag"]


_RENDERED: dict = {}


def fluent_conf(render, **extra) -> Directive:
    """Our fluent.conf as rendered with these variables, parsed."""
    return rendered(render, **extra)[0]


def rendered(render, **extra) -> tuple[Directive, str, list]:
    key = tuple(sorted(extra.items()))
    if key not in _RENDERED:  # one render per variant: each is an ansible-playbook run
        _RENDERED[key] = render("logging", **extra)
    out = _RENDERED[key]
    text = (out / "fluent.conf").read_text()
    return parse_fluent_conf(text), text, load_all(out / "fluentd.yaml")


VARIANTS = {
    "cri": {},
    "json": {"logging_fluentd_log_format": "json"},
    "journal": {"logging_fluentd_journal": "true"},
    "opensearch": {"logging_backend": "opensearch"},
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_source_has_a_parser_and_every_match_a_buffer(render, variant):
    conf = fluent_conf(render, **VARIANTS[variant])
    sources, matches = conf.find("source"), conf.find("match")
    assert sources and matches
    for source in sources:
        if source.params["@type"] == "systemd":
            # The journal is structured already: <entry> maps its fields instead of a parser.
            assert source.find("entry"), "journal source without <entry>"
        else:
            parse = source.find("parse")
            assert len(parse) == 1, f"source {source.params.get('@id')} has no <parse>"
            expected = "cri" if variant != "json" else "json"
            assert parse[0].params["@type"] == expected
    for match in matches:
        buffers = match.find("buffer")
        assert len(buffers) == 1, f"<match {match.arg}> has no <buffer>"
        buf = buffers[0].params
        assert buf["@type"] == "file" and buf["path"].startswith("/var/log/unimon-fluentd/buffer/")
        assert buf["retry_forever"] == "true" and buf["retry_type"] == "exponential_backoff"
        assert buf["overflow_action"] == "block"
    paths = [m.find("buffer")[0].params["path"] for m in matches]
    assert len(set(paths)) == len(paths), "two outputs share a buffer directory"


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_tag_is_routed_to_exactly_one_output(render, variant):
    conf = fluent_conf(render, **VARIANTS[variant])
    for source in conf.find("source"):
        tag = example_tag(source)
        routed = [m for m in conf.find("match") if tag_matches(m.arg, tag)]
        assert len(routed) == 1, f"tag {tag} reaches {[m.arg for m in routed]}"


def test_vm_consoles_have_their_own_index_and_the_vm_name(render):
    conf = fluent_conf(render)
    by_id = {s.params["@id"]: s for s in conf.find("source")}
    containers, consoles = by_id["containers"], by_id["vm_consoles"]
    # The console files are excluded from the container source and are the whole console source.
    assert consoles.params["path"] in containers.params["exclude_path"]
    assert fnmatch.fnmatch("/var/log/containers/virt-launcher-db-vm-x7k2p_vms_guest-console-log-" + "c" * 64 + ".log",
                           consoles.params["path"])
    assert not fnmatch.fnmatch("/var/log/containers/virt-launcher-db-vm-x7k2p_vms_compute-" + "c" * 64 + ".log",
                               consoles.params["path"])
    outputs = {m.arg: m.params for m in conf.find("match")}
    console_tag, container_tag = example_tag(consoles), example_tag(containers)
    [console_out] = [p for a, p in outputs.items() if tag_matches(a, console_tag)]
    [container_out] = [p for a, p in outputs.items() if tag_matches(a, container_tag)]
    assert console_out["logstash_prefix"] == "virt-launcher" and container_out["logstash_prefix"] == "kubernetes"
    for out in (console_out, container_out):
        assert out["logstash_format"] == "true" and out["logstash_dateformat"] == "%Y.%m.%d" and out["utc_index"] == "true"
        assert out["ssl_verify"] == "true" and out["ca_file"] == "/fluentd/etc/unimon-store-ca/ca.crt"
        # Credentials come from the environment (a Secret), never from the ConfigMap.
        assert out["password"] == "\"#{ENV['LOGGING_STORE_PASSWORD']}\""
    vm_filters = [f for f in conf.find("filter") if tag_matches(f.arg, console_tag) and f.params["@type"] == "record_transformer"]
    vm_name = vm_filters[-1].find("record")[0].params["vm_name"]
    assert '"vm_kubevirt_io/name"' in vm_name and "}" not in vm_name[2:-1], vm_name
    # Metadata and partial-line joining apply to both streams.
    for tag in (console_tag, container_tag):
        types = [f.params["@type"] for f in conf.find("filter") if tag_matches(f.arg, tag)]
        assert types[:2] == ["concat", "kubernetes_metadata"], types


def test_journal_is_optional_and_has_its_own_prefix(render):
    conf = fluent_conf(render)
    assert not [s for s in conf.find("source") if s.params["@type"] == "systemd"]
    conf = fluent_conf(render, logging_fluentd_journal="true")
    [journal] = [s for s in conf.find("source") if s.params["@type"] == "systemd"]
    assert journal.params["matches"] == '[{"_SYSTEMD_UNIT": "kubelet.service"}, {"_SYSTEMD_UNIT": "containerd.service"}]'
    [out] = [m for m in conf.find("match") if tag_matches(m.arg, "journal")]
    assert out.params["logstash_prefix"] == "journal"


def test_daemonset_rolls_on_config_change_and_reads_only_pods_and_namespaces(render):
    text, objs = rendered(render)[1:]
    by_kind = {o["kind"]: o for o in objs}
    assert by_kind["ConfigMap"]["data"]["fluent.conf"] == text
    annotations = by_kind["DaemonSet"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["unimon.io/config-checksum"] == hashlib.sha256(text.encode()).hexdigest()
    other, objs2 = rendered(render, logging_fluentd_flush_interval="10s")[1:]
    assert other != text
    assert {o["kind"]: o for o in objs2}["DaemonSet"]["spec"]["template"]["metadata"]["annotations"] != annotations
    assert by_kind["ClusterRole"]["rules"] == [{"apiGroups": [""], "resources": ["namespaces", "pods"],
                                                "verbs": ["get", "list", "watch"]}]


@pytest.mark.parametrize("extra", [
    {"logging_backend": "opensearch"},
    {"logging_store_replicas": "3"},
    {"logging_fluentd_log_format": "json", "logging_fluentd_journal": "true"},
    {"logging_store_mode": "external", "logging_external_url": "https://logs.example.org:9200"},
], ids=["opensearch", "three-nodes", "json-journal", "external"])
def test_variants_pass_the_apiservers_dry_run(render, lab, extra):
    out = render("logging", logging_namespace="default", **extra)
    for f in sorted(out.glob("*.yaml")):
        res = subprocess.run([lab["kubectl"], "--kubeconfig", lab["kubeconfig"], "apply", "--server-side", "--dry-run=server",
                              "--field-manager=render-test", "--force-conflicts", "-f", str(f)],
                             capture_output=True, text=True, check=False)
        assert res.returncode == 0, f"{f.name}: {res.stderr}"
    sts = [o for o in load_all(out / "store.yaml") if o["kind"] == "StatefulSet"][0]
    env = {e["name"]: e.get("value") for e in sts["spec"]["template"]["spec"]["containers"][0]["env"]}
    if extra.get("logging_store_replicas") == "3":
        assert env["cluster.initial_master_nodes"] == "elasticsearch-0,elasticsearch-1,elasticsearch-2"
        assert "discovery.type" not in env
    if extra.get("logging_backend") == "opensearch":
        assert env["plugins.security.ssl.http.enabled"] == "true"
        assert "opensearchproject/opensearch:" in sts["spec"]["template"]["spec"]["containers"][0]["image"]
