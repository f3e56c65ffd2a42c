"""The images the process kubelet can run: this repository's own Dockerfiles.

**Stand-in for pulling an image.** There is no container runtime here, so an image cannot be
pulled or unpacked. For the two images this repository builds (``make images``), the process
kubelet takes the image's ENTRYPOINT and CMD from the Dockerfile that builds it, and runs that
program from this checkout's venv. Every other image has no local program: its pods are
reported as not runnable rather than pretending to run (kubelet.py).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from sloserve_dev.devcluster.testenv import REPO_ROOT

KNOWN_IMAGES: dict[str, Path] = {
    "sloserve/operator": REPO_ROOT / "operator" / "Dockerfile",
    "sloserve/engine": REPO_ROOT / "engine" / "Dockerfile",
}
"""Image repository (registry, tag and digest stripped) -> the Dockerfile that builds it;
the names are hack/images.sh's, the chart's ``operator.image.repository`` and the CRD's
default ``spec.engine.image``."""

_EXEC_FORM = re.compile(r"^(ENTRYPOINT|CMD)\s+(\[.*\])\s*$", re.M)


@dataclass(frozen=True)
class ImageConfig:
    """What a container runtime reads from an image to start it."""

    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]

    def argv(self, command: list[str] | None, args: list[str] | None) -> tuple[str, ...]:
        """Kubernetes' rule: ``command`` replaces ENTRYPOINT, ``args`` replace CMD, and a
        ``command`` without ``args`` ignores CMD."""
        if command:
            return (*command, *(args or ()))
        return (*self.entrypoint, *(args if args else self.cmd))


def image_repository(image: str) -> str:
    """``registry.example:5000/sloserve/operator@sha256:...`` -> ``sloserve/operator``."""
    name = image.split("@", 1)[0]
    last_slash = name.rfind("/")
    if ":" in name[last_slash + 1 :]:
        name = name[: name.rfind(":")]
    parts = name.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        parts = parts[1:]  # a registry host, as docker reads the first component
    if parts[0] == "library":
        parts = parts[1:]
    return "/".join(parts)


def dockerfile_config(text: str) -> ImageConfig:
    """The final stage's exec-form ENTRYPOINT and CMD (the last of each wins, as in docker)."""
    final = re.split(r"^FROM\s", text, flags=re.M)[-1]
    found: dict[str, tuple[str, ...]] = {}
    for match in _EXEC_FORM.finditer(final):
        found[match.group(1)] = tuple(str(a) for a in json.loads(match.group(2)))
    return ImageConfig(found.get("ENTRYPOINT", ()), found.get("CMD", ()))


def image_config(image: str) -> ImageConfig | None:
    """The config of a known image, read from its Dockerfile; None for any other image."""
    dockerfile = KNOWN_IMAGES.get(image_repository(image))
    if dockerfile is None or not dockerfile.is_file():
        return None
    return dockerfile_config(dockerfile.read_text())
