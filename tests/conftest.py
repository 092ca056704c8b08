"""Shared pytest settings for every tier."""
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Lab fixtures (lab, api, core, playbook, audit); the lab starts only when a test asks for it.
pytest_plugins = ["lab_fixtures"]
