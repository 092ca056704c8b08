"""Container log files as the runtime writes them (containerd's CRI plugin, checked against the real runtime
on the lab's real nodes by tests/integration/test_real_nodes.py): one line per chunk,
`<RFC 3339 time with nanoseconds, trailing zeros cut> <stdout|stderr> <P|F> <text>`, a line longer than
16 KiB split into P chunks of exactly 16384 bytes and a final F chunk (ASCII text here: the runtime cuts
bytes, not characters); the kubelet links
/var/log/containers/<pod>_<namespace>_<container>-<container id>.log to /var/log/pods/...<n>.log."""
from __future__ import annotations

import datetime
import re

LINE = re.compile(r"^(?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?Z) (?P<stream>stdout|stderr) (?P<tag>[PF]) (?P<text>.*)$")
CHUNK = 16 * 1024


def timestamp(when: datetime.datetime | None = None, nanos: int | None = None) -> str:
    """Go's RFC3339Nano, which the runtime uses: up to nine fraction digits, trailing zeros dropped."""
    when = when or datetime.datetime.now(datetime.timezone.utc)
    nanos = when.microsecond * 1000 if nanos is None else nanos
    frac = f"{nanos:09d}".rstrip("0")
    return when.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac}" if frac else "") + "Z"


def cri_line(stream: str, tag: str, text: str, when: str | None = None) -> str:
    return f"{when or timestamp()} {stream} {tag} {text}\n"


def cri_lines(stream: str, text: str) -> str:
    """One logical line as the runtime writes it: P chunks of CHUNK bytes, then the F chunk."""
    data = text.encode()
    # A line of exactly 16384 bytes is one F chunk; 32768 bytes are P and F (seen on the real runtime).
    parts = [data[i:i + CHUNK] for i in range(0, len(data), CHUNK)] or [b""]
    return "".join(cri_line(stream, "P" if i < len(parts) - 1 else "F", p.decode()) for i, p in enumerate(parts))


def container_log_name(pod: str, namespace: str, container: str, container_id: str) -> str:
    return f"{pod}_{namespace}_{container}-{container_id}.log"
