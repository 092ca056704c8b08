"""Panels about KubeVirt virtual machines (virt-handler metrics, kubevirt_vmi_*). Used by the VM
dashboard and, unchanged, on the right of the containers-and-VMs dashboard."""
from __future__ import annotations

from tools.dashboards import VM_LOGS, LogQuery, Query, p, regex

from ._sel import VM, VM_MIGRATION, rate

# A VM is known by namespace and name: two VMs called db in two namespaces are two series, never one sum.
BY = "namespace, name"
WHO = "{{namespace}}/{{name}}"


def cpu(width=12):
    return p("VM vCPU time against vCPUs and launcher CPU",
             (rate("kubevirt_vmi_vcpu_seconds_total", VM, BY), WHO + " vCPU time"),
             (rate("kubevirt_vmi_cpu_usage_seconds_total", VM, BY), WHO + " launcher (vCPU + QEMU)"),
             (f"count by ({BY}) (count by ({BY}, id) (kubevirt_vmi_vcpu_seconds_total{{{VM}}}))", WHO + " vCPUs"),
             unit="cores", width=width,
             description="vCPU time is what the guest ran; the launcher line adds the hypervisor's own use (pCPU). "
                         "The vCPU count is the VM's ceiling, like a container's CPU limit.")


def cpu_ratio(width=12):
    return p("vCPU time / vCPUs",
             (f"{rate('kubevirt_vmi_vcpu_seconds_total', VM, BY)}"
              f" / count by ({BY}) (count by ({BY}, id) (kubevirt_vmi_vcpu_seconds_total{{{VM}}}))", WHO),
             unit="percentunit", min=0, width=width)


def vcpu_wait(width=12):
    return p("vCPU delay and vCPU wait (host scheduler)",
             (rate("kubevirt_vmi_vcpu_delay_seconds_total", VM, BY), WHO + " delay (queued on host)"),
             (rate("kubevirt_vmi_vcpu_wait_seconds_total", VM, BY), WHO + " vCPU wait (host scheduler)"),
             unit="s", width=width,
             description="Seconds per second the vCPUs were runnable but the host ran something else: delay is "
                         "the time queued for a host CPU (the VM counterpart of CFS throttling); vCPU wait is "
                         "libvirt's vcpu.N.wait, close to steal time and not guest I/O wait (needs the schedstats "
                         "kernel argument on the node).")


def memory(width=12):
    return p("VM guest memory against domain memory",
             (f"sum by ({BY}) (kubevirt_vmi_memory_available_bytes{{{VM}}} - kubevirt_vmi_memory_usable_bytes{{{VM}}})",
              WHO + " guest used"),
             (f"sum by ({BY}) (kubevirt_vmi_memory_resident_bytes{{{VM}}})", WHO + " QEMU resident"),
             (f"sum by ({BY}) (kubevirt_vmi_memory_domain_bytes{{{VM}}})", WHO + " domain (limit)"),
             (f"sum by ({BY}) (kubevirt_vmi_memory_actual_balloon_bytes{{{VM}}})", WHO + " balloon"),
             unit="bytes", width=width,
             description="Guest used = available - usable as the guest reports it (balloon driver / agent); "
                         "resident is the QEMU process on the host, including its overhead.")


def memory_ratio(width=12):
    return p("Guest memory used / domain memory",
             (f"sum by ({BY}) (kubevirt_vmi_memory_available_bytes{{{VM}}} - kubevirt_vmi_memory_usable_bytes{{{VM}}})"
              f" / sum by ({BY}) (kubevirt_vmi_memory_domain_bytes{{{VM}}})", WHO),
             unit="percentunit", min=0, max=1, width=width)


def memory_pressure(width=12):
    return p("Guest swap traffic and major page faults",
             (rate("kubevirt_vmi_memory_swap_in_traffic_bytes", VM, BY), WHO + " swap in"),
             (rate("kubevirt_vmi_memory_swap_out_traffic_bytes", VM, BY), WHO + " swap out"),
             (rate("kubevirt_vmi_memory_pgmajfault_total", VM, BY), WHO + " major faults/s"),
             width=width)


def network(width=12):
    return p("VM network",
             (rate("kubevirt_vmi_network_receive_bytes_total", VM, BY), WHO + " rx"),
             (rate("kubevirt_vmi_network_transmit_bytes_total", VM, BY), WHO + " tx"),
             unit="Bps", width=width)


