"""The generated Grafana dashboards (tools/dashboards -> roles/grafana/files/dashboards): committed JSON
matches the generator, each dashboard is structurally valid for Grafana, and every PromQL expression parses
and type-checks in the real promtool (wrapped as recording rules, Grafana's $variables substituted)."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from metric_names import DASHBOARDS, GRAFANA_BUILTINS, GRAFANA_VAR, panels, ungrafana
from test_alert_rules import promtool

REPO = Path(__file__).resolve().parents[2]
DATASOURCES = {"unimon-prometheus": "prometheus", "unimon-logs": "elasticsearch", "unimon-vm-logs": "elasticsearch"}


def test_generator_and_committed_json_agree():
    res = subprocess.run([sys.executable, "-m", "tools.dashboards", "--check"], cwd=REPO, capture_output=True,
                         text=True, check=False)
    assert res.returncode == 0, res.stderr
    assert len(DASHBOARDS) >= 5


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.stem for p in DASHBOARDS])
def test_dashboard_is_valid_grafana_json(path):
    board = json.loads(path.read_text())
    assert isinstance(board["schemaVersion"], int) and board["schemaVersion"] >= 36
    assert board["uid"] and len(board["uid"]) <= 40 and board["title"]
    ids = [p["id"] for p in panels(board)]
    assert len(ids) == len(set(ids)), f"duplicate panel ids in {path.name}"
    cells: dict[tuple[int, int], str] = {}
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]
    names = {v["name"] for v in board["templating"]["list"]}
    for panel in panels(board):
        for ref in [panel.get("datasource")] + [t.get("datasource") for t in panel.get("targets", [])]:
            if ref:
                assert DATASOURCES.get(ref["uid"]) == ref["type"], f"{panel['title']}: unknown datasource {ref}"
        for target in panel.get("targets", []):
            text = target.get("expr") or target.get("query") or ""
            for m in GRAFANA_VAR.finditer(text):
                name = m.group(1) or m.group(2)
                assert name in names or name in GRAFANA_BUILTINS, f"{panel['title']}: ${name} is not a dashboard variable"


def test_every_promql_expression_passes_promtool(tmp_path):
    rules = []
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        for panel in panels(board):
            for target in panel.get("targets", []):
                if "expr" not in target:
                    continue
                expr = ungrafana(target["expr"])
                rules.append({"record": f"dashboard:{path.stem.replace('-', '_')}:{panel['id']}_{target['refId']}",
                              "expr": expr})
    assert len(rules) > 50
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    res = subprocess.run([promtool(), "check", "rules", str(tmp_path / "rules.yml")], capture_output=True, text=True,
                         check=False)
    assert res.returncode == 0, res.stdout + res.stderr


# The two dashboards with KubeVirt panels (tools/dashboards/boards/_vm.py).
VM_BOARDS = [p for p in DASHBOARDS if p.stem in ("virtual-machines", "containers-and-vms")]
BY_CLAUSE = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")


def vm_targets():
    for path in VM_BOARDS:
        board = json.loads(path.read_text())
        for panel in panels(board):
            for target in panel.get("targets", []):
                if "kubevirt_vmi_" in target.get("expr", ""):
                    yield path.stem, panel["title"], target


def test_vm_panels_keep_namespace_beside_name():
    """Two VMs called db in two namespaces are two lines: every aggregation that keeps the VM's name keeps
    its namespace, and every legend that shows the name shows the namespace."""
    targets = list(vm_targets())
    assert len(targets) > 20 and len(VM_BOARDS) == 2
    for board, title, target in targets:
        for clause in BY_CLAUSE.findall(target["expr"]):
            labels = {label.strip() for label in clause.split(",")}
            if labels & {"name", "vmi"}:
                assert "namespace" in labels, f"{board} / {title}: by ({clause}) drops the namespace"
        legend = target.get("legendFormat", "")
        if "{{name}}" in legend or "{{vmi}}" in legend:
            assert "{{namespace}}/" in legend, f"{board} / {title}: legend {legend!r} shows no namespace"


def test_vcpu_wait_is_not_called_io_wait():
    """kubevirt_vmi_vcpu_wait_seconds_total is libvirt's vcpu.N.wait (the host scheduler ran something
    else), not guest I/O wait: no title, legend or description of the dashboards calls it IO wait."""
    for path in VM_BOARDS:
        text = path.read_text()
        assert not re.search(r"\bI/?O wait\b", text.replace("not guest I/O wait", "")), path.name
    labels = [t["legendFormat"] for *_where, t in vm_targets() if "kubevirt_vmi_vcpu_wait_seconds_total" in t["expr"]]
    assert labels and all("vCPU wait (host scheduler)" in label for label in labels)


def vm_panel(board: str, title: str) -> dict:
    doc = json.loads(next(p for p in DASHBOARDS if p.stem == board).read_text())
    return next(panel for panel in panels(doc) if panel["title"] == title)


def promql_results(tmp_path, exprs: dict[str, str], series: list[str], expected: dict[str, list]) -> subprocess.CompletedProcess:
    """promtool test rules: each expression (Grafana's variables as All) at 5m against the series must give
    exactly the expected samples."""
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": []}))
    tests = [{"interval": "1m", "input_series": [{"series": s, "values": "1x10"} for s in series],
              "promql_expr_test": [{"expr": ungrafana(exprs[ref]), "eval_time": "5m", "exp_samples": expected[ref]}
                                   for ref in exprs]}]
    (tmp_path / "test.yml").write_text(yaml.safe_dump({"rule_files": ["rules.yml"], "evaluation_interval": "1m",
                                                       "tests": tests}, sort_keys=False))
    return subprocess.run([promtool(), "test", "rules", str(tmp_path / "test.yml")], capture_output=True,
                          text=True, check=False)


def test_migration_results_group_by_the_labels_kubevirt_sets(tmp_path):
    """virt-controller labels kubevirt_vmi_migration_succeeded/_failed with vmi, vmim and namespace (no name):
    the panel shows one line per migration of each VMI, and selecting a VM filters on vmi."""
    panel = vm_panel("virtual-machines", "Migration results and queue")
    exprs = {t["refId"]: t["expr"] for t in panel["targets"] if "kubevirt_vmi_migration_" in t["expr"]
             and "_phase" not in t["expr"]}
    assert set(exprs) == {"A", "B"} and all('vmi=~"$vm"' in e for e in exprs.values())
    series = ['kubevirt_vmi_migration_succeeded{cluster="c",namespace="a",vmi="db",vmim="db-m1",pod="virt-controller-x"}',
              'kubevirt_vmi_migration_succeeded{cluster="c",namespace="b",vmi="db",vmim="db-m1",pod="virt-controller-x"}',
              'kubevirt_vmi_migration_failed{cluster="c",namespace="a",vmi="web",vmim="web-m2",pod="virt-controller-x"}']
    expected = {"A": [{"labels": '{namespace="a",vmi="db",vmim="db-m1"}', "value": 1},
                      {"labels": '{namespace="b",vmi="db",vmim="db-m1"}', "value": 1}],
                "B": [{"labels": '{namespace="a",vmi="web",vmim="web-m2"}', "value": 1}]}
    res = promql_results(tmp_path, exprs, series, expected)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("board", ["virtual-machines", "containers-and-vms"])
def test_same_named_vms_in_two_namespaces_stay_apart(tmp_path, board):
    """db in namespace a (two vCPUs) and db in namespace b (one vCPU): the vCPU count gives 2 and 1, not 3."""
    panel = vm_panel(board, "VM vCPU time against vCPUs and launcher CPU")
    count = next(t for t in panel["targets"] if t["expr"].startswith("count by"))
    series = [f'kubevirt_vmi_vcpu_seconds_total{{cluster="c",namespace="{ns}",name="db",node="n1",pod="virt-handler-x",'
              f'id="{i}",state="running"}}' for ns, n in (("a", 2), ("b", 1)) for i in range(n)]
    expected = {"C": [{"labels": '{namespace="a",name="db"}', "value": 2},
                      {"labels": '{namespace="b",name="db"}', "value": 1}]}
    res = promql_results(tmp_path, {"C": count["expr"]}, series, expected)
    assert res.returncode == 0, res.stdout + res.stderr
    assert count["refId"] == "C" and count["legendFormat"] == "{{namespace}}/{{name}} vCPUs"
