"""Lab fixtures: the lab is brought up once per test session (lab/up.sh is idempotent, so a lab that
is already running is reused) and left running for the next session; `make lab-down` stops it."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def lab() -> dict:
    up = subprocess.run([str(REPO / "lab" / "up.sh")], capture_output=True, text=True)
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