def network_errors(width=12):
    return p("VM network drops and errors",
             (rate("kubevirt_vmi_network_receive_packets_dropped_total", VM, BY), WHO + " rx drops"),
             (rate("kubevirt_vmi_network_transmit_packets_dropped_total", VM, BY), WHO + " tx drops"),
             (rate("kubevirt_vmi_network_receive_errors_total", VM, BY), WHO + " rx errors"),
             (rate("kubevirt_vmi_network_transmit_errors_total", VM, BY), WHO + " tx errors"),
             unit="pps", width=width)


def disk(width=12):
    return p("VM disk throughput",
             (rate("kubevirt_vmi_storage_read_traffic_bytes_total", VM, BY), WHO + " read"),
             (rate("kubevirt_vmi_storage_write_traffic_bytes_total", VM, BY), WHO + " write"),
             unit="Bps", width=width)


def iops(width=12):
    return p("VM disk IOPS",
             (rate("kubevirt_vmi_storage_iops_read_total", VM, BY), WHO + " reads"),
             (rate("kubevirt_vmi_storage_iops_write_total", VM, BY), WHO + " writes"),
             unit="iops", width=width)


def latency(width=12):
    return p("VM disk latency (per operation)",
             (f"{rate('kubevirt_vmi_storage_read_times_seconds_total', VM, BY + ', drive')}"
              f" / {rate('kubevirt_vmi_storage_iops_read_total', VM, BY + ', drive')}", WHO + " {{drive}} read"),
             (f"{rate('kubevirt_vmi_storage_write_times_seconds_total', VM, BY + ', drive')}"
              f" / {rate('kubevirt_vmi_storage_iops_write_total', VM, BY + ', drive')}", WHO + " {{drive}} write"),
             (f"{rate('kubevirt_vmi_storage_flush_times_seconds_total', VM, BY + ', drive')}"
              f" / {rate('kubevirt_vmi_storage_flush_requests_total', VM, BY + ', drive')}", WHO + " {{drive}} flush"),
             unit="s", width=width,
             description="Time spent per read, write and flush; VM disks tolerate about 50% more than containers.")


def migrations(width=12):
    return p("Live migrations (recovery: VMs move instead of restarting)",
             (f"sum by ({BY}) (kubevirt_vmi_migration_data_remaining_bytes{{{VM}}})", WHO + " remaining"),
             (f"sum by ({BY}) (kubevirt_vmi_migration_memory_transfer_rate_bytes{{{VM}}})", WHO + " transfer rate"),
             (f"sum by ({BY}) (kubevirt_vmi_migration_dirty_memory_rate_bytes{{{VM}}})", WHO + " dirty rate"),
             unit="bytes", width=width)


def migration_results(width=12):
    # virt-controller reports one series per VirtualMachineInstanceMigration, labelled vmi, vmim and namespace.
    return p("Migration results and queue",
             (f"sum by (namespace, vmi, vmim) (kubevirt_vmi_migration_succeeded{{{VM_MIGRATION}}})",
              "{{namespace}}/{{vmi}} {{vmim}} succeeded"),
             (f"sum by (namespace, vmi, vmim) (kubevirt_vmi_migration_failed{{{VM_MIGRATION}}})",
              "{{namespace}}/{{vmi}} {{vmim}} failed"),
             ("sum(kubevirt_vmi_migrations_in_pending_phase{cluster=~\"$cluster\"})", "pending (cluster)"),
             ("sum(kubevirt_vmi_migrations_in_scheduling_phase{cluster=~\"$cluster\"})", "scheduling (cluster)"),
             ("sum(kubevirt_vmi_migrations_in_running_phase{cluster=~\"$cluster\"})", "running (cluster)"),
             width=width)


def agent(width=12):
    return p("Guest agent connected",
             Query(f'count by ({BY}) (kubevirt_vmi_info{{{VM}, guest_os_name!=""}})'
                   f" or count by ({BY}) (kubevirt_vmi_info{{{VM}}}) * 0", WHO, instant=True),
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
              WHO + " {{mount_point}}"),
             unit="percentunit", min=0, max=1, width=width)


def console(width=12):
    return p("Serial console",
             LogQuery(f"vm_name:{regex('vm')} AND kubernetes.namespace_name:{regex('namespace')} "
                      'AND kubernetes.container_name:"guest-console-log"', datasource=VM_LOGS),
             kind="logs", width=width, height=10,
             description="The guest's serial console, printed by the guest-console-log container of the "
                         "virt-launcher pod; the logging role writes it to its VM index prefix with the VM's "
                         "name in vm_name.")
