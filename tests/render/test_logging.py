"""The logging role's fluent.conf, read the way Fluentd reads its directives: every tail <source> has a parser,
every store <match> has a file buffer with retries, every tag a source emits reaches exactly one output
(following @label and relabel), partial lines are joined per stream and their timeouts still reach the
outputs, label keys are de-dotted after the metadata filter, refused records have a dead-letter output,
and the VM serial console is routed to its own index prefix. Also: the DaemonSet rolls when the config
changes, sets the K8S_NODE_NAME the metadata filter reads, Fluentd's RBAC is read-only on pods and
namespaces, the variants (Docker JSON, journal, OpenSearch, three store nodes, external store) render and
pass a real kube-apiserver's server-side dry run.

These are structural checks. What Fluentd does with this configuration is tested by running it:
tests/peers/test_fluentd.py (UNIMON_PEER_FLUENTD), which found the defects these checks now pin down."""
from __future__ import annotations

import fnmatch
import json
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


def walk(node: Directive, name: str):
    """Every directive called name, at any depth."""
    for child in node.children:
        if child.name == name:
            yield child
        yield from walk(child, name)


def label(conf: Directive, name: str) -> Directive:
    [found] = [d for d in conf.find("label") if d.arg == name]
    return found


def outputs_for(conf: Directive, tag: str, scope: Directive | None = None, start: str | None = None) -> list[Directive]:
    """The store outputs an event with this tag reaches: the first matching <match> of its scope (the top
    level, or the <label> a source names), followed through relabel."""
    scope = scope or (label(conf, start) if start else conf)
    for match in scope.find("match"):
        if tag_matches(match.arg, tag):
            if match.params["@type"] == "relabel":
                return outputs_for(conf, tag, label(conf, match.params["@label"]))
            return [match]
    return []


def filters_for(conf: Directive, tag: str) -> list[str]:
    """@type of the filters an event from a tail source passes, in order: top level, then its label."""
    top = [f.params["@type"] for f in conf.find("filter") if tag_matches(f.arg, tag)]
    relabel = [m for m in conf.find("match") if tag_matches(m.arg, tag) and m.params["@type"] == "relabel"]
    inner = [f.params["@type"] for f in label(conf, relabel[0].params["@label"]).find("filter") if tag_matches(f.arg, tag)] \
        if relabel else []
    return top + inner


STORE_OUTPUTS = ("elasticsearch", "opensearch")


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
    sources = conf.find("source")
    matches = [m for m in walk(conf, "match") if m.params["@type"] in STORE_OUTPUTS]
    assert sources and matches
    for source in sources:
        if source.params["@type"] == "systemd":
            # The journal is structured already: <entry> maps its fields instead of a parser.
            assert source.find("entry"), "journal source without <entry>"
        elif source.params["@type"] == "tail":
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
        # The start-up version check would hold back tailing (and SIGTERM) while the store is down.
        assert match.params.get("verify_es_version_at_startup", match.params.get("verify_os_version_at_startup")) == "false"
    paths = [m.find("buffer")[0].params["path"] for m in matches]
    assert len(set(paths)) == len(paths), "two outputs share a buffer directory"


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_tag_is_routed_to_exactly_one_output(render, variant):
    conf = fluent_conf(render, **VARIANTS[variant])
    for source in conf.find("source"):
        if source.params["@type"].startswith("prometheus"):
            continue  # serves metrics, emits no events
        tag = example_tag(source)
        routed = outputs_for(conf, tag, start=source.params.get("@label"))
        assert len(routed) == 1 and routed[0].params["@type"] in STORE_OUTPUTS, f"tag {tag} reaches {[m.arg for m in routed]}"


