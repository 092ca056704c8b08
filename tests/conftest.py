"""Shared pytest settings: the repository root and the lab helpers."""
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
