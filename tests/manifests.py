"""Read rendered manifests the way Kubernetes does (a bare '=' scalar is a string)."""
from __future__ import annotations

from pathlib import Path

import yaml


class _K8sLoader(yaml.SafeLoader):  # pylint: disable=too-many-ancestors
    pass


_K8sLoader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))


def load_all(path: Path) -> list[dict]:
    return [d for d in yaml.load_all(path.read_text(), Loader=_K8sLoader) if d]
