"""Find the binaries that ``hack/testenv.sh`` built, or say exactly how to get them."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[4]
TESTENV_SCRIPT = REPO_ROOT / "hack" / "testenv.sh"
BINARIES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kwok",
    "helm",
)
MARKER = ".complete"


class TestenvMissingError(RuntimeError):
    """The control-plane binaries are not built (or the cache is incomplete)."""

    __test__ = False  # not a pytest test class despite the name


@dataclass(frozen=True)
class Testenv:
    """A complete cache directory: ``bin/`` with every binary and kwok's stage file."""

    __test__ = False

    prefix: Path

    @property
    def bin_dir(self) -> Path:
        return self.prefix / "bin"

    @property
    def kwok_stages(self) -> Path:
        return self.prefix / "kwok-stages.yaml"

    def binary(self, name: str) -> Path:
        return self.bin_dir / name


def cache_problem(prefix: Path) -> str | None:
    """Why ``prefix`` is not a usable cache, or None. The marker is written last by the build."""
    if not prefix.is_dir():
        return f"{prefix} does not exist"
    if not (prefix / MARKER).is_file():
        return f"{prefix} is incomplete (no {MARKER} marker: a build is running or was interrupted)"
    missing = [b for b in BINARIES if not os.access(prefix / "bin" / b, os.X_OK)]
    if missing:
        return f"{prefix} is stale (missing bin/{', bin/'.join(missing)})"
    if not (prefix / "kwok-stages.yaml").is_file():
        return f"{prefix} is stale (missing kwok-stages.yaml)"
    return None


def _prefix_from_script(script: Path) -> Path:
    result = subprocess.run(
        ["bash", str(script), "--print-prefix"], capture_output=True, text=True, check=False
    )
    lines = result.stdout.strip().splitlines()
    if not lines:
        raise TestenvMissingError(f"{script} --print-prefix printed nothing: {result.stderr}")
    return Path(lines[-1])


def find_testenv(env: dict[str, str] | None = None, script: Path = TESTENV_SCRIPT) -> Testenv:
    """``$SLOSERVE_TESTENV`` if set (hack/test.sh exports it), else ask the build script."""
    env = dict(os.environ) if env is None else env
    configured = env.get("SLOSERVE_TESTENV", "")
    prefix = Path(configured) if configured else _prefix_from_script(script)
    problem = cache_problem(prefix)
    if problem:
        raise TestenvMissingError(
            f"control-plane binaries not usable: {problem}. Build them with `make testenv` "
            "(bash hack/testenv.sh; about 30 min cold, seconds when cached)."
        )
    return Testenv(prefix)
