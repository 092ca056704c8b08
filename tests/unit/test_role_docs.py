"""docs/roles/<role>.md: one page per role, each with the same four sections in the same order, and a
variables table that is what tools/role_docs.py generates from the role's meta/argument_specs.yml."""
from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SPEC = importlib.util.spec_from_file_location("role_docs", REPO / "tools" / "role_docs.py")
role_docs = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(role_docs)

SECTIONS = ["What it installs", "Variables", "How it is tested", "Limits"]
ROLES = role_docs.roles(REPO)


def sections(text: str) -> list[str]:
    """The page's "## " headings, skipping fenced code (a "# comment" in a YAML example is no heading)."""
    found, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("## "):
            found.append(line[3:].strip())
    return found


def outline_problems(text: str) -> list[str]:
    found = sections(text)
    problems = [f"missing ## {name}" for name in SECTIONS if name not in found]
    present = [name for name in found if name in SECTIONS]
    if not problems and present != SECTIONS:
        problems.append(f"sections out of order: {present}, want {SECTIONS}")
    body = text.split("## " + SECTIONS[1], 1)[-1].split("## " + SECTIONS[2], 1)[0]
    if role_docs.BEGIN not in body:
        problems.append("the generated table is not under ## Variables")
    return problems


def test_there_are_roles():
    assert ROLES, "no roles found under roles/"


@pytest.mark.parametrize("role", ROLES)
def test_every_role_has_a_page(role):
    assert role_docs.page(REPO, role).is_file(), f"roles/{role} has no docs/roles/{role}.md"


@pytest.mark.parametrize("role", ROLES)
def test_page_has_the_outline(role):
    path = role_docs.page(REPO, role)
    text = path.read_text()
    assert text.startswith("# Role "), f"{path.name}: the first line is not the '# Role ...' title"
    assert outline_problems(text) == [], f"{path.name}: {outline_problems(text)}"


def test_tables_are_current():
    assert role_docs.stale(REPO) == [], "stale: run python tools/role_docs.py"


def test_check_exits_zero_on_this_tree():
    res = subprocess.run([sys.executable, str(REPO / "tools" / "role_docs.py"), "--check"],
                         capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr


@pytest.fixture(name="copy")
def fixture_copy(tmp_path: Path) -> Path:
    """The pages and argument specs in a scratch tree, to spoil without touching the repository."""
    shutil.copytree(REPO / "docs" / "roles", tmp_path / "docs" / "roles")
    for role in ROLES:
        (tmp_path / "roles" / role / "meta").mkdir(parents=True)
        shutil.copy(REPO / "roles" / role / "meta" / "argument_specs.yml", tmp_path / "roles" / role / "meta")
    return tmp_path


def test_check_names_a_table_edited_by_hand(copy: Path):
    page = role_docs.page(copy, ROLES[0])
    head, table = page.read_text().split(role_docs.BEGIN, 1)
    page.write_text(head + role_docs.BEGIN + re.sub(r"\| `(\w+)` \|", r"| `\1_renamed` |", table, count=1))
    assert role_docs.stale(copy) == [f"docs/roles/{ROLES[0]}.md"]
    assert role_docs.main(["--check"], root=copy) == 1
    assert role_docs.main([], root=copy) == 0  # rewriting repairs it
    assert role_docs.stale(copy) == []


def test_check_names_a_role_without_a_page(copy: Path):
    (copy / "roles" / "newrole" / "meta").mkdir(parents=True)
    (copy / "roles" / "newrole" / "meta" / "argument_specs.yml").write_text("argument_specs: {main: {options: {}}}\n")
    (copy / "roles" / "_private").mkdir()  # leading "_": no page owed
    assert role_docs.stale(copy) == ["docs/roles/newrole.md"]


def test_outline_check_catches_a_missing_or_misplaced_section():
    text = role_docs.page(REPO, ROLES[0]).read_text()
    assert outline_problems(text.replace("## Limits", "## Caveats")) == ["missing ## Limits"]
    swapped = text.replace("## Limits", "## TMP").replace("## How it is tested", "## Limits").replace("## TMP", "## How it is tested")
    assert outline_problems(swapped) and "out of order" in outline_problems(swapped)[0]


def test_markup_and_cells():
    assert role_docs.markup("C(a) I(b) L(text,https://x) U(https://y) O(c=d)") == "`a` *b* [text](https://x) https://y `c=d`"
    spec = {"type": "str", "default": "{{ x | default('y') }}", "description": ["one", "C(two)"]}
    assert role_docs.rows({"demo_a": spec}) == ["| `demo_a` | str | `{{ x \\| default('y') }}` | one `two` |"]
    long = {"type": "dict", "default": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}, "description": "d"}
    assert "see `defaults/main.yml`" in role_docs.default(long)
