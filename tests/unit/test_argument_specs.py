"""Every role's meta/argument_specs.yml must describe exactly the variables of its defaults/main.yml, and those of
its variables that roles/_common defines (the ones other roles read), with the same default values, types that
accept them, and a description for each option. Every variable roles/_common defines is either unimon_* (shared,
docs/shared.md) or documented by the role it belongs to."""
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ROLES = sorted(p.parent.parent for p in REPO.glob("roles/*/defaults/main.yml") if not p.parent.parent.name.startswith("_"))
COMMON = REPO / "roles" / "_common" / "defaults" / "main.yml"
TYPE_CHECKS = {
    "str": lambda v: isinstance(v, str),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "dict": lambda v: isinstance(v, dict),
    "list": lambda v: isinstance(v, list),
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "raw": lambda v: True,
    "path": lambda v: isinstance(v, str),
}


def load(path: Path):
    return yaml.safe_load(path.read_text()) or {}


def test_there_are_roles():
    assert ROLES, "no roles found under roles/"


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_every_role_has_argument_specs(role: Path):
    assert (role / "meta" / "argument_specs.yml").is_file(), f"{role.name}: meta/argument_specs.yml missing"


def owned(role: Path, common: dict) -> dict:
    """The role's defaults plus the variables of this role that roles/_common defines."""
    return {**{k: v for k, v in common.items() if k.startswith(role.name + "_")}, **load(role / "defaults" / "main.yml")}


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_defaults_and_specs_agree(role: Path, common: dict | None = None):
    defaults = owned(role, load(COMMON) if common is None else common)
    options = load(role / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]
    assert set(defaults) == set(options), (
        f"{role.name}: only in defaults: {sorted(set(defaults) - set(options))}; "
        f"only in argument_specs: {sorted(set(options) - set(defaults))}")
    for name, value in defaults.items():
        spec = options[name]
        assert name.startswith(role.name + "_"), f"{name} does not start with the role name {role.name}_"
        assert spec.get("description"), f"{role.name}: {name} has no description"
        assert "default" in spec, f"{role.name}: {name} has no default in argument_specs"
        assert spec["default"] == value, f"{role.name}: {name} default differs: {spec['default']!r} != {value!r}"
        typ = spec.get("type", "str")
        templated = isinstance(value, str) and "{{" in value
        if not templated:
            assert TYPE_CHECKS[typ](value), f"{role.name}: {name} default {value!r} is not of type {typ}"
        if "choices" in spec and not templated:
            values = value if typ == "list" else [value]  # for lists, choices apply to each element
            assert set(values) <= set(spec["choices"]), f"{role.name}: {name} default {value!r} not in choices"


def test_every_common_value_is_shared_or_belongs_to_a_role():
    roles = {role.name for role in ROLES}
    for name in load(COMMON):
        assert name.startswith(("unimon_", "_unimon_")) or any(name.startswith(r + "_") for r in roles), \
            f"roles/_common defines {name}: neither unimon_* nor a role's variable"


def test_a_role_variable_defined_only_in_common_must_be_in_its_specs(tmp_path: Path):
    role = tmp_path / "demo"
    (role / "defaults").mkdir(parents=True)
    (role / "meta").mkdir()
    (role / "defaults" / "main.yml").write_text("demo_a: 1\n")
    (role / "meta" / "argument_specs.yml").write_text(
        "argument_specs:\n  main:\n    options:\n      demo_a:\n        description: a\n        type: int\n        default: 1\n")
    test_defaults_and_specs_agree(role, common={})
    with pytest.raises(AssertionError, match="only in defaults: \\['demo_b'\\]"):
        test_defaults_and_specs_agree(role, common={"demo_b": "x"})


def test_spec_checker_catches_a_mismatch(tmp_path: Path):
    """The consistency check itself must fail on a disagreeing role (guards against a vacuous test)."""
    role = tmp_path / "demo"
    (role / "defaults").mkdir(parents=True)
    (role / "meta").mkdir()
    (role / "defaults" / "main.yml").write_text("demo_a: 1\ndemo_b: x\n")
    (role / "meta" / "argument_specs.yml").write_text(
        "argument_specs:\n  main:\n    options:\n      demo_a:\n        description: a\n        type: int\n        default: 2\n")
    with pytest.raises(AssertionError):
        test_defaults_and_specs_agree(role, common={})
