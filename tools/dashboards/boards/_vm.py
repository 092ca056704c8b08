"""Panels about KubeVirt virtual machines (virt-handler metrics, kubevirt_vmi_*). Used by the VM
dashboard and, unchanged, on the right of the containers-and-VMs dashboard."""
from __future__ import annotations

from tools.dashboards import VM_LOGS, LogQuery, Query, p, regex

from ._sel import VM, rate


def cpu(width=12):
    return p("VM vCPU time against vCPUs and launcher CPU",
             (rate("kubevirt_vmi_vcpu_seconds_total", VM, "name"), "{{name}} vCPU time"),
             (rate("kubevirt_vmi_cpu_usage_seconds_total", VM, "name"), "{{name}} launcher (vCPU + QEMU)"),
             (f"count by (name) (count by (name, id) (kubevirt_vmi_vcpu_seconds_total{{{VM}}}))", "{{name}} vCPUs"),
             unit="cores", width=width,
             description="vCPU time is what the guest ran; the launcher line adds the hypervisor's own use (pCPU). "
                         "The vCPU count is the VM's ceiling, like a container's CPU limit.")


def cpu_ratio(width=12):
    return p("vCPU time / vCPUs",
             (f"{rate('kubevirt_vmi_vcpu_seconds_total', VM, 'name')}"
              f" / count by (name) (count by (name, id) (kubevirt_vmi_vcpu_seconds_total{{{VM}}}))", "{{name}}"),
             unit="percentunit", min=0, width=width)


def vcpu_wait(width=12):
    return p("vCPU delay and IO wait",
             (rate("kubevirt_vmi_vcpu_delay_seconds_total", VM, "name"), "{{name}} delay (queued on host)"),
             (rate("kubevirt_vmi_vcpu_wait_seconds_total", VM, "name"), "{{name}} IO wait"),
             unit="s", width=width,
             description="Seconds per second the vCPUs waited for a host CPU (the VM counterpart of CFS "
                         "throttling) or on IO.")


def memory(width=12):
    return p("VM guest memory against domain memory",
             (f"sum by (name) (kubevirt_vmi_memory_available_bytes{{{VM}}} - kubevirt_vmi_memory_usable_bytes{{{VM}}})",
              "{{name}} guest used"),
             (f"sum by (name) (kubevirt_vmi_memory_resident_bytes{{{VM}}})", "{{name}} QEMU resident"),
             (f"sum by (name) (kubevirt_vmi_memory_domain_bytes{{{VM}}})", "{{name}} domain (limit)"),
             (f"sum by (name) (kubevirt_vmi_memory_actual_balloon_bytes{{{VM}}})", "{{name}} balloon"),
             unit="bytes", width=width,
             description="Guest used = available - usable as the guest reports it (balloon driver / agent); "
                         "resident is the QEMU process on the host, including its overhead.")


def memory_ratio(width=12):
    return p("Guest memory used / domain memory",
             (f"sum by (name) (kubevirt_vmi_memory_available_bytes{{{VM}}} - kubevirt_vmi_memory_usable_bytes{{{VM}}})"
              f" / sum by (name) (kubevirt_vmi_memory_domain_bytes{{{VM}}})", "{{name}}"),
             unit="percentunit", min=0, max=1, width=width)


def memory_pressure(width=12):
    return p("Guest swap traffic and major page faults",
             (rate("kubevirt_vmi_memory_swap_in_traffic_bytes", VM, "name"), "{{name}} swap in"),
             (rate("kubevirt_vmi_memory_swap_out_traffic_bytes", VM, "name"), "{{name}} swap out"),
             (rate("kubevirt_vmi_memory_pgmajfault_total", VM, "name"), "{{name}} major faults/s"),
             width=width)


def network(width=12):
    return p("VM network",
             (rate("kubevirt_vmi_network_receive_bytes_total", VM, "name"), "{{name}} rx"),
             (rate("kubevirt_vmi_network_transmit_bytes_total", VM, "name"), "{{name}} tx"),
             unit="Bps", width=width)


def network_errors(width=12):
    return p("VM network drops and errors",
             (rate("kubevirt_vmi_network_receive_packets_dropped_total", VM, "name"), "{{name}} rx drops"),
             (rate("kubevirt_vmi_network_transmit_packets_dropped_total", VM, "name"), "{{name}} tx drops"),
             (rate("kubevirt_vmi_network_receive_errors_total", VM, "name"), "{{name}} rx errors"),
             (rate("kubevirt_vmi_network_transmit_errors_total", VM, "name"), "{{name}} tx errors"),
             unit="pps", width=width)


