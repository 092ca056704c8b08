"""The collection builds into a tarball that installs, and ansible-doc reads every plugin and role."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PLUGIN_TYPES = {"modules": "module", "inventory": "inventory", "filter": "filter", "lookup": "lookup"}


def plugins() -> list[tuple[str, str]]:
    out = []
    for folder, doc_type in PLUGIN_TYPES.items():
        for path in sorted((REPO / "plugins" / folder).glob("*.py")):
            if path.name == "__init__.py":
                continue
            if doc_type == "filter":  # a filter file may hold several filters; each is documented by name
                text = path.read_text()
                names = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("name:")]
                out += [(doc_type, n) for n in names]
            else:
                out.append((doc_type, path.stem))
        # Plugins documented in a sidecar YAML (several filters share one .py file).
        out += [(doc_type, p.stem) for p in sorted((REPO / "plugins" / folder).glob("*.yml"))]
    out += [("role", p.name) for p in sorted((REPO / "roles").iterdir()) if (p / "meta" / "argument_specs.yml").exists()]
    return out


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("galaxy")
    build = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "build", str(REPO), "--output-path", str(work)],
                           capture_output=True, text=True, check=False)
    assert build.returncode == 0, build.stderr
    tarballs = list(work.glob("unimon-stack-*.tar.gz"))
    assert len(tarballs) == 1
    dest = work / "collections"
    inst = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "install", "--no-deps", "--force", "-p", str(dest),
                           str(tarballs[0])], capture_output=True, text=True, check=False)
    assert inst.returncode == 0, inst.stderr
    assert (dest / "ansible_collections" / "unimon" / "stack" / "MANIFEST.json").exists()
    return dest


def test_tarball_leaves_out_dev_files(installed: Path):
    root = installed / "ansible_collections" / "unimon" / "stack"
    assert not (root / ".venv").exists() and not (root / "lab").exists()
    assert (root / "roles" / "prometheus_operator" / "meta" / "argument_specs.yml").exists()


@pytest.mark.parametrize("doc_type,name", plugins(), ids=lambda v: v)
def test_ansible_doc_reads_it(installed: Path, doc_type: str, name: str):
    # The installed copy first, then the ansible package's bundled collections (kubernetes.core, ...).
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(installed)}
    res = subprocess.run([str(BIN / "ansible-doc"), "-t", doc_type, f"unimon.stack.{name}"],
                         capture_output=True, text=True, check=False, env=env)
    assert res.returncode == 0, res.stderr
    assert f"unimon.stack.{name}" in res.stdout or name in res.stdout
    assert "ERROR" not in res.stderr
