"""docs/security.md's RBAC and port tables are what tools/security_tables.py generates from the
rendered roles: a new grant or an opened port without the page regenerated fails here."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_security_tables_are_current():
    res = subprocess.run([sys.executable, "-m", "tools.security_tables", "--check"], cwd=REPO, capture_output=True,
                         text=True, check=False)
    assert res.returncode == 0, res.stderr[-3000:] + "\n(run: python -m tools.security_tables)"
