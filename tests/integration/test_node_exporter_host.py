"""node_exporter host mode against this machine, through playbooks/hosts.yml (group unimon_hosts).

Real throughout: the role installs the lab's node_exporter binary (built from the Go module) with a real
user and unit file; `systemd-analyze verify` (the real systemd tool) checks the unit; the unit's exact
ExecStart command line runs as its User= inside a fresh network namespace test host and is scraped over
the veth pair, with the basic auth the role configured. One thing cannot run here: PID 1 is not systemd,
so the service itself is not started by systemd; the role's install runs with
node_exporter_host_manage_service=false, and a separate test proves that without that switch the role
refuses to run on a host whose service manager is not systemd. Every name (binary, unit, user, config
directory) is unique to the test run, and teardown removes what is left.
"""
from __future__ import annotations

import crypt  # pylint: disable=deprecated-module
import hashlib
import http.server
import io
import shutil
import subprocess
import tarfile
import threading
from pathlib import Path

import pytest

from hostmode import (NetnsHost, exec_start, http_get, lab_node_exporter, run_hosts_playbook, snapshot,
                      unit_value, user_exists, wait_http)

pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")

PASSWORD = "scrape-me-please"


def names(tag: str) -> dict:
    return {
        "node_exporter_host_binary_name": f"node_exporter_t{tag}",
        "node_exporter_host_service_name": f"unimon-test-ne-{tag}",
        "node_exporter_host_user": f"unimon-ne{tag}",
        "node_exporter_host_group": f"unimon-ne{tag}",
        "node_exporter_host_config_dir": f"/etc/unimon-test-ne-{tag}",
        "node_exporter_host_manage_service": False,
    }


def paths(v: dict) -> dict:
    return {
        "binary": Path(v.get("node_exporter_host_binary_dir", "/usr/local/bin")) / v["node_exporter_host_binary_name"],
        "unit": Path("/etc/systemd/system") / f"{v['node_exporter_host_service_name']}.service",
        "web": Path(v["node_exporter_host_config_dir"]) / "web-config.yml",
        "config_dir": Path(v["node_exporter_host_config_dir"]),
    }


