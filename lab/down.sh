#!/usr/bin/env bash
# Stop every lab process by its pid and remove the network namespaces. --purge also deletes state.
set -euo pipefail
exec python3 "$(cd "$(dirname "$0")" && pwd)/labctl.py" down "$@"
