"""Render-tier helpers: role templates rendered with real Ansible, validated by real tools."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def render(tmp_path_factory):
    """render(role, **overrides) -> directory holding the role's rendered templates. The same role and
    overrides render once per session (several modules check the defaults' output); treat it as read-only."""
    done: dict[str, Path] = {}

    def _render(role: str, **extra) -> Path:
        key = json.dumps([role, extra], sort_keys=True, default=str)
        if key not in done:
            done[key] = _render_once(role, **extra)
        return done[key]

    def _render_once(role: str, **extra) -> Path:
        out = tmp_path_factory.mktemp(f"render-{role}")
        args = [str(BIN / "ansible-playbook"), str(REPO / "tests" / "render" / "render.yml"),
                "-e", f"role={role}", "-e", f"out={out}"]
        for key, value in extra.items():
            # Lists, mappings and booleans as JSON (key=value would make them strings).
            args += ["-e", json.dumps({key: value}) if isinstance(value, (list, dict, bool)) else f"{key}={value}"]
        res = subprocess.run(args, capture_output=True, text=True, check=False)
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
        return out
    return _render
