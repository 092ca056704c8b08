"""Unit-tier helpers: import from the built collection, and render a tests/unit/*_before.yml playbook
(old Jinja kept verbatim beside the Python that replaced it) with real Ansible."""
from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def collection_module():
    """collection_module("plugins.filter.x") imports ansible_collections.unimon.stack.plugins.filter.x
    from the collection `make collection` built (ANSIBLE_COLLECTIONS_PATH)."""
    root = os.environ.get("ANSIBLE_COLLECTIONS_PATH", "").split(":")[0]
    if not root:
        pytest.fail("ANSIBLE_COLLECTIONS_PATH is not set: run through make (make unit)")
    if root not in sys.path:
        sys.path.insert(0, root)
    return lambda name: importlib.import_module("ansible_collections.unimon.stack." + name)


@pytest.fixture(scope="session")
def render_before():
    """render_before("x_before.yml", variables, out) runs the playbook on localhost with the variables
    (and test_out=out) and returns the JSON it wrote to out."""
    def _run(playbook: str, variables: dict, out: Path):
        extra = {"ansible_python_interpreter": sys.executable, "test_out": str(out), **variables}
        proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                               str(HERE / playbook), "-e", json.dumps(extra)],
                              capture_output=True, text=True, timeout=300, check=False,
                              env={**os.environ, "ANSIBLE_NOCOLOR": "1"})
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return json.loads(out.read_text())
    return _run