def cleanup(v: dict) -> None:
    """Last resort after the role's own uninstall: never leave test files or users behind."""
    p = paths(v)
    for f in (p["binary"], p["unit"]):
        f.unlink(missing_ok=True)
    shutil.rmtree(p["config_dir"], ignore_errors=True)
    for cmd, name in (("userdel", v["node_exporter_host_user"]), ("groupdel", v["node_exporter_host_group"])):
        if name.startswith("unimon-ne"):  # only names this test made up (a bad-input case uses root)
            subprocess.run([cmd, name], check=False, capture_output=True)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The role run once with source=file (the lab's binary), basic auth and a textfile directory."""
    binary = lab_node_exporter()
    if not binary.is_file():
        pytest.fail(f"{binary} missing: run lab/build.sh node_exporter")
    tmp = tmp_path_factory.mktemp("nehost")
    tag = hashlib.sha1(str(tmp).encode()).hexdigest()[:6]
    textfile = Path(f"/var/tmp/unimon-test-ne-{tag}")  # the service user must reach it (pytest's tmp is 0700)
    v = {**names(tag),
         "node_exporter_host_source": "file",
         "node_exporter_host_file": str(binary),
         "node_exporter_host_textfile_dir": str(textfile),
         "node_exporter_host_enabled_collectors": ["textfile"],
         "node_exporter_disabled_collectors": ["wifi"],
         "node_exporter_host_basic_auth_users": {"prometheus": crypt.crypt(PASSWORD, crypt.mksalt(crypt.METHOD_BLOWFISH))},
         # '$' must reach node-exporter through systemd's escaping ($$ in the unit).
         "node_exporter_extra_args": ["--collector.filesystem.mount-points-exclude=^/(dev|proc|sys|run)($|/)"]}
    try:
        with NetnsHost() as host:  # its processes stop before the user is removed below
            v["node_exporter_host_listen_address"] = host.ip
            v["node_exporter_port"] = 9100
            run = run_hosts_playbook(tmp, "unimon_hosts", v)
            assert run.rc == 0, run.out[-4000:]
            yield {"vars": v, "run": run, "host": host, "tmp": tmp, **paths(v)}
    finally:
        run_hosts_playbook(tmp, "unimon_hosts", {**v, "node_exporter_state": "absent"})
        cleanup(v)
        shutil.rmtree(textfile, ignore_errors=True)


def test_install_creates_binary_user_unit(installed):
    assert installed["run"].changed > 0
    b = installed["binary"]
    assert b.is_file() and b.stat().st_mode & 0o777 == 0o755
    assert hashlib.sha256(b.read_bytes()).hexdigest() == hashlib.sha256(lab_node_exporter().read_bytes()).hexdigest()
    user = installed["vars"]["node_exporter_host_user"]
    assert user_exists(user)
    shell = subprocess.run(["getent", "passwd", user], capture_output=True, text=True, check=True).stdout.strip()
    assert shell.endswith(":/usr/sbin/nologin"), shell
    unit = installed["unit"].read_text()
    assert unit_value(unit, "User") == user
    for option in ("NoNewPrivileges=true", "ProtectSystem=strict", "ProtectHome=read-only", "PrivateTmp=true",
                   "CapabilityBoundingSet=", "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK"):
        assert option in unit.splitlines(), option
    web = installed["web"]
    assert web.stat().st_mode & 0o777 == 0o640
    assert "$2b$" in web.read_text()
    assert Path(installed["vars"]["node_exporter_host_textfile_dir"]).is_dir()


def test_systemd_accepts_the_unit(installed):
    res = subprocess.run(["systemd-analyze", "verify", str(installed["unit"])], capture_output=True, text=True,
                         check=False)
    assert res.returncode == 0, res.stderr
    assert installed["unit"].name not in res.stderr, res.stderr


def test_exec_start_serves_metrics_in_a_test_host(installed):
    """The unit's exact ExecStart, as its User=/Group=, in a network namespace; scraped from outside."""
    unit = installed["unit"].read_text()
    argv = exec_start(unit)
    assert argv[0] == str(installed["binary"])
    assert "--collector.filesystem.mount-points-exclude=^/(dev|proc|sys|run)($|/)" in argv
    host = installed["host"]
    textfile = Path(installed["vars"]["node_exporter_host_textfile_dir"])
    (textfile / "unimon_test.prom").write_text("unimon_host_test_marker 42\n")
    proc = host.start(argv, unit_value(unit, "User"), unit_value(unit, "Group"))
    try:
        url = f"http://{host.ip}:9100/metrics"
        status = wait_http(url, proc)[0]
        assert status == 401, "basic auth from the role's web config is not enforced"
        status, body = http_get(url, ("prometheus", PASSWORD))
        assert status == 200
        assert 'node_exporter_build_info{' in body and 'version="1.10.2"' in body
        assert "unimon_host_test_marker 42" in body, "textfile collector did not read the role's directory"
        assert 'node_scrape_collector_success{collector="wifi"}' not in body
        status = http_get(url, ("prometheus", "wrong"))[0]
        assert status == 401
    finally:
        proc.terminate()  # the user cannot be removed later while it runs a process
        proc.wait(timeout=10)


def test_second_run_changes_nothing(installed):
    run = run_hosts_playbook(installed["tmp"], "unimon_hosts", installed["vars"])
    assert run.rc == 0, run.out[-3000:]
    assert run.changed == 0, run.out[-3000:]


def test_check_diff_writes_nothing(installed):
    files = [installed["binary"], installed["unit"], installed["web"], installed["config_dir"]]
    before = snapshot(files)
    changed_vars = {**installed["vars"], "node_exporter_port": 9101, "node_exporter_host_basic_auth_users": {}}
    run = run_hosts_playbook(installed["tmp"], "unimon_hosts", changed_vars, "--check", "--diff")
    assert run.rc == 0, run.out[-3000:]
    assert run.changed > 0, "check mode did not report the pending changes"
    assert "9101" in run.out, "no diff shown for the unit"
    assert snapshot(files) == before


def test_manage_service_needs_systemd(installed):
    """Without the switch the role refuses this host (PID 1 is not systemd) before writing anything."""
    tag = "x" + installed["vars"]["node_exporter_host_binary_name"][-5:]
    v = {**names(tag), "node_exporter_host_source": "file", "node_exporter_host_file": str(lab_node_exporter()),
         "node_exporter_host_manage_service": True}
    try:
        run = run_hosts_playbook(installed["tmp"], "unimon_hosts", v)
        assert run.rc != 0
        assert "node_exporter_host_manage_service=false" in run.out, run.out[-3000:]
        assert not paths(v)["binary"].exists() and not paths(v)["unit"].exists()
        assert not user_exists(v["node_exporter_host_user"])
    finally:
        cleanup(v)


BAD = [
    ("node_exporter_host_source", "ftp", "node_exporter_host_source"),
    ("node_exporter_host_file", "relative/node_exporter", "node_exporter_host_file"),
    ("node_exporter_host_checksums", {"amd64": "md5:abc"}, "node_exporter_host_checksums"),
    ("node_exporter_host_basic_auth_users", {"prometheus": "plain-password"}, "node_exporter_host_basic_auth_users"),
    ("node_exporter_host_tls_cert_file", "/etc/ssl/cert.pem", "node_exporter_host_tls_key_file"),
    ("node_exporter_host_user", "root", "node_exporter_host_user"),
    ("node_exporter_host_service_name", "node_exporter.service", "node_exporter_host_service_name"),
    ("node_exporter_host_enabled_collectors", ["systemd", "Bad-Name"], "node_exporter_host_enabled_collectors"),
]


@pytest.mark.parametrize("var,value,needle", BAD, ids=[b[0] + "-" + str(i) for i, b in enumerate(BAD)])
def test_bad_input_fails_before_any_write(installed, var, value, needle):
    tag = "b" + hashlib.sha1(f"{var}{value}".encode()).hexdigest()[:5]
    v = {**names(tag), "node_exporter_host_source": "file", "node_exporter_host_file": str(lab_node_exporter()),
         var: value}
    if var == "node_exporter_host_file":
        v["node_exporter_host_file"] = value
    try:
        run = run_hosts_playbook(installed["tmp"], "unimon_hosts", v)
        assert run.rc != 0, f"{var}={value!r} was accepted"
        assert needle in run.out, run.out[-3000:]
        assert "Check every host's input before anything is written" in run.out
        assert "Install node-exporter on plain hosts" not in run.out, "failed only after the install play started"
        assert not paths(v)["unit"].exists() and not paths(v)["binary"].exists()
        assert var == "node_exporter_host_user" or not user_exists(v["node_exporter_host_user"])
    finally:
        cleanup(v)


def _release_tarball(dest: Path, binary: Path) -> Path:
    """A tarball in the upstream release layout, holding the lab's binary (GitHub is unreachable here)."""
    name = "node_exporter-1.10.2.linux-amd64"
    out = dest / "v1.10.2" / f"{name}.tar.gz"
    out.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out, "w:gz") as tar:
        tar.add(binary, arcname=f"{name}/node_exporter")
        info = tarfile.TarInfo(f"{name}/LICENSE")
        data = b"Apache License 2.0 (test stand-in)\n"
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return out


