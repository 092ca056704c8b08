"""Claims about KubeVirt in our comments and docs that upstream's source contradicts. virt-handler (the node
agent) sets the VMI condition AgentConnected and status.guestOSInfo from the guest agent channel's state in the
domain; virt-launcher only runs QEMU and reports the domain."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TEXT = (".md", ".yml", ".yaml", ".j2", ".py", ".txt", ".svg")
# One sentence in which virt-launcher sets (or reports, writes) the AgentConnected condition or guestOSInfo.
LAUNCHER_SETS_AGENT = re.compile(
    r"virt-launcher\b[^.;]*\b(?:sets?|setting|reports?|writes?)\b[^.;]*\b(?:AgentConnected|guestOSInfo)\b", re.I)


def tracked_text() -> dict[str, str]:
    names = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    out = {}
    for name in filter(None, names.split("\0")):
        path = REPO / name
        if path.suffix in TEXT and path.is_file() and path.name != Path(__file__).name:
            # Comments wrap sentences over lines: join them (leading # and whitespace dropped).
            out[name] = re.sub(r"\s*\n\s*(?:#+\s*)?", " ", path.read_text(errors="replace"))
    return out


def test_no_text_says_virt_launcher_sets_agent_connected():
    found = [f"{name}: ...{m.group(0)}..." for name, text in tracked_text().items()
             for m in LAUNCHER_SETS_AGENT.finditer(text)]
    assert not found, "virt-handler, not virt-launcher, sets AgentConnected/guestOSInfo:\n" + "\n".join(found)


def test_the_check_catches_the_old_wording():
    old = ("Runs on the controller (delegated): virt-launcher connects to the agent over the VMI's virtio "
           "serial port and sets condition AgentConnected and status.guestOSInfo.")
    assert LAUNCHER_SETS_AGENT.search(old)
    assert not LAUNCHER_SETS_AGENT.search("virt-launcher adds the guest agent's virtio serial channel to every VMI.")
