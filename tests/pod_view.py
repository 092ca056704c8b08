"""A container's view of its ConfigMap, Secret and projected volumes, laid out in a directory the way the
kubelet lays them out, for programs that read their configuration directory (categraf).

The kubelet's atomic writer (pkg/volume/util/atomic_writer.go) writes a volume's files into a hidden
timestamped directory, points `..data` at it, and makes every top-level entry a symlink into `..data`, so
a directory given as `items[].path: input.x/x.toml` appears as the symlink `input.x -> ..data/input.x`.
Where another volume is mounted inside such a volume, the kubelet first creates the mount point as a real
directory in it (pkg/volume/util/nested_volumes.go); the inner volume's own entries are symlinks again.
When the lab's nodes run a real kubelet, the peer tier can read the real layout instead (issue 22)."""
from __future__ import annotations

import base64
import os
from pathlib import Path

STAMP = "..2026_12_01_00_00_00.000000001"


def volume_files(volume: dict, objects: dict) -> dict[str, str]:
    """path -> content of a configMap, secret or projected volume, from the rendered objects
    (keyed 'Kind/name'); items select and rename keys as the kubelet does."""
    sources = volume["projected"]["sources"] if "projected" in volume else [volume]
    files: dict[str, str] = {}
    for source in sources:
        if "configMap" in source:
            ref, kind = source["configMap"], "ConfigMap"
        elif "secret" in source:
            ref, kind = source["secret"], "Secret"
        else:
            raise ValueError(f"volume source {sorted(source)} is not laid out here")
        name = ref.get("name") or ref.get("secretName")
        obj = objects[f"{kind}/{name}"]
        data = dict(obj.get("data") or {})
        if kind == "Secret":
            data = {k: base64.b64decode(v).decode() for k, v in data.items()} | dict(obj.get("stringData") or {})
        items = ref.get("items") or [{"key": k, "path": k} for k in data]
        for item in items:
            files[item["path"]] = data[item["key"]]
    return files


def _write_volume(target: Path, files: dict[str, str], nested: list[str]) -> None:
    target.mkdir(parents=True, exist_ok=True)
    hidden = target / STAMP
    for path, content in files.items():
        (hidden / path).parent.mkdir(parents=True, exist_ok=True)
        (hidden / path).write_text(content)
    hidden.mkdir(exist_ok=True)
    os.symlink(STAMP, target / "..data")
    for top in sorted({p.split("/", 1)[0] for p in files}):
        os.symlink(f"..data/{top}", target / top)
    for mount_point in nested:  # created before the inner volume is mounted there
        (target / mount_point).mkdir(parents=True, exist_ok=True)


def lay_out(pod_spec: dict, container: str, objects: dict, root: Path) -> Path:
    """Write what the container sees of its volumes under root (root/<mountPath>); returns root."""
    [ctr] = [c for c in pod_spec["containers"] if c["name"] == container]
    volumes = {v["name"]: v for v in pod_spec["volumes"]}
    mounts = sorted(ctr.get("volumeMounts", []), key=lambda m: m["mountPath"].count("/"))
    for mount in mounts:
        path = mount["mountPath"].rstrip("/")
        nested = [m["mountPath"][len(path) + 1:] for m in mounts if m["mountPath"].startswith(path + "/")]
        target = root / path.lstrip("/")
        if target.is_symlink():
            raise ValueError(f"{path} would be mounted over a symlink of another volume")
        _write_volume(target, volume_files(volumes[mount["name"]], objects), nested)
    return root
