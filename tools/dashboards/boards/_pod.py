"""Panels about pods and containers (cAdvisor through the kubelet, kube-state-metrics). Used by the
workload dashboard and, unchanged, on the left of the containers-and-VMs dashboard."""
from __future__ import annotations

from tools.dashboards import LogQuery, p, regex

from ._sel import CONTAINER, POD, RI, rate


def cpu(width=12):
    return p("Pod CPU against limit and request",
             (rate("container_cpu_usage_seconds_total", CONTAINER, "pod"), "{{pod}} used"),
             (f'sum by (pod) (kube_pod_container_resource_limits{{{POD}, resource="cpu"}})', "{{pod}} limit (quota)"),
             (f'sum by (pod) (kube_pod_container_resource_requests{{{POD}, resource="cpu"}})', "{{pod}} request"),
             unit="cores", width=width,
             description="CPU time of the pod's containers; the limit is the CFS quota the kernel enforces.")


def cpu_ratio(width=12):
    return p("Container CPU / limit",
             (f"{rate('container_cpu_usage_seconds_total', CONTAINER, 'pod, container')}"
              f' / sum by (pod, container) (kube_pod_container_resource_limits{{{POD}, resource="cpu"}})',
              "{{pod}}/{{container}}"),
             unit="percentunit", min=0, width=width, description="Only containers with a CPU limit appear.")


def throttling(width=12):
    return p("CFS throttling (share of periods throttled)",
             (f"sum by (pod, container) (increase(container_cpu_cfs_throttled_periods_total{{{CONTAINER}}}[{RI}]))"
              f" / sum by (pod, container) (increase(container_cpu_cfs_periods_total{{{CONTAINER}}}[{RI}]))",
              "{{pod}}/{{container}}"),
             unit="percentunit", min=0, max=1, width=width,
             description="The container wanted more CPU than its quota in this share of scheduler periods: "
                         "the container counterpart of vCPU delay.")


def memory(width=12):
    return p("Pod memory working set against limit",
             (f"sum by (pod) (container_memory_working_set_bytes{{{CONTAINER}}})", "{{pod}} working set"),
             (f"sum by (pod) (container_memory_rss{{{CONTAINER}}})", "{{pod}} RSS"),
             (f'sum by (pod) (kube_pod_container_resource_limits{{{POD}, resource="memory"}})', "{{pod}} limit"),
             unit="bytes", width=width,
             description="The working set is what the OOM killer compares with the limit.")


def memory_ratio(width=12):
    return p("Container working set / memory limit",
             (f"sum by (pod, container) (container_memory_working_set_bytes{{{CONTAINER}}})"
              f' / sum by (pod, container) (kube_pod_container_resource_limits{{{POD}, resource="memory"}})',
              "{{pod}}/{{container}}"),
             unit="percentunit", min=0, width=width, description="Only containers with a memory limit appear.")


def network(width=12):
    return p("Pod network",
             (rate("container_network_receive_bytes_total", POD, "pod"), "{{pod}} rx"),
             (rate("container_network_transmit_bytes_total", POD, "pod"), "{{pod}} tx"),
             unit="Bps", width=width)


def network_errors(width=12):
    return p("Pod network drops and errors",
             (rate("container_network_receive_packets_dropped_total", POD, "pod"), "{{pod}} rx drops"),
             (rate("container_network_transmit_packets_dropped_total", POD, "pod"), "{{pod}} tx drops"),
             (rate("container_network_receive_errors_total", POD, "pod"), "{{pod}} rx errors"),
             (rate("container_network_transmit_errors_total", POD, "pod"), "{{pod}} tx errors"),
             unit="pps", width=width)


def disk(width=12):
    return p("Pod filesystem throughput",
             (rate("container_fs_reads_bytes_total", CONTAINER, "pod"), "{{pod}} read"),
             (rate("container_fs_writes_bytes_total", CONTAINER, "pod"), "{{pod}} write"),
             unit="Bps", width=width)


def iops(width=12):
    return p("Pod filesystem IOPS",
             (rate("container_fs_reads_total", CONTAINER, "pod"), "{{pod}} reads"),
             (rate("container_fs_writes_total", CONTAINER, "pod"), "{{pod}} writes"),
             unit="iops", width=width)


def restarts(width=12):
    return p("Container restarts (recovery: the kubelet restarts in seconds)",
             (f"sum by (pod, container) (increase(kube_pod_container_status_restarts_total{{{POD}}}[1h]))",
              "{{pod}}/{{container}}"),
             width=width, description="Restarts over the last hour.")


def ready(width=12):
    return p("Containers ready",
             (f"sum by (pod) (kube_pod_container_status_ready{{{POD}}})", "{{pod}} ready"),
             (f"count by (pod) (kube_pod_container_status_ready{{{POD}}})", "{{pod}} containers"),
             width=width)


def logs(width=12):
    return p("Container logs",
             LogQuery(f"kubernetes.namespace_name:{regex('namespace')} AND kubernetes.pod_name:{regex('pod')} "
                      'AND NOT kubernetes.container_name:"guest-console-log"'),
             kind="logs", width=width, height=10,
             description="Log lines Fluentd shipped to the log store (logging role, container log indices).")
