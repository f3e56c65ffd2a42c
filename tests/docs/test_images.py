"""`make images` (hack/images.sh): tags match the defaults, and no builder means a clear message.

This machine has no container runtime, so the build itself is checked with a stand-in builder:
a shell script named `podman` that records its arguments (labelled as such below).
"""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import yaml

from sloserve_operator.api.v1alpha1 import EngineSpec

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "hack" / "images.sh"


def _chart_operator_image() -> str:
    chart = yaml.safe_load((ROOT / "helm" / "sloserve" / "Chart.yaml").read_text())
    values = yaml.safe_load((ROOT / "helm" / "sloserve" / "values.yaml").read_text())
    image = values["operator"]["image"]
    return f"{image['repository']}:{image['tag'] or chart['appVersion']}"


def _run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    path = f"{tmp_path}:/usr/bin:/bin"
    return subprocess.run(
        ["bash", str(SCRIPT)],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": path, "HOME": str(tmp_path), **env},
        check=False,
    )


def _script(path: Path, body: str) -> None:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_no_builder_says_so_and_prints_what_to_push(tmp_path: Path) -> None:
    # A docker CLI whose daemon is unreachable, as on this machine: not a usable builder.
    _script(tmp_path / "docker", 'if [ "$1" = info ]; then exit 1; fi\nexit 0\n')
    out = _run(tmp_path, SLOSERVE_BUILDER="docker nonexistent-builder")
    assert out.returncode == 3, out.stderr
    assert "no container builder found" in out.stderr
    assert f"docker push {_chart_operator_image()}" in out.stderr
    assert f"docker push {EngineSpec().image}" in out.stderr
    assert "docker build -f engine/Dockerfile" in out.stderr


def test_builds_both_images_with_the_default_tags(tmp_path: Path) -> None:
    # Stand-in builder (no container runtime here): records each call, answers `info`.
    log = tmp_path / "calls"
    _script(tmp_path / "podman", f'echo "$*" >> {log}\n')
    out = _run(tmp_path, SLOSERVE_BUILDER="podman", SLOSERVE_IMAGE_PREFIX="reg:5000/")
    assert out.returncode == 0, out.stderr
    calls = log.read_text().splitlines()
    assert calls == [
        "info",
        f"build -f operator/Dockerfile -t reg:5000/{_chart_operator_image()} .",
        f"build -f engine/Dockerfile -t reg:5000/{EngineSpec().image} .",
    ]
    assert f"podman push reg:5000/{EngineSpec().image}" in out.stdout
