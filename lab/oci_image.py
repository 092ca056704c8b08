"""Write an OCI image-layout tar that `ctr images import` accepts: one gzip layer holding the given files,
an image config, a manifest and an index whose descriptor names the image (io.containerd.image.name).
Standard library only. The lab builds every image from binaries it built itself; nothing is pulled.

Usage as a module: write_image(out_tar, ref, files={"/bin/x": Path(...)}, entrypoint=[...], ...).
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

# Directories every image gets: programs expect a writable /tmp and an /etc for passwd lookups.
BASE_DIRS = {"/tmp": 0o1777, "/etc": 0o755, "/var": 0o755, "/home/nobody": 0o755}
PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home/nobody:/bin/false\n"
GROUP = "root:x:0:\nnobody:x:65534:\n"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _add(tar: tarfile.TarFile, name: str, data: bytes | None = None, mode: int = 0o644,
         kind: bytes = tarfile.REGTYPE, link: str = "") -> None:
    info = tarfile.TarInfo(name.lstrip("/"))
    info.type, info.mode, info.mtime, info.linkname = kind, mode, 0, link
    info.size = len(data) if data is not None else 0
    tar.addfile(info, io.BytesIO(data) if data is not None else None)


def layer(files: dict[str, Path | bytes], links: dict[str, str]) -> bytes:
    """An uncompressed layer tar: base directories, passwd/group, the files (mode kept), symlinks."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = dict(BASE_DIRS)
        for path in list(files) + list(links):
            parent = Path(path).parent
            while str(parent) != "/":
                dirs.setdefault(str(parent), 0o755)
                parent = parent.parent
        for path in sorted(dirs):
            _add(tar, path, mode=dirs[path], kind=tarfile.DIRTYPE)
        _add(tar, "/etc/passwd", PASSWD.encode())
        _add(tar, "/etc/group", GROUP.encode())
        for path, src in sorted(files.items()):
            if isinstance(src, bytes):
                _add(tar, path, src, 0o755)
            else:
                _add(tar, path, src.read_bytes(), src.stat().st_mode & 0o7777)
        for path, target in sorted(links.items()):
            _add(tar, path, kind=tarfile.SYMTYPE, link=target)
    return buf.getvalue()


def write_image(out: Path, ref: str, files: dict[str, Path | bytes], entrypoint: list[str],
                cmd: list[str] | None = None, user: str = "", links: dict[str, str] | None = None,
                env: list[str] | None = None) -> Path:
    raw = layer(files, links or {})
    gz = gzip.compress(raw, mtime=0)
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Entrypoint": entrypoint, "Cmd": cmd or [], "User": user, "WorkingDir": "/",
                   "Env": env or ["PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"]},
        "rootfs": {"type": "layers", "diff_ids": [_digest(raw)]},
        "history": [{"created_by": "unimon lab/oci_image.py"}],
    }, sort_keys=True).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": _digest(config),
                   "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": _digest(gz),
                    "size": len(gz)}],
    }, sort_keys=True).encode()
    index = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": _digest(manifest),
                       "size": len(manifest), "platform": {"architecture": "amd64", "os": "linux"},
                       "annotations": {"io.containerd.image.name": ref,
                                       "org.opencontainers.image.ref.name": ref.rsplit(":", 1)[-1]}}],
    }, sort_keys=True).encode()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    with tarfile.open(tmp, "w") as tar:
        _add(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        _add(tar, "blobs", mode=0o755, kind=tarfile.DIRTYPE)
        _add(tar, "blobs/sha256", mode=0o755, kind=tarfile.DIRTYPE)
        for blob in (gz, config, manifest):
            _add(tar, "blobs/sha256/" + _digest(blob).split(":", 1)[1], blob)
        _add(tar, "index.json", index)
    tmp.replace(out)
    return out
