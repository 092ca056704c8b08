"""Inventory speed on the lab: unimon.stack.cluster against kubevirt.core.kubevirt over the same
2,000 VirtualMachineInstances (20 namespaces x 100) and 100 nodes, measured in the same run and
printed as ratios, plus the API requests each plugin makes (counted by lab/api_counter.py, a reverse
proxy in front of the lab apiserver; timings are taken without the proxy).

Both plugins run as `ansible-inventory --list` (what a user runs), several rounds alternating the
order; the median counts. The startup of ansible-inventory with a one-host inventory is measured
too and reported, so the ratio of the plugin work alone can be read. kubevirt.core only reads VMIs
(and VMs and Services per namespace); ours also reads the 100 nodes.

The objects carry the label unimon-bench=inventory, both plugins select on it, and everything is
deleted at the end. The nodes have no kwok annotation and no kubernetes.io/os label, so kwok and the
stack's DaemonSets leave them alone. Run through `make bench-inventory` (lab up). Not part of make test.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "lab"))
from api_counter import ApiCounter  # noqa: E402  pylint: disable=wrong-import-position

BIN = Path(sys.executable).parent
LABEL = {"unimon-bench": "inventory"}
SELECTOR = "unimon-bench=inventory"
ZONES = ["bench-zone-a", "bench-zone-b", "bench-zone-c"]


def lab_env() -> dict:
    out = subprocess.run([sys.executable, str(REPO / "lab" / "labctl.py"), "env"], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)


def api_client(kubeconfig: str, pool: int) -> client.ApiClient:
    api = config.new_client_from_config(config_file=kubeconfig)
    api.configuration.connection_pool_maxsize = pool
    api.rest_client.pool_manager.connection_pool_kw["maxsize"] = pool
    return api


def ignore_conflict(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except ApiException as exc:
        if exc.status != 409:
            raise
        return None


def create_objects(api, namespaces: int, per_namespace: int, nodes: int, workers: int) -> None:
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    t0 = time.perf_counter()
    names = [f"unimon-bench-inv-{i:02d}" for i in range(namespaces)]
    for ns in names:
        ignore_conflict(core.create_namespace, {"metadata": {"name": ns, "labels": LABEL}})

    def node(i: int) -> None:
        name = f"unimon-bench-node-{i:03d}"
        role = "control-plane" if i < 3 else ("infra" if i % 10 == 0 else "worker")
        ignore_conflict(core.create_node, {"metadata": {"name": name, "labels": {
            **LABEL, f"node-role.kubernetes.io/{role}": "", "topology.kubernetes.io/zone": ZONES[i % 3]}}})
        core.patch_node_status(name, {"status": {"addresses": [
            {"type": "InternalIP", "address": f"10.253.{i // 250}.{i % 250 + 1}"},
            {"type": "Hostname", "address": name}]}})

    def vmi(idx: int) -> None:
        ns, n = names[idx // per_namespace], idx % per_namespace
        connected = "True" if idx % 2 == 0 else "False"
        body = {
            "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
            "metadata": {"name": f"vm-{n:03d}", "namespace": ns,
                         "labels": {**LABEL, "app": ["web", "db", "cache", "batch"][n % 4]}},
            "spec": {"domain": {"devices": {"interfaces": [{"name": "default", "masquerade": {}}]},
                                "resources": {"requests": {"memory": "1Gi"}}},
                     "networks": [{"name": "default", "pod": {}}]},
            # VMI has no status subresource (as upstream): the status is stored with the object.
            "status": {"phase": "Running", "nodeName": f"unimon-bench-node-{idx % nodes:03d}",
                       "conditions": [{"type": "Ready", "status": "True"},
                                      {"type": "AgentConnected", "status": connected}],
                       "interfaces": [{"name": "default", "ipAddress": f"10.254.{idx // 250}.{idx % 250 + 1}",
                                       "ipAddresses": [f"10.254.{idx // 250}.{idx % 250 + 1}"]}],
                       "guestOSInfo": {"id": "fedora", "name": "Fedora Linux", "version": "41",
                                       "prettyName": "Fedora Linux 41", "kernelRelease": "6.11.4"}},
        }
        ignore_conflict(custom.create_namespaced_custom_object, "kubevirt.io", "v1", ns, "virtualmachineinstances",
                        body)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(node, range(nodes)))
        list(pool.map(vmi, range(namespaces * per_namespace)))
    print(f"created {nodes} nodes and {namespaces * per_namespace} VMIs in {namespaces} namespaces "
          f"in {time.perf_counter() - t0:.1f}s", flush=True)


def delete_objects(api, workers: int) -> None:
    core = client.CoreV1Api(api)
    t0 = time.perf_counter()
    nodes = [n.metadata.name for n in core.list_node(label_selector=SELECTOR).items]
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(core.delete_node, nodes))
    namespaces = [n.metadata.name for n in core.list_namespace(label_selector=SELECTOR).items]
    for ns in namespaces:
        ignore_conflict(core.delete_namespace, ns)
    deadline = time.time() + 600
    while time.time() < deadline and core.list_namespace(label_selector=SELECTOR).items:
        time.sleep(2)
    left = len(core.list_namespace(label_selector=SELECTOR).items)
    print(f"deleted {len(nodes)} nodes and {len(namespaces)} namespaces in {time.perf_counter() - t0:.1f}s"
          + (f" ({left} namespaces still terminating)" if left else ""), flush=True)


def run_inventory(path: Path) -> tuple[float, dict]:
    env = {**os.environ, "ANSIBLE_INVENTORY_UNPARSED_FAILED": "1", "ANSIBLE_DEPRECATION_WARNINGS": "0"}
    t0 = time.perf_counter()
    proc = subprocess.run([str(BIN / "ansible-inventory"), "-i", str(path), "--list"], capture_output=True,
                          text=True, env=env, check=False)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"bench: ansible-inventory -i {path} failed:\n{proc.stderr[-3000:]}")
    return elapsed, json.loads(proc.stdout)


def configs(tmp: Path, kubeconfig: str, suffix: str) -> tuple[Path, Path]:
    ours = tmp / f"{suffix}.cluster.yml"
    ours.write_text(json.dumps({"plugin": "unimon.stack.cluster", "connections": [{"kubeconfig": kubeconfig}],
                                "node_label_selector": SELECTOR, "vmi_label_selector": SELECTOR}))
    theirs = tmp / f"{suffix}.kubevirt.yml"
    theirs.write_text(json.dumps({"plugin": "kubevirt.core.kubevirt", "kubeconfig": kubeconfig,
                                  "label_selector": SELECTOR}))
    return ours, theirs


def vmi_hosts(inv: dict, ours: bool) -> set[str]:
    if ours:
        return set(inv.get("vmis", {}).get("hosts", []))
    return set(inv["_meta"]["hostvars"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--namespaces", type=int, default=20)
    parser.add_argument("--per-namespace", type=int, default=100)
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--keep", action="store_true", help="leave the objects in place")
    args = parser.parse_args()
    if "ANSIBLE_COLLECTIONS_PATH" not in os.environ:
        sys.exit("bench: ANSIBLE_COLLECTIONS_PATH is not set: run through make bench-inventory")
    env = lab_env()
    api = api_client(env["kubeconfig"], args.workers)
    total = args.namespaces * args.per_namespace
    try:
        create_objects(api, args.namespaces, args.per_namespace, args.nodes, args.workers)
        with tempfile.TemporaryDirectory() as tmpdir:
            tmp = Path(tmpdir)
            ours, theirs = configs(tmp, env["kubeconfig"], "direct")
            one_host = tmp / "hosts.ini"
            one_host.write_text("localhost\n")
            times: dict[str, list[float]] = {"ours": [], "kubevirt.core": [], "startup": []}
            results = {}
            for rnd in range(args.rounds):
                order = [("ours", ours), ("kubevirt.core", theirs)]
                for name, path in order if rnd % 2 == 0 else order[::-1]:
                    elapsed, results[name] = run_inventory(path)
                    times[name].append(elapsed)
                times["startup"].append(run_inventory(one_host)[0])
            ours_hosts, their_hosts = vmi_hosts(results["ours"], True), vmi_hosts(results["kubevirt.core"], False)
            if len(ours_hosts) != total or ours_hosts != their_hosts:
                sys.exit(f"bench: the plugins disagree: ours {len(ours_hosts)} VMIs, kubevirt.core "
                         f"{len(their_hosts)}, common {len(ours_hosts & their_hosts)}")
            node_hosts = len(results["ours"].get("nodes", {}).get("hosts", []))

            calls = {}
            with ApiCounter() as counter:
                ours_c, theirs_c = configs(tmp, str(counter.kubeconfig(tmp / "counted-kubeconfig")), "counted")
                for name, path in (("ours", ours_c), ("kubevirt.core", theirs_c)):
                    counter.reset()
                    run_inventory(path)
                    calls[name] = list(counter.requests)
    finally:
        if not args.keep:
            delete_objects(api, args.workers)

    med = {k: statistics.median(v) for k, v in times.items()}
    work = {k: max(med[k] - med["startup"], 1e-3) for k in ("ours", "kubevirt.core")}

    def kinds(reqs: list[dict]) -> str:
        counts: dict[str, int] = {}
        for r in reqs:
            parts = r["path"].strip("/").split("/")
            rest = parts[2:] if parts[0] == "api" else parts[3:]
            if not rest:
                key = "discovery"
            elif rest[0] == "namespaces" and len(rest) >= 3:
                key = rest[2]
            else:
                key = rest[0]
            counts[key] = counts.get(key, 0) + 1
        return ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))

    print(f"\nobjects: {total} VMIs in {args.namespaces} namespaces, {args.nodes} nodes "
          f"(both plugins return the same {len(ours_hosts)} VMI hosts; ours adds {node_hosts} node hosts)")
    print(f"rounds: {args.rounds}, medians of `ansible-inventory --list` wall time")
    print(f"  unimon.stack.cluster     {med['ours']:7.2f}s   API requests {len(calls['ours']):4d}  ({kinds(calls['ours'])})")
    print(f"  kubevirt.core.kubevirt   {med['kubevirt.core']:7.2f}s   API requests {len(calls['kubevirt.core']):4d}"
          f"  ({kinds(calls['kubevirt.core'])})")
    print(f"  ansible-inventory startup (one static host) {med['startup']:.2f}s")
    print(f"ratio kubevirt.core / ours, wall time:           {med['kubevirt.core'] / med['ours']:.2f}x")
    print(f"ratio kubevirt.core / ours, minus startup:       {work['kubevirt.core'] / work['ours']:.2f}x")
    print(f"ratio kubevirt.core / ours, API requests:        {len(calls['kubevirt.core']) / len(calls['ours']):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