@pytest.fixture
def release_server(tmp_path, installed):
    """A local HTTP mirror with the release URL layout, serving a tarball built from the lab binary."""
    root = tmp_path / "mirror"
    tarball = _release_tarball(root, lab_node_exporter())

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(root), **kw)

        def log_message(self, *_):  # keep pytest output clean
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield {"url": f"http://127.0.0.1:{srv.server_address[1]}", "tarball": tarball,
           "sha256": hashlib.sha256(tarball.read_bytes()).hexdigest()}
    srv.shutdown()


def test_release_source_downloads_checks_and_installs(installed, release_server, tmp_path):
    """source=release through a mirror URL: download on the controller, sha256 check, unpack, copy; then a
    wrong checksum fails the download and installs nothing; source=file with the same tarball works too."""
    if subprocess.run(["uname", "-m"], capture_output=True, text=True, check=True).stdout.strip() != "x86_64":
        pytest.skip("the mirror tarball is built for amd64")
    tag = "r" + installed["vars"]["node_exporter_host_binary_name"][-5:]
    v = {**names(tag), "node_exporter_host_source": "release",
         "node_exporter_host_release_base_url": release_server["url"],
         "node_exporter_host_download_dir": str(tmp_path / "cache"),
         "node_exporter_host_checksums": {"amd64": "sha256:" + release_server["sha256"]}}
    try:
        bad = run_hosts_playbook(tmp_path, "unimon_hosts", {**v, "node_exporter_host_checksums": {"amd64": "sha256:" + "0" * 64}})
        assert bad.rc != 0 and "checksum" in bad.out.lower(), bad.out[-3000:]
        assert not paths(v)["binary"].exists()

        run = run_hosts_playbook(tmp_path, "unimon_hosts", v)
        assert run.rc == 0, run.out[-4000:]
        assert hashlib.sha256(paths(v)["binary"].read_bytes()).digest() == \
            hashlib.sha256(lab_node_exporter().read_bytes()).digest()
        assert (tmp_path / "cache" / "node_exporter-1.10.2.linux-amd64.tar.gz").is_file()
        again = run_hosts_playbook(tmp_path, "unimon_hosts", v)
        assert again.rc == 0 and again.changed == 0, again.out[-3000:]

        as_file = {**v, "node_exporter_host_source": "file", "node_exporter_host_file": str(release_server["tarball"])}
        run = run_hosts_playbook(tmp_path, "unimon_hosts", as_file)
        assert run.rc == 0, run.out[-3000:]
        assert "changed: [localhost]" not in run.out.split("TASK [unimon.stack.node_exporter : Install the binary]")[1] \
            .split("TASK")[0], "the same binary from a local tarball was copied again"
        again = run_hosts_playbook(tmp_path, "unimon_hosts", as_file)
        assert again.rc == 0 and again.changed == 0, again.out[-3000:]
    finally:
        run_hosts_playbook(tmp_path, "unimon_hosts", {**v, "node_exporter_state": "absent"})
        cleanup(v)


