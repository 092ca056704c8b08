"""python -m tools.dashboards [--out DIR] [--png DIR] [--check]

Writes every dashboard's JSON into --out (default roles/grafana/files/dashboards), or with --check
only reports which committed files differ from what the descriptions generate (exit 1). --png DIR
also draws a layout preview per dashboard (needs Pillow, pinned in requirements-dev.txt).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tools.dashboards import build, dumps
from tools.dashboards.boards import BOARDS

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "roles" / "grafana" / "files" / "dashboards"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.dashboards")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--png", type=Path, help="also write <name>.png layout previews here")
    parser.add_argument("--check", action="store_true", help="compare with --out instead of writing")
    args = parser.parse_args(argv)
    stale = []
    if not args.check:
        args.out.mkdir(parents=True, exist_ok=True)
    for name, board in BOARDS.items():
        target = args.out / f"{name}.json"
        text = dumps(board)
        if args.check:
            if not target.exists() or target.read_text() != text:
                stale.append(str(target))
        else:
            target.write_text(text)
        if args.png:
            from tools.dashboards.preview import render  # Pillow only when previews are asked for
            args.png.mkdir(parents=True, exist_ok=True)
            render(json.loads(json.dumps(build(board))), args.png / f"{name}.png")
    if not args.check:
        extra = sorted(set(f.stem for f in args.out.glob("*.json")) - set(BOARDS))
        for name in extra:
            (args.out / f"{name}.json").unlink()
    if stale:
        print("stale (run python -m tools.dashboards):\n  " + "\n  ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
