"""Helpers for the host-mode tests: run playbooks/hosts.yml against this machine (localhost, local
connection, already root), start a unit's exact ExecStart command line inside a fresh network
namespace test host, and snapshot files to prove --check writes nothing."""
from __future__ import annotations

import hashlib
import json
import os
import pwd
import secrets
import shlex
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

from lab_fixtures import PlaybookRun
from lab_versions import lab_versions

REPO = Path(__file__).resolve().parents[2]
LAB_CACHE = Path(os.environ.get("UNIMON_LAB_CACHE", Path.home() / ".cache" / "unimon-lab"))


def lab_node_exporter() -> Path:
    """The node_exporter the lab builds from the Go module (lab/build.sh node_exporter)."""
    return LAB_CACHE / "bin" / f"node_exporter-{lab_versions()['NODE_EXPORTER_VERSION']}"


def run_hosts_playbook(tmp: Path, group: str, hostvars: dict, *args: str, timeout: float = 600) -> PlaybookRun:
    """Run playbooks/hosts.yml with this machine as the only host of `group`."""
    if "ANSIBLE_COLLECTIONS_PATH" not in os.environ:
        raise RuntimeError("ANSIBLE_COLLECTIONS_PATH is not set: run through make or export it (see README)")
    inventory = tmp / f"inventory-{secrets.token_hex(3)}.yml"
    host = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
            # The tests run as root already and this machine has no sudo.
            "ansible_become": False, **hostvars}
    inventory.write_text(yaml.safe_dump({"all": {"children": {group: {"hosts": {"localhost": host}}}}}))
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory),
           str(REPO / "playbooks" / "hosts.yml"), *args]
    env = {**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=timeout, env=env)
    return PlaybookRun(proc)


def exec_start(unit_text: str) -> list[str]:
    """ExecStart= of a unit as systemd splits it: continuation lines joined, quotes removed, '$$' and '%%'
    unescaped. The last non-empty ExecStart= wins (drop-ins reset it with an empty one)."""
    text = unit_text.replace("\\\n", " ")
    values = [line.split("=", 1)[1].strip() for line in text.splitlines() if line.startswith("ExecStart=")]
    value = [v for v in values if v][-1]
    return [w.replace("$$", "$").replace("%%", "%") for w in shlex.split(value)]


def unit_value(unit_text: str, key: str) -> str | None:
    for line in unit_text.splitlines():
        if line.startswith(key + "="):
            return line.split("=", 1)[1].strip()
    return None


def snapshot(paths) -> dict:
    """Content hash, mtime and mode of each path (None when absent)."""
    out = {}
    for p in map(Path, paths):
        if p.is_file():
            st = p.stat()
            out[str(p)] = (hashlib.sha256(p.read_bytes()).hexdigest(), st.st_mtime_ns, st.st_mode)
        elif p.is_dir():
            out[str(p)] = ("dir", p.stat().st_mtime_ns, p.stat().st_mode)
        else:
            out[str(p)] = None
    return out


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


class NetnsHost:
    """A test host: a fresh network namespace joined to this machine by a veth pair on its own /30."""

    def __init__(self):
        tag = secrets.token_hex(3)
        self.ns = f"unimon-h{tag}"
        self.veth_host, self.veth_ns = f"uh{tag}h", f"uh{tag}n"
        third = int(tag[:2], 16)
        fourth = (int(tag[2:4], 16) // 4) * 4
        self.host_ip = f"10.251.{third}.{fourth + 1}"
        self.ip = f"10.251.{third}.{fourth + 2}"
        self.procs: list[subprocess.Popen] = []

    def __enter__(self):
        def ip(*a):
            subprocess.run(["ip", *a], check=True, capture_output=True)
        ip("netns", "add", self.ns)
        ip("link", "add", self.veth_host, "type", "veth", "peer", "name", self.veth_ns)
        ip("link", "set", self.veth_ns, "netns", self.ns)
        ip("addr", "add", f"{self.host_ip}/30", "dev", self.veth_host)
        ip("link", "set", self.veth_host, "up")
        ip("-n", self.ns, "addr", "add", f"{self.ip}/30", "dev", self.veth_ns)
        ip("-n", self.ns, "link", "set", self.veth_ns, "up")
        ip("-n", self.ns, "link", "set", "lo", "up")
        return self

    def start(self, argv: list[str], user: str | None = None, group: str | None = None) -> subprocess.Popen:
        """Run argv inside the namespace, as User=/Group= of the unit when given (like systemd would)."""
        prefix = ["ip", "netns", "exec", self.ns]
        if user:
            prefix += ["setpriv", f"--reuid={user}", f"--regid={group or user}", "--init-groups"]
        proc = subprocess.Popen(prefix + argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.procs.append(proc)
        return proc

    def __exit__(self, *exc):
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        subprocess.run(["ip", "link", "del", self.veth_host], check=False, capture_output=True)
        subprocess.run(["ip", "netns", "del", self.ns], check=False, capture_output=True)


def http_get(url: str, auth: tuple[str, str] | None = None, timeout: float = 5) -> tuple[int, str]:
    req = urllib.request.Request(url)
    if auth:
        import base64  # pylint: disable=import-outside-toplevel
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - test-local address
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, ""


def wait_http(url: str, proc: subprocess.Popen, auth=None, timeout: float = 30) -> tuple[int, str]:
    deadline = time.time() + timeout
    last: object = None
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"process exited with {proc.returncode}: {proc.stdout.read()[-2000:]}")
        try:
            return http_get(url, auth)
        except OSError as err:
            last = err
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer within {timeout}s: {last!r}")


def dump(obj) -> str:
    return json.dumps(obj, indent=1)[:3000]
