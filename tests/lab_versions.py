"""The versions the lab builds and runs (lab/versions.env), read one way for every tier. The lab's own
tools read the file in lab/labctl.py; roles/_common's unimon_versions is checked against it by
tests/unit/test_version_pins.py."""
from __future__ import annotations

from pathlib import Path

VERSIONS_ENV = Path(__file__).resolve().parents[1] / "lab" / "versions.env"


def lab_versions() -> dict[str, str]:
    out = {}
    for line in VERSIONS_ENV.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip().strip('"')
    return out
