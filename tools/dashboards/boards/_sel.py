"""Label selectors and PromQL fragments the dashboard descriptions share."""
from __future__ import annotations

RI = "$__rate_interval"
CL = 'cluster=~"$cluster"'
NS = CL + ', namespace=~"$namespace"'
POD = NS + ', pod=~"$pod"'
# cAdvisor reports a pod-level cgroup (container="") and the sandbox (container="POD") besides the
# containers; per-container panels leave both out.
CONTAINER = POD + ', container!="", container!="POD"'
VM = NS + ', name=~"$vm"'
# virt-controller's migration results name the VMI in `vmi` (and the migration in `vmim`), not in `name`.
VM_MIGRATION = NS + ', vmi=~"$vm"'
NODE = CL + ', instance=~"$node"'
# Filesystems that are not node storage (same filter as the node alerts of alert_rules).
FS = 'fstype!~"tmpfs|overlay|squashfs|nsfs|ramfs", mountpoint!~"/var/lib/kubelet/pods/.+"'


def rate(metric: str, sel: str, by: str) -> str:
    return f"sum by ({by}) (rate({metric}{{{sel}}}[{RI}]))"
