"""operator/Dockerfile copies files that exist and starts the command the chart runs.

No container runtime here, so the image is not built; instead the Dockerfile's build stage is
replayed: a wheel is built from exactly the files it COPYs, and must contain the module that
serves `sloserve operator`.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from chartkit import REPO

from sloserve_operator.cli import SUBCOMMANDS

DOCKERFILE = REPO / "operator" / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = [
        ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")
    ]
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1]) for ln in lines]


def copied_sources() -> list[str]:
    """Sources of every COPY from the build context (not `--from=` another stage)."""
    sources: list[str] = []
    for op, args in instructions():
        if op == "COPY" and "--from=" not in args:
            *srcs, _dest = shlex.split(args)
            sources += srcs
    return sources


def exec_form(op: str) -> list[str]:
    found = [json.loads(args) for o, args in instructions() if o == op]
    assert len(found) == 1, f"expected one {op} in exec form"
    value: list[str] = found[0]
    return value


def test_every_copied_path_exists() -> None:
    sources = copied_sources()
    assert sources, "the Dockerfile copies nothing from the build context"
    for src in sources:
        assert (REPO / src).exists(), f"COPY {src}: no such file in the repository"


def test_entrypoint_is_the_sloserve_console_script_and_cmd_a_subcommand() -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert exec_form("ENTRYPOINT") == ["sloserve"]
    assert scripts["sloserve"] == "sloserve_operator.cli:main"
    assert exec_form("CMD")[0] == "operator"
    assert "operator" in SUBCOMMANDS


def test_runs_as_the_non_root_user_the_chart_expects() -> None:
    users = [args for op, args in instructions() if op == "USER"]
    assert users == ["65532:65532"]  # values.yaml operator.podSecurityContext.runAsUser


@pytest.mark.slow
def test_wheel_from_the_copied_files_contains_the_operator(tmp_path: Path) -> None:
    context = tmp_path / "context"
    for src in copied_sources():
        target = context / src
        target.parent.mkdir(parents=True, exist_ok=True)
        if (REPO / src).is_dir():
            shutil.copytree(
                REPO / src, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
        else:
            shutil.copy2(REPO / src, target)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(tmp_path / "wheels"), str(context)],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (wheel,) = (tmp_path / "wheels").glob("sloserve-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    operator_module = SUBCOMMANDS["operator"][0].replace(".", "/") + ".py"
    assert operator_module in names, f"{operator_module} missing from the image's wheel"
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert (
        "sloserve = sloserve_operator.cli:main"
        in zipfile.ZipFile(wheel).read(entry_points).decode()
    )
