"""Workload / pod dashboard: CPU against quota, throttling, memory against limit, network, disk IO."""
from __future__ import annotations

from tools.dashboards import CLUSTER, NAMESPACE, POD, WORKLOAD, Dashboard, row

from . import _pod

BOARD = Dashboard(
    uid="unimon-workloads",
    title="unimon / Workloads and pods",
    description="Containers of one workload: CPU against quota and throttling, memory against limit, network, "
                "filesystem IO, restarts.",
    tags=["kubernetes", "containers"],
    variables=[CLUSTER, NAMESPACE, WORKLOAD, POD],
    rows=[
        row("CPU", _pod.cpu(), _pod.cpu_ratio(), _pod.throttling(width=24)),
        row("Memory", _pod.memory(), _pod.memory_ratio()),
        row("Network", _pod.network(), _pod.network_errors()),
        row("Disk IO", _pod.disk(), _pod.iops()),
        row("Status", _pod.restarts(), _pod.ready()),
        row("Logs", _pod.logs(width=24)),
    ],
)