def disk(width=12):
    return p("VM disk throughput",
             (rate("kubevirt_vmi_storage_read_traffic_bytes_total", VM, "name"), "{{name}} read"),
             (rate("kubevirt_vmi_storage_write_traffic_bytes_total", VM, "name"), "{{name}} write"),
             unit="Bps", width=width)


def iops(width=12):
    return p("VM disk IOPS",
             (rate("kubevirt_vmi_storage_iops_read_total", VM, "name"), "{{name}} reads"),
             (rate("kubevirt_vmi_storage_iops_write_total", VM, "name"), "{{name}} writes"),
             unit="iops", width=width)


def latency(width=12):
    return p("VM disk latency (per operation)",
             (f"{rate('kubevirt_vmi_storage_read_times_seconds_total', VM, 'name, drive')}"
              f" / {rate('kubevirt_vmi_storage_iops_read_total', VM, 'name, drive')}", "{{name}} {{drive}} read"),
             (f"{rate('kubevirt_vmi_storage_write_times_seconds_total', VM, 'name, drive')}"
              f" / {rate('kubevirt_vmi_storage_iops_write_total', VM, 'name, drive')}", "{{name}} {{drive}} write"),
             (f"{rate('kubevirt_vmi_storage_flush_times_seconds_total', VM, 'name, drive')}"
              f" / {rate('kubevirt_vmi_storage_flush_requests_total', VM, 'name, drive')}", "{{name}} {{drive}} flush"),
             unit="s", width=width,
             description="Time spent per read, write and flush; VM disks tolerate about 50% more than containers.")


def migrations(width=12):
    return p("Live migrations (recovery: VMs move instead of restarting)",
             (f"sum by (name) (kubevirt_vmi_migration_data_remaining_bytes{{{VM}}})", "{{name}} remaining"),
             (f"sum by (name) (kubevirt_vmi_migration_memory_transfer_rate_bytes{{{VM}}})", "{{name}} transfer rate"),
             (f"sum by (name) (kubevirt_vmi_migration_dirty_memory_rate_bytes{{{VM}}})", "{{name}} dirty rate"),
             unit="bytes", width=width)


def migration_results(width=12):
    return p("Migration results and queue",
             (f"sum by (name) (kubevirt_vmi_migration_succeeded{{{VM}}})", "{{name}} succeeded"),
             (f"sum by (name) (kubevirt_vmi_migration_failed{{{VM}}})", "{{name}} failed"),
             ("sum(kubevirt_vmi_migrations_in_pending_phase{cluster=~\"$cluster\"})", "pending (cluster)"),
             ("sum(kubevirt_vmi_migrations_in_scheduling_phase{cluster=~\"$cluster\"})", "scheduling (cluster)"),
             ("sum(kubevirt_vmi_migrations_in_running_phase{cluster=~\"$cluster\"})", "running (cluster)"),
             width=width)


def agent(width=12):
    return p("Guest agent connected",
             Query(f'count by (name) (kubevirt_vmi_info{{{VM}, guest_os_name!=""}})'
                   f" or count by (name) (kubevirt_vmi_info{{{VM}}}) * 0", "{{name}}", instant=True),
             kind="stat", width=width, height=8,
             description="1 when virt-handler reports guest OS data, which only the qemu guest agent provides "
                         "(VMI condition AgentConnected).")


def phase(width=12):
    return p("VMIs",
             Query(f"kubevirt_vmi_info{{{VM}}}", instant=True),
             kind="table", width=width, description="Node, phase and guest OS of each VMI.")


def filesystems(width=12):
    return p("Guest filesystems used (guest agent)",
             (f"kubevirt_vmi_filesystem_used_bytes{{{VM}}} / kubevirt_vmi_filesystem_capacity_bytes{{{VM}}}",
              "{{name}} {{mount_point}}"),
             unit="percentunit", min=0, max=1, width=width)


def console(width=12):
    return p("Serial console",
             LogQuery(f"vm_name:{regex('vm')} AND kubernetes.namespace_name:{regex('namespace')} "
                      'AND kubernetes.container_name:"guest-console-log"', datasource=VM_LOGS),
             kind="logs", width=width, height=10,
             description="The guest's serial console, printed by the guest-console-log container of the "
                         "virt-launcher pod; the logging role writes it to its VM index prefix with the VM's "
                         "name in vm_name.")
