"""python tools/role_docs.py [--check]

Writes, between the markers under "## Variables" in every docs/roles/<role>.md, a table of the role's
variables generated from roles/<role>/meta/argument_specs.yml (entry point main, in file order).
--check only reports which pages differ (exit 1).
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BEGIN = "<!-- BEGIN generated: variables (tools/role_docs.py) -->"
END = "<!-- END generated: variables -->"
# Longer dicts and lists would swamp the table; their values are one click away.
MAX_DEFAULT = 40
HEADER = ["| Variable | Type | Default | Description |", "|---|---|---|---|"]
# Ansible's doc markup; each ends at the first ")", as in ansible-doc.
MARKUP = [
    (re.compile(r"L\(([^,)]+),\s*([^)]+)\)"), r"[\1](\2)"),
    (re.compile(r"U\(([^)]+)\)"), r"\1"),
    (re.compile(r"I\(([^)]+)\)"), r"*\1*"),
    (re.compile(r"B\(([^)]+)\)"), r"**\1**"),
    (re.compile(r"[CMOVEP]\(([^)]+)\)"), r"`\1`"),
]


def roles(root: Path) -> list[str]:
    """Roles a page is owed to: every directory under roles/ except _private ones."""
    return sorted(p.name for p in (root / "roles").iterdir() if p.is_dir() and not p.name.startswith("_"))


def options(root: Path, role: str) -> dict:
    specs = yaml.safe_load((root / "roles" / role / "meta" / "argument_specs.yml").read_text())
    return specs["argument_specs"]["main"].get("options") or {}


def markup(text: str) -> str:
    for pattern, repl in MARKUP:
        text = pattern.sub(repl, text)
    return text


def escape(text: str) -> str:
    # A "|" ends a cell even inside backticks; GitHub renders "\|" as "|" in both places.
    return text.replace("|", "\\|")


def code(text: str) -> str:
    # A value holding a backtick needs a longer fence (CommonMark code spans).
    fence = "``" if "`" in text else "`"
    pad = " " if fence == "``" else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def description(spec: dict) -> str:
    text = spec.get("description", "")
    if isinstance(text, list):
        text = " ".join(str(t) for t in text)
    text = " ".join(markup(str(text)).split())
    if spec.get("choices"):
        text += " Choices: " + ", ".join(code(_flow(c)) for c in spec["choices"]) + "."
    return text


def _flow(value) -> str:
    """One-line YAML, the way the value would be written in a playbook."""
    if isinstance(value, str):
        # Empty and YAML-looking strings keep their quotes, so '' and 'true' are not mistaken for null and a bool.
        return value if value and yaml.safe_load(value) == value and value.strip() == value else repr(value)
    text = yaml.safe_dump(value, default_flow_style=True, width=float("inf")).strip()
    return text[:-len("\n...")] if text.endswith("\n...") else text


def default(spec: dict) -> str:
    if spec.get("required"):
        return "*required*"
    if "default" not in spec or spec["default"] is None:
        return "—"
    value = spec["default"]
    if isinstance(value, str):
        # Jinja defaults as written, folded onto one line.
        return code(" ".join(value.split()) if "{{" in value else _flow(value))
    text = _flow(value)
    if isinstance(value, (dict, list)) and len(text) > MAX_DEFAULT:
        return "see `defaults/main.yml`"
    return code(text)


def kind(spec: dict) -> str:
    typ = spec.get("type", "str")
    return f"{typ} of {spec['elements']}" if spec.get("elements") else typ


def rows(opts: dict, prefix: str = "") -> list[str]:
    out = []
    for name, spec in opts.items():
        out.append("| " + " | ".join(escape(cell) for cell in (
            code(prefix + name), kind(spec), default(spec), description(spec))) + " |")
        if spec.get("options"):
            # Suboptions of a list are per entry: name them parent[].child.
            inner = prefix + name + ("[]." if spec.get("type") == "list" else ".")
            out.extend(rows(spec["options"], inner))
    return out


def table(root: Path, role: str) -> list[str]:
    return HEADER + rows(options(root, role))


def fill(text: str, lines: list[str]) -> str:
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    return head + BEGIN + "\n" + "\n".join(lines) + "\n" + END + tail


def page(root: Path, role: str) -> Path:
    return root / "docs" / "roles" / f"{role}.md"


def stale(root: Path) -> list[str]:
    """Pages whose table differs from the specs, or that have no page or no markers."""
    found = []
    for role in roles(root):
        path = page(root, role)
        text = path.read_text() if path.is_file() else ""
        if BEGIN not in text or END not in text or fill(text, table(root, role)) != text:
            found.append(str(path.relative_to(root)))
    return found


def write(root: Path) -> list[str]:
    """Rewrites every table; returns the pages it could not write (no page, or no markers)."""
    missing = []
    for role in roles(root):
        path = page(root, role)
        text = path.read_text() if path.is_file() else ""
        if BEGIN not in text or END not in text:
            missing.append(str(path.relative_to(root)))
            continue
        new = fill(text, table(root, role))
        if new != text:
            path.write_text(new)
    return missing


def main(argv=None, root: Path = REPO) -> int:
    parser = argparse.ArgumentParser(prog="python tools/role_docs.py")
    parser.add_argument("--check", action="store_true", help="report stale pages instead of writing")
    args = parser.parse_args(argv)
    if args.check:
        found = stale(root)
        for path in found:
            print(f"{path} is stale: run python tools/role_docs.py", file=sys.stderr)
        return 1 if found else 0
    missing = write(root)
    for path in missing:
        print(f"{path}: no page or no markers ({BEGIN} ... {END}) under ## Variables", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
