#!/usr/bin/env bash
# Build what is missing, then start the lab (idempotent: running parts are left alone).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
"$here/build.sh"
exec python3 "$here/labctl.py" up
