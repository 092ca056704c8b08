"""Grafana dashboards of unimon.stack, generated from small Python descriptions.

Each module under ``tools.dashboards.boards`` describes one dashboard with the helpers below: rows of
panels, each panel a title, a unit and its queries. ``python -m tools.dashboards`` writes the JSON
that the grafana role provisions (roles/grafana/files/dashboards/) and, with ``--png``, a preview of
each dashboard's panel grid. Layout (gridPos), panel ids, datasource references and variable
definitions are computed here, so every dashboard gets them right the same way.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

SCHEMA_VERSION = 41
GRID_WIDTH = 24
# Datasource uids the grafana role provisions (roles/grafana/templates/_datasources.yaml.j2): Prometheus,
# the container logs (index prefix logging_index_prefix) and the VM serial consoles (logging_vm_index_prefix),
# one datasource per index prefix of the logging role, so each panel searches only its own indices.
PROMETHEUS = {"type": "prometheus", "uid": "unimon-prometheus"}
LOGS = {"type": "elasticsearch", "uid": "unimon-logs"}
VM_LOGS = {"type": "elasticsearch", "uid": "unimon-vm-logs"}
DATASOURCE_UIDS = {d["uid"]: d["type"] for d in (PROMETHEUS, LOGS, VM_LOGS)}


@dataclass
class Query:
    expr: str
    legend: str = ""
    instant: bool = False


@dataclass
class LogQuery:
    """A Lucene query against the log store (Elasticsearch/OpenSearch datasource LOGS or VM_LOGS)."""
    lucene: str
    datasource: dict = field(default_factory=lambda: LOGS)


@dataclass
class Panel:
    title: str
    queries: list
    unit: str = "short"
    kind: str = "timeseries"
    width: int = 12
    height: int = 8
    description: str = ""
    min: float | None = None
    max: float | None = None
    stack: bool = False

    @property
    def datasource(self) -> dict:
        if self.kind == "logs":
            return self.queries[0].datasource
        return PROMETHEUS


@dataclass
class Row:
    title: str
    panels: list


@dataclass
class Variable:
    """A Prometheus query variable: values of ``label`` on the series ``selector`` selects."""
    name: str
    label: str
    selector: str
    label_name: str
    multi: bool = True

    @property
    def query(self) -> str:
        return f"label_values({self.selector}, {self.label_name})"


@dataclass
class Dashboard:
    uid: str
    title: str
    description: str
    rows: list
    variables: list = field(default_factory=list)
    tags: list = field(default_factory=list)


def p(title: str, *queries, **kw) -> Panel:
    """A panel; queries are Query objects or (expr, legend) pairs or bare expressions."""
    qs = []
    for q in queries:
        if isinstance(q, (Query, LogQuery)):
            qs.append(q)
        elif isinstance(q, tuple):
            qs.append(Query(*q))
        else:
            qs.append(Query(q))
    return Panel(title, qs, **kw)


def row(title: str, *panels: Panel) -> Row:
    return Row(title, list(panels))


def regex(var: str) -> str:
    """A Lucene regular expression term for a dashboard variable. The variables' "All" is the custom value
    ".*", which Grafana inserts unformatted: as a plain Lucene term `field:.*` it would match only terms
    starting with a dot, as a regular expression `field:/.*/` everything. Selected values are joined
    and escaped by Grafana's regex format, (a|b)."""
    return "/${" + var + ":regex}/"


# The variables the dashboards share. An empty "All" matches series without the label too
# (allValue ".*"), so `cluster` works on a single Prometheus that adds the label only externally.
CLUSTER = Variable("cluster", "Cluster", "up", "cluster")
NAMESPACE = Variable("namespace", "Namespace", 'kube_namespace_status_phase{cluster=~"$cluster"}', "namespace")
WORKLOAD = Variable("workload", "Workload (owner)", 'kube_pod_info{cluster=~"$cluster", namespace=~"$namespace"}',
                    "created_by_name")
POD = Variable("pod", "Pod", 'kube_pod_info{cluster=~"$cluster", namespace=~"$namespace", created_by_name=~"$workload"}',
               "pod")
