"""Failure cases of building and starting the control plane: each must say what to do."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from sloserve_dev.devcluster.controlplane import ControlPlane, ControlPlaneConfig
from sloserve_dev.devcluster.processes import PortInUseError
from sloserve_dev.devcluster.pytest_plugin import require_testenv
from sloserve_dev.devcluster.testenv import (
    BINARIES,
    MARKER,
    TESTENV_SCRIPT,
    Testenv,
    TestenvMissingError,
    find_testenv,
)

pytestmark = pytest.mark.timeout(60)


def fake_prefix(root: Path, *, marker: bool, binaries: tuple[str, ...] = BINARIES) -> Path:
    """A cache directory shaped like the build's output; the binaries are empty scripts."""
    prefix = root / "v1-v2-v3-v4"
    (prefix / "bin").mkdir(parents=True)
    for name in binaries:
        path = prefix / "bin" / name
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
    (prefix / "kwok-stages.yaml").write_text("---\n")
    if marker:
        (prefix / MARKER).write_text("versions\n")
    return prefix


def run_script(
    tmp_path: Path, *args: str, path: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "SLOSERVE_TESTENV_CACHE": str(tmp_path / "cache"),
        "PATH": path if path is not None else os.environ["PATH"],
    }
    return subprocess.run(
        ["bash", str(TESTENV_SCRIPT), *args], env=env, capture_output=True, text=True, check=False
    )


def test_port_already_taken_is_named_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        prefix = fake_prefix(tmp_path, marker=True)
        plane = ControlPlane(
            Testenv(prefix), ControlPlaneConfig(tmp_path / "w", apiserver_port=port)
        )
        with pytest.raises(PortInUseError, match=rf"127\.0\.0\.1:{port} for kube-apiserver"):
            plane.start()
        assert plane.processes == []


def test_incomplete_cache_is_refused_with_build_hint(tmp_path: Path) -> None:
    prefix = fake_prefix(tmp_path, marker=False)
    with pytest.raises(TestenvMissingError, match=r"incomplete .*make testenv"):
        find_testenv({"SLOSERVE_TESTENV": str(prefix)})


def test_cache_missing_a_binary_is_stale(tmp_path: Path) -> None:
    prefix = fake_prefix(tmp_path, marker=True, binaries=BINARIES[1:])
    with pytest.raises(TestenvMissingError, match=r"stale \(missing bin/etcd\).*make testenv"):
        find_testenv({"SLOSERVE_TESTENV": str(prefix)})


def test_complete_cache_is_accepted(tmp_path: Path) -> None:
    prefix = fake_prefix(tmp_path, marker=True)
    assert find_testenv({"SLOSERVE_TESTENV": str(prefix)}).binary("etcd") == prefix / "bin/etcd"


def test_missing_testenv_skips_locally_and_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLOSERVE_TESTENV", "/nonexistent/sloserve-testenv")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="make testenv"):
        require_testenv()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"CI=true.*make testenv"):
        require_testenv()


def test_script_print_prefix_fails_on_incomplete_cache(tmp_path: Path) -> None:
    result = run_script(tmp_path, "--print-prefix")
    assert result.returncode == 1
    prefix = Path(result.stdout.strip())
    assert prefix.parent == tmp_path / "cache"
    assert "not built yet; run: make testenv" in result.stderr

    (prefix / "bin").mkdir(parents=True)  # what a build killed half-way leaves behind
    result = run_script(tmp_path, "--print-prefix")
    assert result.returncode == 1
    assert "incomplete (no completion marker" in result.stderr


def test_script_detects_marker_of_other_versions_as_stale(tmp_path: Path) -> None:
    prefix = Path(run_script(tmp_path, "--print-prefix").stdout.strip())
    prefix.mkdir(parents=True)
    (prefix / MARKER).write_text("k8s=v0 etcd=v0 kwok=v0 helm=v0\n")
    result = run_script(tmp_path, "--print-prefix")
    assert result.returncode == 1
    assert "stale (marker says: k8s=v0" in result.stderr


def test_script_without_go_says_so_in_one_line(tmp_path: Path) -> None:
    go = shutil.which("go")
    dirs = os.environ["PATH"].split(os.pathsep)
    path = os.pathsep.join(d for d in dirs if not go or Path(d) != Path(go).parent)
    result = run_script(tmp_path, path=path)
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("testenv: error: no Go toolchain: 'go' is not on PATH")
    )
    assert not (tmp_path / "cache").exists()  # nothing half-built left behind


def test_script_rejects_unknown_arguments(tmp_path: Path) -> None:
    result = run_script(tmp_path, "--frobnicate")
    assert result.returncode == 1
    assert "unknown argument '--frobnicate'" in result.stderr
