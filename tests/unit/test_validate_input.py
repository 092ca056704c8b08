"""unimon.stack.validate_input (plugins/action/validate_input.py) with real Ansible on localhost, no cluster:
every row of tests/bad_input.py fails naming its variable, the defaults pass, all problems come in one failure,
and each roles/<role>/meta/checks.yml is well formed."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jinja2
import pytest
import yaml

from bad_input import CASES, site_roles

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SITE_ROLES = site_roles()
ROLES = sorted(p.parent.parent.name for p in REPO.glob("roles/*/meta/checks.yml"))
KEYS = {"name", "that", "msg", "when", "vars", "loop", "loop_var", "index_var", "include"}


def ansible_playbook(play: list[dict], tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """Runs the play with the lab's inventory, as tests/integration/test_bad_input.py runs site.yml (external
    log store, ...); nothing here contacts the lab."""
    book = tmp_path / "play.yml"
    book.write_text(yaml.safe_dump(play, width=10 ** 6))
    return subprocess.run([str(BIN / "ansible-playbook"), "-i", str(REPO / "lab" / "inventory.yml"), str(book),
                           "-e", json.dumps({"ansible_python_interpreter": sys.executable}), *args],
                          capture_output=True, text=True, timeout=600, check=False,
                          env={**os.environ, "ANSIBLE_NOCOLOR": "1"})


def run_tasks(tmp_path: Path, tasks: list[dict], *args: str):
    """Runs the tasks on localhost (each registered as case_N, errors ignored) and returns the results."""
    for n, task in enumerate(tasks):
        task.update(register=f"case_{n}", ignore_errors=True)
    out = tmp_path / "results.json"
    collect = "{{ {" + ", ".join(f"'{n}': case_{n}" for n in range(len(tasks))) + "} | to_json }}"
    play = [{"hosts": "localhost", "connection": "local", "gather_facts": False,
             "tasks": tasks + [{"ansible.builtin.copy": {"content": collect, "dest": str(out), "mode": "0600"},
                                "check_mode": False}]}]
    proc = ansible_playbook(play, tmp_path, *args)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads(out.read_text())
    return [results[str(n)] for n in range(len(tasks))], proc.stdout


def validate(roles, variables=None, **args):
    return {"unimon.stack.validate_input": {"roles": roles, **args}, "vars": variables or {}}


def test_every_role_has_checks():
    with_defaults = sorted(p.parent.parent.name for p in REPO.glob("roles/*/defaults/main.yml"))
    assert ROLES == with_defaults


@pytest.mark.parametrize("role", ROLES)
def test_checks_are_well_formed(role):
    env = jinja2.Environment()
    checks = yaml.safe_load((REPO / "roles" / role / "meta" / "checks.yml").read_text())
    assert isinstance(checks, list) and checks
    for check in checks:
        assert set(check) <= KEYS, f"{role}: unknown keys {set(check) - KEYS}"
        if "include" in check:
            assert (REPO / "roles" / check["include"] / "meta" / "checks.yml").is_file()
            continue
        assert check.get("msg"), f"{role}: a check without msg: {check}"
        thats = check["that"] if isinstance(check["that"], list) else [check["that"]]
        for expression in thats + [check.get("when", "true"), check.get("loop", "[]")]:
            assert "{{" not in expression, f"{role}: {expression!r} is an expression, not a template"
            env.parse("{{ (%s) }}" % expression)  # raises on a syntax error
        for template in [check["msg"], *(check.get("vars") or {}).values()]:
            env.parse(str(template))


def test_defaults_pass(tmp_path):
    (result,), _output = run_tasks(tmp_path, [validate(SITE_ROLES + ["guest_agent"], {"guest_agent_node_exporter": True})])
    assert not result.get("failed"), result["msg"]
    assert result["validated"] == SITE_ROLES + ["guest_agent"]


def test_every_bad_value_is_refused_naming_its_variable(tmp_path):
    """The table site.yml is tested with in the lab (one row per role there), all rows here in one run."""
    tasks = [validate(SITE_ROLES, {var: json.loads(value)}) for var, value, _needle in CASES]
    results, out = run_tasks(tmp_path, tasks)
    wrong = [(var, value, needle, result.get("msg")) for (var, value, needle), result in zip(CASES, results)
             if not result.get("failed") or needle not in result.get("msg", "")]
    assert not wrong, "\n".join(map(repr, wrong))
    assert "Traceback" not in out


def test_all_problems_in_one_failure(tmp_path):
    (result,), _output = run_tasks(tmp_path, [validate(SITE_ROLES, {
        "prometheus_replicas": "x", "logging_store_heap": "8g", "verify_expect": [{"jobb": 1}]})])
    assert result["failed"]
    assert result["msg"].startswith("Invalid input (3 problems): (1) argument 'prometheus_replicas'")
    assert "(2) logging_store_heap (8g) must be at most half" in result["msg"]
    assert "(3) verify_expect[0] is" in result["msg"]


def test_a_bad_shared_setting_is_reported_alone(tmp_path):
    """prometheus_namespace and the others derive from unimon_namespace: their own checks would fail too."""
    (result,), _output = run_tasks(tmp_path, [validate(SITE_ROLES, {"unimon_namespace": "Bad", "prometheus_replicas": "x"})])
    assert result["msg"].startswith("Invalid input: unimon_namespace must be a DNS label")
    assert "prometheus" not in result["msg"].split("defaults to it")[1]


def test_argument_specs_can_be_left_to_ansible(tmp_path):
    """A type error is argument_specs' to find; with argument_specs=false only meta/checks.yml runs."""
    tasks = [validate(["kubelet_auth"], {"kubelet_auth_token_duration": 60}),
             validate(["kubelet_auth"], {"kubelet_auth_allow_nodes_proxy": "maybe"}, argument_specs=False),
             validate(["kubelet_auth"], {"kubelet_auth_allow_nodes_proxy": "maybe"})]
    results, _output = run_tasks(tmp_path, tasks)
    assert "kubelet_auth_token_duration" in results[0]["msg"]
    assert not results[1].get("failed")
    assert "kubelet_auth_allow_nodes_proxy" in results[2]["msg"]