@pytest.mark.parametrize("variant", ["cri", "json"])
def test_partial_lines_are_joined_per_stream_and_their_timeouts_reach_the_outputs(render, variant):
    conf = fluent_conf(render, **VARIANTS[variant])
    [concat] = [f for f in conf.find("filter") if f.params["@type"] == "concat"]
    # stdout and stderr parts interleave in one file: join each stream on its own.
    assert concat.params["stream_identity_key"] == "stream"
    # Without a timeout label an unended partial line is dropped; with one it enters the label that holds
    # the metadata filter and the outputs.
    timeout_label = concat.params["timeout_label"]
    assert [f.params["@type"] for f in label(conf, timeout_label).find("filter")][:2] in (
        ["kubernetes_metadata", "record_transformer"], ["record_transformer", "kubernetes_metadata"])
    assert outputs_for(conf, "kubernetes.var.log.containers.x.log", label(conf, timeout_label))
    if variant == "cri":
        # concat deletes the key partial_cri_stream_key names from every joined record: it must not be
        # stream (the cri parser's field, mapped and searched) nor any other field the parser writes.
        assert concat.params["partial_cri_stream_key"] not in ("stream", "logtag", "message", "time")
        assert concat.params["partial_cri_logtag_key"] == "logtag"


def test_label_keys_are_de_dotted_after_the_metadata_and_vm_name_uses_the_domain(render):
    conf = fluent_conf(render)
    for tag in ("kubernetes.var.log.containers.x.log", "vmconsole.var.log.containers.x.log"):
        types = filters_for(conf, tag)
        assert types.index("dedot") > types.index("kubernetes_metadata"), types
    [dedot] = [f for f in walk(conf, "filter") if f.params["@type"] == "dedot"]
    assert dedot.params["de_dot_nested"] == "true" and dedot.params["de_dot_separator"] == "_"
    [meta] = [f for f in walk(conf, "filter") if f.params["@type"] == "kubernetes_metadata"]
    assert json.loads(meta.params["annotation_match"]) == ["^kubevirt\\.io/domain$"]


def test_refused_records_go_to_a_dead_letter_output(render):
    conf = fluent_conf(render)
    error = label(conf, "@ERROR")
    [out] = [m for m in error.find("match") if m.params["@type"] in STORE_OUTPUTS]
    assert out.arg == "**" and out.params["logstash_prefix"] == "dead-letter"
    [keep] = [f for f in error.find("filter") if f.params["@type"] == "record_transformer"]
    assert keep.params["renew_record"] == "true" and keep.find("record")[0].params["original"] == "${record.to_json}"
    assert [f for f in error.find("filter") if f.params["@type"] == "prometheus"], "dead letters are not counted"


def test_vm_consoles_have_their_own_index_and_the_vm_name(render):
    conf = fluent_conf(render)
    by_id = {s.params["@id"]: s for s in conf.find("source") if "@id" in s.params}
    containers, consoles = by_id["containers"], by_id["vm_consoles"]
    # The console files are excluded from the container source and are the whole console source.
    assert consoles.params["path"] in containers.params["exclude_path"]
    assert fnmatch.fnmatch("/var/log/containers/virt-launcher-db-vm-x7k2p_vms_guest-console-log-" + "c" * 64 + ".log",
                           consoles.params["path"])
    assert not fnmatch.fnmatch("/var/log/containers/virt-launcher-db-vm-x7k2p_vms_compute-" + "c" * 64 + ".log",
                               consoles.params["path"])
    console_tag, container_tag = example_tag(consoles), example_tag(containers)
    [console_out], [container_out] = outputs_for(conf, console_tag), outputs_for(conf, container_tag)
    assert console_out.params["logstash_prefix"] == "virt-launcher" and container_out.params["logstash_prefix"] == "kubernetes"
    for out in (console_out.params, container_out.params):
        assert out["logstash_format"] == "true" and out["logstash_dateformat"] == "%Y.%m.%d" and out["utc_index"] == "true"
        assert out["ssl_verify"] == "true" and out["ca_file"] == "/fluentd/etc/unimon-store-ca/ca.crt"
        # Credentials come from the environment (a Secret), never from the ConfigMap.
        assert out["password"] == "\"#{ENV['LOGGING_STORE_PASSWORD']}\""
    vm_filters = [f for f in label(conf, "@UNIMON").find("filter")
                  if tag_matches(f.arg, console_tag) and f.params["@type"] == "record_transformer"]
    vm_name = vm_filters[-1].find("record")[0].params["vm_name"]
    # KubeVirt's kubevirt.io/domain annotation is the exact VMI name (the vm.kubevirt.io/name label is not).
    assert vm_name.startswith('${record.dig("kubernetes", "annotations", "kubevirt.io/domain")')
    assert "vm.kubevirt.io/name" not in vm_name and "}" not in vm_name[2:-1], vm_name
    # Partial-line joining and metadata apply to both streams.
    for tag in (console_tag, container_tag):
        types = filters_for(conf, tag)
        assert types[:2] == ["concat", "kubernetes_metadata"], types


