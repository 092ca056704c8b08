"""Containers and VMs side by side: one pod on the left, one VM on the right, the same question on
each row, so an operator compares them at a glance."""
from __future__ import annotations

from tools.dashboards import CLUSTER, NAMESPACE, POD, VM, WORKLOAD, Dashboard, row

from . import _pod, _vm

BOARD = Dashboard(
    uid="unimon-containers-vms",
    title="unimon / Containers and VMs side by side",
    description="Each row asks one question of a pod (left) and of a VM (right): CPU against its ceiling, "
                "contention, memory against its limit, network, disk, recovery, logs.",
    tags=["kubernetes", "kubevirt", "containers", "vms"],
    variables=[CLUSTER, NAMESPACE, WORKLOAD, POD, VM],
    rows=[
        row("CPU against its ceiling (CPU limit | vCPUs)", _pod.cpu(), _vm.cpu()),
        row("CPU contention (CFS throttling | vCPU delay and vCPU wait)", _pod.throttling(), _vm.vcpu_wait()),
        row("Memory against its limit (working set | guest used)", _pod.memory(), _vm.memory()),
        row("Network", _pod.network(), _vm.network()),
        row("Disk throughput", _pod.disk(), _vm.disk()),
        row("Disk operations", _pod.iops(), _vm.iops()),
        row("Recovery (restarts | live migrations)", _pod.restarts(), _vm.migrations()),
        row("Logs (container | serial console)", _pod.logs(), _vm.console()),
    ],
)
