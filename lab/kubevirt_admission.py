"""The part of virt-api's VirtualMachine admission the collection's writes can trip, as a
ValidatingAdmissionPolicy for the lab (KubeVirt itself cannot run here).

Written from KubeVirt's rule for spec.running and spec.runStrategy (virt-api's VM admitter,
validateRunStrategy; recent KubeVirt ships the same checks as the policy vm-policy.kubevirt.io):
the two are mutually exclusive, one of them must be given, and runStrategy is one of the known
strategies. Without it the lab accepted a VM left with neither after our uninstall (issue 18, D7),
which a real cluster refuses with "RunStrategy must be specified".

Standard library only. Usage: kubevirt_admission.py OUTDIR, or import objects().
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

NAME = "lab-vm-run-strategy.kubevirt.io"
STRATEGIES = ["Halted", "Manual", "Always", "RerunOnFailure", "Once", "WaitAsReceiver"]


def objects() -> list[dict]:
    spec = "object.spec"
    checks = [
        (f"!(has({spec}.running) && has({spec}.runStrategy))", "Running and RunStrategy are mutually exclusive"),
        (f"has({spec}.running) || has({spec}.runStrategy)", "RunStrategy must be specified"),
        (f"!has({spec}.runStrategy) || {spec}.runStrategy in {json.dumps(STRATEGIES)}",
         "Invalid RunStrategy: one of " + ", ".join(STRATEGIES)),
    ]
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": NAME},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [{
                "apiGroups": ["kubevirt.io"], "apiVersions": ["*"], "operations": ["CREATE", "UPDATE"],
                "resources": ["virtualmachines"]}]},
            "validations": [{"expression": e, "message": m} for e, m in checks],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": NAME},
        "spec": {"policyName": NAME, "validationActions": ["Deny"]},
    }
    return [policy, binding]


def main(argv: list[str]) -> int:
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    for obj in objects():
        (out / f"{obj['kind'].lower()}.json").write_text(json.dumps(obj, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
