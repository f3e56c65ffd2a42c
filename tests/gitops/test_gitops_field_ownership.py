"""GitOps safety on the real API server: git and the operator own disjoint fields.

A GitOps controller applies the LLMService manifest server-side under its field manager
(Argo CD with ServerSideApply=true, Flux's kustomize-controller). The operator must never take
a field that git owns, or every sync would fight it; re-applying an unchanged manifest, even
under another manager, must change nothing. Checked through `metadata.managedFields`.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sloserve_dev.devcluster.cluster import DevCluster
from sloserve_dev.devcluster.eventually import eventually
from sloserve_dev.devcluster.processes import ManagedProcess

pytestmark = [pytest.mark.k8s, pytest.mark.slow, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "docs" / "examples" / "llmservice-simulated.yaml"
ARGO, FLUX = "argocd-controller", "kustomize-controller"
GIT_MANAGERS = {ARGO, FLUX}

FieldPath = tuple[str, ...]


def leaf_paths(fields: dict[str, Any], prefix: FieldPath = ()) -> set[FieldPath]:
    """Every field a managedFields entry owns, as paths of `f:`/`k:`/`v:` keys."""
    out: set[FieldPath] = set()
    for key, sub in fields.items():
        path = (*prefix, key)
        if key == ".":
            out.add(prefix)
        elif sub:
            out |= leaf_paths(sub, path)
        else:
            out.add(path)
    return out


def ownership(obj: dict[str, Any]) -> dict[tuple[str, str], set[FieldPath]]:
    """(manager, subresource) -> owned field paths."""
    return {
        (e["manager"], e.get("subresource", "")): leaf_paths(e.get("fieldsV1", {}))
        for e in obj["metadata"].get("managedFields", [])
    }


def contains(actual: Any, wanted: Any) -> bool:
    """Every value git set is still there (the API server adds defaults around them)."""
    if isinstance(wanted, dict):
        return isinstance(actual, dict) and all(
            k in actual and contains(actual[k], v) for k, v in wanted.items()
        )
    return bool(actual == wanted)


def git_apply(k8s: DevCluster, namespace: str, manager: str, manifest: dict[str, Any]) -> None:
    """What Argo CD / Flux do: server-side apply, without forcing conflicts."""
    k8s.kubectl(
        "apply", "--server-side", f"--field-manager={manager}", "-n", namespace, "-f", "-",
        input_text=yaml.safe_dump(manifest),
    )  # fmt: skip


@contextlib.contextmanager
def operator(k8s: DevCluster, namespace: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    args = ["operator", "--standalone", "--namespace", namespace]
    args += ["--metrics-port", "0", "--liveness-port", "0"]
    argv = [sys.executable, "-m", "sloserve_operator.cli", *args]
    proc = ManagedProcess("operator", argv, log, env=k8s.control_plane.env())
    try:
        yield proc.popen
    finally:
        proc.stop(grace_s=30)


def test_git_and_operator_own_disjoint_fields(
    k8s: DevCluster, namespace: str, tmp_path: Path
) -> None:
    k8s.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
    k8s.kubectl("wait", "--for=condition=Established", "crd/llmservices.sloserve.io")
    manifest = yaml.safe_load(SAMPLE.read_text())
    name = manifest["metadata"]["name"]
    path = f"/apis/sloserve.io/v1alpha1/namespaces/{namespace}/llmservices/{name}"
    api = k8s.control_plane.api

    # Same manifest, applied by Argo CD, then by Flux: the second apply changes nothing.
    git_apply(k8s, namespace, ARGO, manifest)
    first = api.get(path)
    git_apply(k8s, namespace, FLUX, manifest)
    second = api.get(path)
    assert second["metadata"]["generation"] == first["metadata"]["generation"] == 1
    assert second["spec"] == first["spec"]
    owners = ownership(second)
    assert owners[(ARGO, "")] == owners[(FLUX, "")], "both managers co-own the same fields"
    git_apply(k8s, namespace, FLUX, manifest)
    assert api.get(path)["metadata"]["resourceVersion"] == second["metadata"]["resourceVersion"]
    # One GitOps tool per object: Flux lets go (an apply of the bare identity keeps no field),
    # so the values stay and Argo CD is the only owner again.
    identity = {k: manifest[k] for k in ("apiVersion", "kind")} | {"metadata": {"name": name}}
    git_apply(k8s, namespace, FLUX, identity)
    assert api.get(path)["spec"] == first["spec"]

    with operator(k8s, namespace, tmp_path / "operator.log") as proc:

        def reconciled(generation: int) -> bool:
            status = api.get(path).get("status", {})
            return status.get("observedGeneration") == generation and bool(status.get("conditions"))

        eventually(lambda: reconciled(1), "the operator reconciles the git-applied object", 90)

        # A change in git (live knob) is applied and reconciled; git keeps its fields.
        manifest["spec"]["scheduler"]["policy"] = "vllm"
        git_apply(k8s, namespace, ARGO, manifest)
        eventually(lambda: reconciled(2), "the operator reconciles the knob change", 90)
        # Re-applying git's manifest without force succeeds: no field git owns was taken.
        git_apply(k8s, namespace, ARGO, manifest)
        assert proc.poll() is None, (tmp_path / "operator.log").read_text()[-3000:]

    final = api.get(path)
    owners = ownership(final)
    git_fields = set().union(*(f for (m, _), f in owners.items() if m in GIT_MANAGERS))
    operator_entries = {k: f for k, f in owners.items() if k[0] not in GIT_MANAGERS}
    assert operator_entries, "the operator recorded no field ownership (did it write at all?)"
    for (manager, subresource), fields in operator_entries.items():
        taken = fields & git_fields
        assert not taken, f"{manager} ({subresource or 'main'}) owns git fields: {sorted(taken)}"
        if subresource != "status":  # on the main resource only the autoscaler's replicas
            assert fields <= {("f:spec", "f:replicas")}, f"{manager} writes {sorted(fields)}"
    assert ("f:spec", "f:scheduler", "f:policy") in git_fields
    assert contains(final["spec"], manifest["spec"]), "git's values were changed"
    status_owners = {k for k, f in owners.items() if any(p[:1] == ("f:status",) for p in f)}
    assert status_owners, "nobody owns status: the operator never reported"
    assert all(m not in GIT_MANAGERS and sub == "status" for m, sub in status_owners)
