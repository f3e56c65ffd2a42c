"""engine/Dockerfile cannot be built here (no container runtime): check what it relies on."""

from __future__ import annotations

import json
import shlex
import tomllib
from importlib import import_module
from pathlib import Path

from sloserve_operator.render.target import ENGINE_NAME

ROOT = Path(__file__).resolve().parents[3]
DOCKERFILE = ROOT / "engine" / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def test_based_on_the_official_vllm_0_26_0_image() -> None:
    assert _instructions()[0] == ("FROM", "vllm/vllm-openai:v0.26.0")


def test_every_copied_path_exists_in_the_repo() -> None:
    copies = [rest for op, rest in _instructions() if op == "COPY"]
    assert copies
    for rest in copies:
        *sources, _dest = shlex.split(rest)
        for src in sources:
            assert (ROOT / src).exists(), src


def test_installs_the_engine_extra_and_the_package_paths_it_copies() -> None:
    runs = " ".join(rest for op, rest in _instructions() if op == "RUN")
    assert 'pip install --no-cache-dir ".[engine]"' in runs
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    copied = " ".join(rest for op, rest in _instructions() if op == "COPY")
    for package_path in pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]:
        assert any(package_path.startswith(src) for src in shlex.split(copied)), package_path


def test_entrypoint_is_the_console_script_the_operator_renders() -> None:
    (entrypoint,) = [json.loads(rest) for op, rest in _instructions() if op == "ENTRYPOINT"]
    assert entrypoint == [ENGINE_NAME] == ["sloserve-engine"]
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    target = pyproject["project"]["scripts"][ENGINE_NAME]
    module, _, func = target.partition(":")
    assert callable(getattr(import_module(module), func))
