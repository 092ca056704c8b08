"""One module per dashboard; each exposes BOARD (a tools.dashboards.Dashboard)."""
from __future__ import annotations

from . import cluster, nodes, side_by_side, vms, workloads

# File name (without .json) -> description; the order is the order of the docs.
BOARDS = {
    "cluster-overview": cluster.BOARD,
    "nodes": nodes.BOARD,
    "workloads": workloads.BOARD,
    "virtual-machines": vms.BOARD,
    "containers-and-vms": side_by_side.BOARD,
}
