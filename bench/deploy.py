"""Deploy speed on the lab: playbooks/site.yml (first run and rerun) against `kubectl apply
--server-side` of the same objects, measured in the same run and printed as ratios.

The kubectl baseline applies the CRDs, waits for them to be Established (as the role does), then
applies every object the roles render with their defaults. Run through `make bench` (lab up).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# The roles site.yml applies as plain objects in the lab (logging there only puts index templates into the
# lab Elasticsearch, kubevirt_monitoring skips itself without a KubeVirt CR; preflight only reads).
ROLES = ["prometheus", "node_exporter", "kube_state_metrics", "alert_rules", "kubelet_auth", "categraf", "grafana"]
# Rendered, but applied by site.yml only when switched on (grafana_persistence).
NOT_APPLIED = {"grafana/pvc.yaml"}


def sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, check=check)


def timed(*cmd: str) -> float:
    return run_timed(*cmd)[0]


def run_timed(*cmd: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    res = sh(*cmd, check=False)
    if res.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd[:3])} failed:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
    return time.perf_counter() - t0, res.stdout


def task_results(out: str) -> str:
    """ok and skipped task results of a run, summed over the hosts of its PLAY RECAP."""
    counts = {"ok": 0, "changed": 0, "skipped": 0}
    for line in out.splitlines():
        if " : ok=" in line:
            for field in line.split(":", 1)[1].split():
                key, dummy, value = field.partition("=")
                if key in counts:
                    counts[key] += int(value)
    return f"{counts['ok'] + counts['skipped']} tasks (ok {counts['ok']}, changed {counts['changed']}, skipped {counts['skipped']})"


def main() -> int:
    env = json.loads(sh(sys.executable, str(REPO / "lab" / "labctl.py"), "env").stdout)
    kubectl = [env["kubectl"], "--kubeconfig", env["kubeconfig"]]
    playbook = [str(BIN / "ansible-playbook"), "-i", str(REPO / "lab" / "inventory.yml")]
    crds = Path(env["state"]).parent / "crds" / "prometheus-operator-v0.85.0"
    with tempfile.TemporaryDirectory() as tmp:
        for role in ROLES + ["prometheus_operator"]:
            out = Path(tmp) / role
            out.mkdir()
            sh(*playbook[:1], str(REPO / "tests" / "render" / "render.yml"), "-e", f"role={role}", "-e", f"out={out}")
        manifests = sorted(str(p) for p in Path(tmp).glob("*/*.yaml") if f"{p.parent.name}/{p.name}" not in NOT_APPLIED)
        uninstall = playbook + [str(REPO / "playbooks" / "uninstall.yml"), "-e", "unimon_remove_crds=true"]

        timed(*uninstall)
        site_first, first_out = run_timed(*playbook, str(REPO / "playbooks" / "site.yml"))
        site_rerun, rerun_out = run_timed(*playbook, str(REPO / "playbooks" / "site.yml"))
        timed(*uninstall)

        def kubectl_apply() -> float:
            t0 = time.perf_counter()
            sh(*kubectl, "apply", "--server-side", "--force-conflicts", "--field-manager=bench", "-f", str(crds))
            sh(*kubectl, "wait", "--for=condition=Established", "crd", "--all", "--timeout=120s")
            sh(*kubectl, "create", "namespace", "unimon", check=False)
            for path in manifests:
                sh(*kubectl, "apply", "--server-side", "--force-conflicts", "--field-manager=bench", "-f", path)
            return time.perf_counter() - t0
        kubectl_first = kubectl_apply()
        kubectl_rerun = kubectl_apply()
        sh(*kubectl, "delete", "namespace", "unimon", "--wait=true", check=False)
        sh(*kubectl, "delete", "-f", str(crds), check=False)
    print(f"site.yml first run   {site_first:7.1f} s   kubectl apply --server-side {kubectl_first:6.1f} s   "
          f"ratio {site_first / kubectl_first:5.1f}x   {task_results(first_out)}")
    print(f"site.yml rerun       {site_rerun:7.1f} s   kubectl apply --server-side {kubectl_rerun:6.1f} s   "
          f"ratio {site_rerun / kubectl_rerun:5.1f}x   {task_results(rerun_out)}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("ANSIBLE_NOCOLOR", "1")
    sys.exit(main())
