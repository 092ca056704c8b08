"""The rules cluster_facts applies to what it reads (addresses, flags, runtimes, versions), on the
shapes real clusters produce; the lab tier (tests/integration/test_preflight.py) runs the module
against a real API server with each shape built there."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def cf(collection_module):
    return collection_module("plugins.modules.cluster_facts")


@pytest.mark.parametrize("address,expected", [
    ("127.0.0.1", True), ("localhost", True), ("::1", True), ("[::1]:10249", True),
    ("127.0.0.1:10249", True), ("0.0.0.0", False), ("0.0.0.0:10249", False), ("10.0.0.5", False),
    ("https://127.0.0.1:2379", True), ("https://127.0.0.1:2379,https://10.0.0.5:2379", False),
    ("http://localhost:2379", True), ("", False),
])
def test_loopback(cf, address, expected):
    assert cf.is_loopback(address) is expected


def test_flag_value_in_command_args_and_split_form(cf):
    pod = {"spec": {"containers": [{"command": ["kube-scheduler", "--bind-address=127.0.0.1"],
                                    "args": ["--listen-client-urls", "https://10.0.0.5:2379"]}]}}
    assert cf.flag_value(pod, "--bind-address", "0.0.0.0") == "127.0.0.1"
    assert cf.flag_value(pod, "--listen-client-urls", "") == "https://10.0.0.5:2379"
    assert cf.flag_value(pod, "--secure-port", "10259") == "10259"


@pytest.mark.parametrize("version,name,fmt", [
    ("containerd://1.7.22", "containerd", "cri"), ("cri-o://1.30.2", "cri-o", "cri"),
    ("docker://24.0.7", "docker", "json"), ("kwok-0.7.0", "unknown:kwok-0.7.0", None),
])
def test_runtime_of(cf, version, name, fmt):
    assert cf.runtime_of({"status": {"nodeInfo": {"containerRuntimeVersion": version}}}) == (name, fmt)


@pytest.mark.parametrize("formats,expected", [
    (["cri", "cri"], "cri"), (["json", "json"], "json"), (["json", None], "json"),
    (["cri", "json"], "mixed"), ([None], "cri"), ([], "cri"),
])
def test_log_format(cf, formats, expected):
    assert cf.log_format_of(formats) == expected


@pytest.mark.parametrize("info,expected", [
    ({"major": "1", "minor": "34", "gitVersion": "v1.34.4"}, "1.34"),
    ({"major": "1", "minor": "29+", "gitVersion": "v1.29.8-eks-a737599"}, "1.29"),
    ({"gitVersion": "v1.30.1+k3s1"}, "1.30"),
])
def test_minor_version(cf, info, expected):
    assert cf.minor_version(info) == expected


def test_kube_proxy_states(cf):
    ds = {"metadata": {"name": "kube-proxy"}}
    public = {"data": {"config.conf": "kind: KubeProxyConfiguration\nmetricsBindAddress: 0.0.0.0:10249\n"}}
    kubeadm = {"data": {"config.conf": 'metricsBindAddress: ""\n'}}
    quoted = {"data": {"config.conf": "metricsBindAddress: '0.0.0.0:10249'\n"}}
    assert cf.kube_proxy_facts(ds, {"data": {"config.conf": "metricsBindAddress: ''\n"}}, None)["scrapable"] is False
    assert cf.kube_proxy_facts(ds, quoted, None)["metrics_address"] == "0.0.0.0:10249"
    cilium = {"data": {"kube-proxy-replacement": "true"}}
    assert cf.kube_proxy_facts(ds, public, None)["scrapable"] is True
    assert cf.kube_proxy_facts(ds, kubeadm, None) == {"state": "present", "replacement": "",
                                                      "metrics_address": "127.0.0.1:10249", "scrapable": False}
    assert cf.kube_proxy_facts(None, None, cilium)["state"] == "replaced"
    assert cf.kube_proxy_facts(None, None, {"data": {"kube-proxy-replacement": "false"}})["state"] == "absent"


@pytest.mark.parametrize("theirs,ours,action", [
    (None, "v0.85.0", "install"), ("0.85.0", "v0.85.0", "keep"), ("0.80.1", "v0.85.0", "upgrade"),
    ("0.86.0", "v0.85.0", "newer-in-cluster"), ("", "v0.85.0", "apply"),
])
def test_crd_action(cf, theirs, ours, action):
    crds = {"present": theirs is not None, "version": theirs or ""}
    assert cf.crd_action(crds, ours) == action


def _apiservice(available, managed_by=None, service=("kube-system", "metrics-server")):
    obj = {"metadata": {"name": "v1beta1.metrics.k8s.io", "labels": {}},
           "spec": {"service": {"namespace": service[0], "name": service[1], "port": 443}} if service else {},
           "status": {"conditions": [{"type": "Available", "status": "True" if available else "False"}]}}
    if managed_by:
        obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] = managed_by
    return obj


@pytest.mark.parametrize("apiservice,served,ours,backend,evidence", [
    (None, False, False, "", "APIService v1beta1.metrics.k8s.io missing or not Available"),
    (_apiservice(True), True, False, "kube-system/metrics-server",
     "APIService v1beta1.metrics.k8s.io Available, served by kube-system/metrics-server"),
    (_apiservice(False), False, False, "kube-system/metrics-server",
     "APIService v1beta1.metrics.k8s.io missing or not Available, served by kube-system/metrics-server"),
    (_apiservice(True, "unimon.stack", ("unimon", "metrics-server")), True, True, "unimon/metrics-server",
     "APIService v1beta1.metrics.k8s.io Available, ours (managed by unimon.stack)"),
    (_apiservice(True, "Helm"), True, False, "kube-system/metrics-server",
     "APIService v1beta1.metrics.k8s.io Available, served by kube-system/metrics-server"),
    (_apiservice(True, service=None), True, False, "", "APIService v1beta1.metrics.k8s.io Available"),
])
def test_metrics_api_owner(cf, apiservice, served, ours, backend, evidence):
    facts = cf.metrics_api_facts(apiservice)
    assert {k: v for k, v in facts.items() if k != "metrics_server_needed"} == {
        "metrics_api_served": served, "metrics_api_ours": ours, "metrics_api_backend": backend}
    assert cf.metrics_api_evidence(facts) == evidence


@pytest.mark.parametrize("apiservice,needed", [
    (None, True),
    # A rerun after our metrics-server became Available keeps managing it.
    (_apiservice(True, "unimon.stack", ("unimon", "metrics-server")), True),
    (_apiservice(False, "unimon.stack", ("unimon", "metrics-server")), True),
    # Someone else's that serves wins; one that does not is "needed", and the role refuses to replace it.
    (_apiservice(True), False),
    (_apiservice(False), True),
])
def test_metrics_server_needed(cf, apiservice, needed):
    assert cf.metrics_api_facts(apiservice)["metrics_server_needed"] is needed


def test_host_cidrs_of_node_internal_ips(cf):
    node = {"status": {"addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "10.0.0.2"},
                                     {"type": "InternalIP", "address": "fd00::2"}, {"type": "ExternalIP", "address": "1.2.3.4"}]}}
    ips = cf.node_internal_ips(node) + cf.node_internal_ips({"status": {}}) + ["10.0.0.2"]
    assert cf.host_cidrs(ips) == ["10.0.0.2/32", "fd00::2/128"]


@pytest.mark.parametrize("crd,crs,expected", [
    (False, [], {"installed": False, "crd": False, "namespace": "", "name": ""}),
    (True, [], {"installed": False, "crd": True, "namespace": "", "name": ""}),
    (True, [{"metadata": {"namespace": "kubevirt", "name": "kubevirt"},
             "status": {"observedKubeVirtVersion": "v1.6.0", "phase": "Deployed"}}],
     {"installed": True, "crd": True, "namespace": "kubevirt", "name": "kubevirt", "version": "v1.6.0"}),
    # HyperConverged (OpenShift Virtualization): the CR lives in openshift-cnv under the HCO's name.
    (True, [{"metadata": {"namespace": "openshift-cnv", "name": "kubevirt-kubevirt-hyperconverged"}, "status": {}}],
     {"installed": True, "namespace": "openshift-cnv", "name": "kubevirt-kubevirt-hyperconverged", "version": ""}),
], ids=["no-crd", "crd-only", "upstream", "hyperconverged"])
def test_kubevirt_cr_in_any_namespace_with_its_name(cf, crd, crs, expected):
    facts = cf.kubevirt_facts(crd, crs)
    assert {k: facts[k] for k in expected} == expected