def test_journal_is_optional_and_has_its_own_prefix(render):
    conf = fluent_conf(render)
    assert not [s for s in conf.find("source") if s.params["@type"] == "systemd"]
    conf = fluent_conf(render, logging_fluentd_journal="true")
    [journal] = [s for s in conf.find("source") if s.params["@type"] == "systemd"]
    assert journal.params["matches"] == '[{"_SYSTEMD_UNIT": "kubelet.service"}, {"_SYSTEMD_UNIT": "containerd.service"}]'
    [out] = outputs_for(conf, "journal", start=journal.params["@label"])
    assert out.params["logstash_prefix"] == "journal"


def test_daemonset_rolls_on_config_change_and_reads_only_pods_and_namespaces(render):
    text, objs = rendered(render)[1:]
    by_kind = {o["kind"]: o for o in objs}
    held = by_kind["ConfigMap"]["data"]["fluent.conf"]
    assert held.rstrip("\n") == text.rstrip("\n")  # the file render keeps the template's last newline
    annotations = by_kind["DaemonSet"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["unimon.io/config-checksum"] == hashlib.sha256(held.encode()).hexdigest()
    other, objs2 = rendered(render, logging_fluentd_flush_interval="10s")[1:]
    assert other != text
    assert {o["kind"]: o for o in objs2}["DaemonSet"]["spec"]["template"]["metadata"]["annotations"] != annotations
    assert by_kind["ClusterRole"]["rules"] == [{"apiGroups": [""], "resources": ["namespaces", "pods"],
                                                "verbs": ["get", "list", "watch"]}]
    # kubernetes_metadata reads K8S_NODE_NAME: without it every node lists and watches all pods.
    env = {e["name"]: e for e in by_kind["DaemonSet"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["K8S_NODE_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}


def test_fluentd_metrics_are_served_and_scraped(render):
    conf, objs = rendered(render)[0], rendered(render)[2]
    [prom] = [s for s in conf.find("source") if s.params["@type"] == "prometheus"]
    assert prom.params["port"] == "24231"
    assert {"prometheus_monitor", "prometheus_output_monitor"} <= {s.params["@type"] for s in conf.find("source")}
    by_kind = {o["kind"]: o for o in objs}
    [port] = by_kind["DaemonSet"]["spec"]["template"]["spec"]["containers"][0]["ports"]
    assert port == {"name": "metrics", "containerPort": 24231, "protocol": "TCP"}
    assert by_kind["Service"]["spec"]["ports"][0]["targetPort"] == "metrics"
    assert by_kind["ServiceMonitor"]["spec"]["endpoints"][0]["port"] == "metrics"
    conf, objs = rendered(render, logging_fluentd_metrics="false")[0], rendered(render, logging_fluentd_metrics="false")[2]
    assert not [s for s in conf.find("source") if s.params["@type"].startswith("prometheus")]
    assert not [f for f in walk(conf, "filter") if f.params["@type"] == "prometheus"]
    assert {o["kind"] for o in objs} & {"Service", "ServiceMonitor"} == set()


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