def test_an_include_checks_the_other_role_with_its_vars(tmp_path):
    """guest_agent checks node_exporter's host mode input (its checksums) only when it installs node-exporter."""
    bad = {"node_exporter_host_checksums": {"amd64": "md5:abc"}}
    tasks = [validate(["guest_agent"], {**bad, "guest_agent_node_exporter": True}),
             validate(["guest_agent"], {**bad, "guest_agent_node_exporter": False}),
             validate(["node_exporter"], bad)]
    results, _output = run_tasks(tmp_path, tasks)
    assert "with node_exporter_mode=host" in results[0]["msg"]
    assert not results[1].get("failed")
    assert not results[2].get("failed"), "node_exporter_mode defaults to cluster: the host checks do not apply"


def test_runs_in_check_mode_and_refuses_an_unknown_role(tmp_path):
    results, _output = run_tasks(tmp_path, [validate(["prometheus"]), validate(["no_such_role"])], "--check")
    assert results[0]["validated"] == ["prometheus"]
    assert "unimon.stack has no role no_such_role" in results[1]["msg"]


def test_a_role_run_alone_checks_itself(tmp_path):
    """Through its main entry point a role runs Ansible's argument_specs check and then its meta/checks.yml."""
    play = [{"hosts": "localhost", "connection": "local", "gather_facts": False,
             "tasks": [{"ansible.builtin.include_role": {"name": "unimon.stack.kubelet_auth"}}]}]
    proc = ansible_playbook(play, tmp_path, "-e", json.dumps({"kubelet_auth_token_file": "relative/token"}))
    assert proc.returncode != 0
    assert "kubelet_auth_token_file an absolute path" in proc.stdout
    assert "Validating arguments against arg spec 'main'" in proc.stdout
