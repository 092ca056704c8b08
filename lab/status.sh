#!/usr/bin/env bash
# One line per lab process: up or DOWN. Exit 1 when anything is down.
set -euo pipefail
exec python3 "$(cd "$(dirname "$0")" && pwd)/labctl.py" status
