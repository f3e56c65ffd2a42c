"""kwok's stage configuration for one control plane, written into its work directory.

The build (hack/testenv.sh) caches kwok's default stages next to the binaries. Which pod-ready
stage a cluster uses is run-time configuration, so it is chosen here rather than in the cache:
changing it never invalidates the ~30 min binary build.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

PodReadiness = Literal["probe", "instant"]
"""``probe``: containers with a readinessProbe start unready and the process kubelet's probe
makes them Ready (kwok-pod-ready.yaml), as under a real kubelet; ``instant``: kwok's default,
every pod Ready at once (for clusters where nothing runs the pods)."""

PROBE_POD_READY = Path(__file__).with_name("kwok-pod-ready.yaml")
_DOC_SPLIT = re.compile(r"^---\s*$", re.M)
_NAME = re.compile(r"^metadata:\s*\n\s+name:\s*(\S+)", re.M)


def stage_name(document: str) -> str | None:
    found = _NAME.search(document)
    return found.group(1) if found else None


def compose_stages(default_stages: str, readiness: PodReadiness) -> str:
    """The cached default stages, with the pod-ready stage replaced in ``probe`` mode."""
    documents = [d.strip("\n") for d in _DOC_SPLIT.split(default_stages) if d.strip()]
    if readiness == "instant":
        kept = documents
    else:
        names = [stage_name(d) for d in documents]
        if "pod-ready" not in names:
            raise ValueError("kwok's default stages have no pod-ready stage to replace")
        kept = [d for d, n in zip(documents, names, strict=True) if n != "pod-ready"]
        kept.append(PROBE_POD_READY.read_text().strip("\n"))
    return "".join(f"---\n{d}\n" for d in kept)


def write_stages(default_stages: Path, readiness: PodReadiness, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(compose_stages(default_stages.read_text(), readiness))
    return target
