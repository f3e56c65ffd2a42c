"""`sloserve demo` brings the cluster up and cleans up after itself (real control plane)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from sloserve_dev.devcluster import demo
from sloserve_dev.devcluster.pytest_plugin import require_testenv

pytestmark = [pytest.mark.k8s, pytest.mark.timeout(180)]


def test_demo_without_operator_stops_after_cluster_and_nodes_are_up(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    require_testenv()
    monkeypatch.setattr(demo, "operator_available", lambda: False)
    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    assert demo.run(parser.parse_args(["--nodes", "3", "--gpu-type", "h200"])) == 0
    out = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert "control plane up" in out
    assert out.count("Ready") == 3
    assert "gpu-h200-2" in out
    assert "does not exist yet: the demo stops after the cluster" in out


def processes_mentioning(text: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if text.encode() in (proc / "cmdline").read_bytes():
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


@pytest.mark.slow
def test_demo_runs_operator_engines_and_load_then_leaves_nothing_behind(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    require_testenv()
    workdir = tmp_path / "demo"
    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    args = parser.parse_args(
        ["--workdir", str(workdir), "--duration", "40", "--peak-rps", "6", "--low-rps", "2"]
    )
    assert demo.run(args) == 0
    out = capsys.readouterr().out
    last_frame = out[out.rindex("LLMService") :]
    assert "llama-8b" in last_frame
    assert "Running" in last_frame and "True" in last_frame  # an engine pod, Ready by probe
    assert "every process it started has exited" in out
    kubelet_log = (workdir / "logs" / "process-kubelet.log").read_text()
    assert re.search(r"--simulated --host 127\.\d+\.\d+\.\d+ ", kubelet_log)
    assert "Ready=True" in kubelet_log
    assert processes_mentioning(str(workdir)) == []
