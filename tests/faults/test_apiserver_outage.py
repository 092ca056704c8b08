"""Faults a user meets: the API server goes away in the middle of a run. The run must fail with a
message naming the unreachable API, not a traceback; once the API server is back a rerun converges.

The lab's controller-manager runs with a 5 minute node-monitor grace period: kwok marks a pod Ready
once and never again, so a node marked NotReady during the outage would leave the fake pods NotReady
for good (a real kubelet re-reports)."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from lab_fixtures import REPO, wait_until


def labctl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "lab" / "labctl.py"), *args], capture_output=True, text=True,
                          check=True)


def test_apiserver_stopped_mid_run_then_rerun_converges(playbook, lab):
    first = playbook("site.yml")  # a converged cluster, so the interrupted run has real work to redo
    assert first.rc == 0, first.out[-3000:]
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(REPO / "lab" / "inventory.yml"),
           str(REPO / "playbooks" / "site.yml")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        # Let the validation play pass and the install play start, then take the API away.
        time.sleep(12)
        assert proc.poll() is None, "site.yml ended before the API server was stopped"
        labctl("stop", "kube-apiserver")
        out = proc.communicate(timeout=900)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
        labctl("up")
    assert proc.returncode != 0
    assert "6443" in out and ("refused" in out.lower() or "Max retries exceeded" in out), out[-3000:]
    assert "Traceback (most recent call last)" not in out
    # kwok and the controllers reconnect; then the same playbook converges.
    wait_until("nodes Ready again", lambda: labctl("status").returncode == 0, 120, 2)
    time.sleep(5)
    again = playbook("site.yml")
    assert again.rc == 0, again.out[-3000:]
