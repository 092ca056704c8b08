"""Virtual machine dashboard: vCPU and vCPU wait, guest memory, disk latency and IOPS, network,
guest agent, migrations."""
from __future__ import annotations

from tools.dashboards import CLUSTER, NAMESPACE, VM, Dashboard, row

from . import _vm

BOARD = Dashboard(
    uid="unimon-vms",
    title="unimon / Virtual machines",
    description="KubeVirt VMs: vCPU time, vCPU delay and vCPU wait, guest memory, disk latency and IOPS, network, "
                "guest agent, live migrations.",
    tags=["kubevirt", "vms"],
    variables=[CLUSTER, NAMESPACE, VM],
    rows=[
        row("Status", _vm.agent(width=8), _vm.phase(width=16)),
        row("vCPU", _vm.cpu(), _vm.cpu_ratio(), _vm.vcpu_wait(width=24)),
        row("Memory", _vm.memory(), _vm.memory_ratio(), _vm.memory_pressure(width=24)),
        row("Disk", _vm.latency(width=24), _vm.disk(), _vm.iops()),
        row("Network", _vm.network(), _vm.network_errors()),
        row("Guest", _vm.filesystems(width=24)),
        row("Migrations", _vm.migrations(), _vm.migration_results()),
        row("Serial console", _vm.console(width=24)),
    ],
)
