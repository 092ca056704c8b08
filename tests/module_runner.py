"""Run a collection module the way a playbook does (ad-hoc, JSON callback) and return its result."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def run_module(name: str, args: dict, check: bool = False, timeout: float = 300, diff: bool = False) -> dict:
    env = {**os.environ, "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json", "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
           "ANSIBLE_LOCALHOST_WARNING": "0", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0"}
    cmd = [str(BIN / "ansible"), "localhost", "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}",
           "-m", f"unimon.stack.{name}", "-a", json.dumps(args)] + (["--check"] if check else []) + (["--diff"] if diff else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, check=False)
    try:
        out = json.loads(proc.stdout)
    except ValueError as err:
        raise AssertionError(f"no JSON from ansible ({proc.returncode}): {proc.stdout[-2000:]} {proc.stderr[-2000:]}") from err
    return out["plays"][0]["tasks"][0]["hosts"]["localhost"]