VM = Variable("vm", "Virtual machine", 'kubevirt_vmi_info{cluster=~"$cluster", namespace=~"$namespace"}', "name")
NODE = Variable("node", "Node", 'node_uname_info{cluster=~"$cluster"}', "instance")


def _target(q, ref: str) -> dict:
    if isinstance(q, LogQuery):
        return {"refId": ref, "datasource": q.datasource, "query": q.lucene, "queryType": "logs",
                "metrics": [{"id": "1", "type": "logs"}], "bucketAggs": [], "timeField": "@timestamp"}
    target = {"refId": ref, "datasource": PROMETHEUS, "expr": q.expr, "legendFormat": q.legend or "__auto"}
    if q.instant:
        target.update(instant=True, range=False)
    else:
        target.update(range=True)
    return target


def _panel_json(panel: Panel, pid: int, grid: dict) -> dict:
    defaults: dict = {"unit": panel.unit}
    if panel.min is not None:
        defaults["min"] = panel.min
    if panel.max is not None:
        defaults["max"] = panel.max
    out = {"id": pid, "type": panel.kind, "title": panel.title, "description": panel.description,
           "datasource": panel.datasource, "gridPos": grid,
           "targets": [_target(q, chr(ord("A") + i)) for i, q in enumerate(panel.queries)]}
    if panel.kind == "timeseries":
        defaults["custom"] = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never",
                              "stacking": {"mode": "normal" if panel.stack else "none", "group": "A"}}
        out["options"] = {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                          "tooltip": {"mode": "multi", "sort": "desc"}}
    elif panel.kind == "stat":
        out["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                          "colorMode": "value", "graphMode": "area", "textMode": "auto"}
    elif panel.kind == "table":
        out["options"] = {"showHeader": True}
        out["transformations"] = [{"id": "labelsToFields", "options": {"mode": "columns"}}]
    elif panel.kind == "logs":
        out["options"] = {"showTime": True, "wrapLogMessage": True, "sortOrder": "Descending"}
    out["fieldConfig"] = {"defaults": defaults, "overrides": []}
    return out


def _variable_json(var: Variable) -> dict:
    return {"name": var.name, "label": var.label, "type": "query", "datasource": PROMETHEUS,
            "definition": var.query, "query": {"query": var.query, "refId": "unimon-" + var.name, "qryType": 1},
            "refresh": 2, "sort": 1, "multi": var.multi, "includeAll": True, "allValue": ".*",
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]}, "options": [], "regex": "", "hide": 0}


def layout(rows: list) -> list[tuple[object, dict]]:
    """Place rows and panels on Grafana's 24-column grid: a row header spans the width, panels
    follow left to right and wrap to the next line when the width is used up."""
    placed = []
    y = 0
    for r in rows:
        placed.append((r, {"h": 1, "w": GRID_WIDTH, "x": 0, "y": y}))
        y += 1
        x, line_h = 0, 0
        for panel in r.panels:
            if panel.width > GRID_WIDTH:
                raise ValueError(f"{panel.title}: width {panel.width} > {GRID_WIDTH}")
            if x + panel.width > GRID_WIDTH:
                y += line_h
                x, line_h = 0, 0
            placed.append((panel, {"h": panel.height, "w": panel.width, "x": x, "y": y}))
            x += panel.width
            line_h = max(line_h, panel.height)
        y += line_h
    return placed


def build(board: Dashboard) -> dict:
    panels = []
    for pid, (item, grid) in enumerate(layout(board.rows), start=1):
        if isinstance(item, Row):
            panels.append({"id": pid, "type": "row", "title": item.title, "collapsed": False, "gridPos": grid,
                           "panels": []})
        else:
            panels.append(_panel_json(item, pid, grid))
    return {
        "uid": board.uid,
        "title": board.title,
        "description": board.description,
        "tags": ["unimon"] + board.tags,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "timezone": "browser",
        "refresh": "30s",
        "time": {"from": "now-3h", "to": "now"},
        "annotations": {"list": []},
        "links": [{"type": "dashboards", "tags": ["unimon"], "asDropdown": True, "title": "unimon dashboards"}],
        "templating": {"list": [_variable_json(v) for v in board.variables]},
        "panels": panels,
    }


def dumps(board: Dashboard) -> str:
    return json.dumps(build(board), indent=1, sort_keys=False) + "\n"
