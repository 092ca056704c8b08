"""Lab fixtures, shared by the render and integration tiers: the lab is brought up once per test
is already running is reused) and left running for the next session; `make lab-down` stops it."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def lab() -> dict:
    up = subprocess.run([str(REPO / "lab" / "up.sh")], capture_output=True, text=True, check=False)
    if up.returncode != 0:
        pytest.fail(f"lab/up.sh failed ({up.returncode}):\n{up.stdout[-3000:]}\n{up.stderr[-3000:]}")
    env = subprocess.run([sys.executable, str(REPO / "lab" / "labctl.py"), "env"], check=True,
                         capture_output=True, text=True)
    return json.loads(env.stdout)


@pytest.fixture(scope="session")
def api(lab):
    from kubernetes import client, config
    return config.new_client_from_config(config_file=lab["kubeconfig"])


@pytest.fixture(scope="session")
def core(api):
    from kubernetes import client
    return client.CoreV1Api(api)


def wait_until(what: str, check, timeout: float = 60, interval: float = 0.5):
    """Poll check() until it returns a truthy value; fail naming what did not happen."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as err:  # noqa: BLE001 - keep polling through transient API errors
            last = err
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what}; last result: {last!r}")


RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)\s+skipped=(\d+)", re.M)


class PlaybookRun:
    def __init__(self, proc: subprocess.CompletedProcess):
        self.rc = proc.returncode
        self.out = proc.stdout + proc.stderr
        m = RECAP.findall(proc.stdout)
        self.recap = {h: dict(zip(("ok", "changed", "unreachable", "failed", "skipped"), map(int, v)))
                      for h, *v in m}

    @property
    def changed(self) -> int:
        return sum(r["changed"] for r in self.recap.values())


@pytest.fixture(scope="session")
def playbook(lab):
    """playbook(name, *args) runs playbooks/<name> against the lab inventory and returns a PlaybookRun."""
    bindir = Path(sys.executable).parent
    if "ANSIBLE_COLLECTIONS_PATH" not in os.environ:
        pytest.fail("ANSIBLE_COLLECTIONS_PATH is not set: run the lab tiers through make (make integration)")

    def _run(name: str, *args: str, timeout: float = 600) -> PlaybookRun:
        cmd = [str(bindir / "ansible-playbook"), "-i", str(REPO / "lab" / "inventory.yml"),
               str(REPO / "playbooks" / name), *args]
        env = {**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1"}
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=timeout, env=env)
        return PlaybookRun(proc)
    return _run


class AuditLog:
    """Reads the lab apiserver's audit log from a mark on: which writes did the admin identity make?"""

    def __init__(self, path: str):
        self.path = path
        self.offset = 0

    def mark(self) -> None:
        self.offset = os.path.getsize(self.path)

    def writes(self, user: str = "unimon-lab-admin") -> list[dict]:
        time.sleep(1.5)  # the apiserver writes audit events asynchronously
        with open(self.path, encoding="utf-8") as fh:
            fh.seek(self.offset)
            events = [json.loads(line) for line in fh if line.strip()]
        # Reviews (SelfSubjectAccessReview, TokenReview, ...) are answered and never stored: not writes.
        return [e for e in events if e["user"]["username"] == user
                and e["verb"] in ("create", "update", "patch", "delete", "deletecollection")
                and "dryRun=All" not in e.get("requestURI", "")
                and not e.get("objectRef", {}).get("resource", "").endswith("reviews")]


@pytest.fixture
def audit(lab) -> AuditLog:
    log = AuditLog(lab["audit_log"])
    log.mark()
    return log
