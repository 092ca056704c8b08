"""The generated Grafana dashboards (tools/dashboards -> roles/grafana/files/dashboards): committed JSON
matches the generator, each dashboard is structurally valid for Grafana, and every PromQL expression parses
and type-checks in the real promtool (wrapped as recording rules, Grafana's $variables substituted)."""
from __future__ import annotations

import json
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
