"""The extras split: each extra resolves to what its console scripts need and nothing heavier.

pip resolves the local checkout for real (``--dry-run --report``, the package index is needed),
and one clean venv gets ``.[operator]`` installed to prove the operator starts from it.
Install sizes and times are measured by the command in docs/benchmarks.md, not here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def resolved(extra: str, tmp_path: Path) -> set[str]:
    """Distribution names pip would install for ``sloserve[extra]`` into an empty env."""
    report = tmp_path / f"{extra or 'base'}.json"
    target = f"{REPO}[{extra}]" if extra else str(REPO)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed",
         "--no-build-isolation", "--quiet", "--report", str(report), target],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    install = json.loads(report.read_text())["install"]
    return {item["metadata"]["name"].lower().replace("_", "-") for item in install}


HEAVY = {"vllm", "torch", "matplotlib"}


def test_base_install_is_only_models_metrics_and_http(tmp_path: Path) -> None:
    names = resolved("", tmp_path)
    assert {"pydantic", "prometheus-client", "httpx"} <= names
    assert not names & (HEAVY | {"kopf", "fastapi", "numpy", "rich"})


def test_operator_extra_has_kopf_and_no_engine_or_bench_dependency(tmp_path: Path) -> None:
    names = resolved("operator", tmp_path)
    assert {"kopf", "kubernetes-asyncio", "pyyaml"} <= names
    assert not names & (HEAVY | {"fastapi", "uvicorn", "numpy", "rich"})


def test_server_extra_runs_the_simulated_engine_without_kopf(tmp_path: Path) -> None:
    names = resolved("server", tmp_path)
    assert {"fastapi", "uvicorn", "numpy"} <= names
    assert {"aiohttp", "uvloop", "httptools"} <= names  # the router's hot path
    assert not names & (HEAVY | {"kopf", "kubernetes-asyncio", "rich"})


def test_engine_extra_is_vllm_without_the_operator(tmp_path: Path) -> None:
    names = resolved("engine", tmp_path)
    assert {"vllm", "torch", "fastapi"} <= names
    assert not names & {"kopf", "kubernetes-asyncio"}


def test_bench_extra_has_the_tools_but_not_vllm(tmp_path: Path) -> None:
    names = resolved("bench", tmp_path)
    assert {"matplotlib", "rich", "cryptography", "kopf", "fastapi"} <= names
    assert not names & {"vllm", "torch"}


def test_operator_starts_from_a_clean_operator_install(tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    clean = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    subprocess.run(
        [py, "-m", "pip", "install", "--quiet", f"{REPO}[operator]"],
        check=True, env=clean, timeout=900,
    )  # fmt: skip
    # Every runtime operator module imports (the autoscaler's kopf handlers included) ...
    walk = (
        "import pkgutil, importlib, sloserve_operator as p\n"
        "for m in pkgutil.walk_packages(p.__path__, 'sloserve_operator.'):\n"
        "    importlib.import_module(m.name)\n"
    )
    subprocess.run([py, "-c", walk], check=True, env=clean, cwd=tmp_path, timeout=120)
    # ... the operator's command line starts, and nothing heavy came along.
    help_text = subprocess.run(
        [env_dir / "bin" / "sloserve", "operator", "--help"],
        check=True, env=clean, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip
    assert "--peering" in help_text
    for heavy in ("vllm", "torch", "matplotlib", "numpy", "fastapi"):
        found = subprocess.run(
            [py, "-c", f"import importlib.util as u; print(u.find_spec({heavy!r}) is None)"],
            check=True, env=clean, cwd=tmp_path, capture_output=True, text=True, timeout=60,
        ).stdout.strip()  # fmt: skip
        assert found == "True", f"{heavy} is installed by .[operator]"
    # A tooling command names the extra it needs instead of a traceback.
    demo = subprocess.run(
        [env_dir / "bin" / "sloserve", "demo", "--help"],
        check=False, env=clean, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert demo.returncode == 2
    assert "sloserve[bench]" in demo.stderr