def test_absent_removes_binary_unit_user(installed):
    v = installed["vars"]
    run = run_hosts_playbook(installed["tmp"], "unimon_hosts", {**v, "node_exporter_state": "absent"})
    assert run.rc == 0, run.out[-3000:]
    assert not installed["binary"].exists()
    assert not installed["unit"].exists()
    assert not installed["config_dir"].exists()
    assert not user_exists(v["node_exporter_host_user"])
    again = run_hosts_playbook(installed["tmp"], "unimon_hosts", {**v, "node_exporter_state": "absent"})
    assert again.rc == 0 and again.changed == 0, again.out[-3000:]


def _dpkg_installed(name: str) -> bool:
    res = subprocess.run(["dpkg-query", "-W", "-f=${Status}", name], capture_output=True, text=True, check=False)
    return res.returncode == 0 and "install ok installed" in res.stdout


@pytest.mark.skipif(shutil.which("apt-get") is None, reason="the package source test uses Debian's package")
def test_package_source_installs_debian_package_with_our_flags(tmp_path):
    """source=package for real: Debian's prometheus-node-exporter (apt), our flags in a drop-in of its unit,
    the drop-in's ExecStart started as the package unit's User= in a test host and scraped; then removed."""
    pkg = "prometheus-node-exporter"
    if _dpkg_installed(pkg):
        pytest.skip(f"{pkg} is installed on this machine already; the test would remove it")
    dropin = Path("/etc/systemd/system/prometheus-node-exporter.service.d/unimon.conf")
    v = {"node_exporter_host_source": "package", "node_exporter_host_manage_service": False,
         "node_exporter_disabled_collectors": ["wifi"]}
    try:
        with NetnsHost() as host:
            v["node_exporter_host_listen_address"] = host.ip
            run = run_hosts_playbook(tmp_path, "unimon_hosts", v, timeout=900)
            assert run.rc == 0, run.out[-4000:]
            assert _dpkg_installed(pkg)
            unit = Path("/lib/systemd/system/prometheus-node-exporter.service")
            verify = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True,
                                    check=False)
            assert verify.returncode == 0, verify.stderr
            argv = exec_start(unit.read_text() + "\n" + dropin.read_text())
            assert argv[0] == "/usr/bin/prometheus-node-exporter"
            assert f"--web.listen-address={host.ip}:9100" in argv and "--no-collector.wifi" in argv
            proc = host.start(argv, unit_value(unit.read_text(), "User"), unit_value(unit.read_text(), "Group"))
            try:
                status, body = wait_http(f"http://{host.ip}:9100/metrics", proc)
                assert status == 200 and "node_exporter_build_info{" in body
            finally:
                proc.terminate()
                proc.wait(timeout=10)
            again = run_hosts_playbook(tmp_path, "unimon_hosts", v)
            assert again.rc == 0 and again.changed == 0, again.out[-3000:]
        gone = run_hosts_playbook(tmp_path, "unimon_hosts", {**v, "node_exporter_state": "absent"})
        assert gone.rc == 0, gone.out[-3000:]
        assert not _dpkg_installed(pkg) and not dropin.parent.exists()
        status = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True,
                                check=False).stdout
        assert "config-files" not in status, "removed but not purged"
    finally:
        if _dpkg_installed(pkg):
            subprocess.run(["apt-get", "remove", "-y", "-q", pkg], check=False, capture_output=True)
        dropin.unlink(missing_ok=True)
