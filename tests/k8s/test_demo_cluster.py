"""`sloserve demo` brings the cluster up and cleans up after itself (real control plane)."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from sloserve_dev.devcluster import demo
from sloserve_dev.devcluster.pytest_plugin import require_testenv

pytestmark = [pytest.mark.k8s, pytest.mark.timeout(180)]


def test_demo_without_operator_stops_after_cluster_and_nodes_are_up(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    require_testenv()
    monkeypatch.setattr(demo, "operator_available", lambda: False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    assert demo.run(parser.parse_args(["--nodes", "3", "--gpu-type", "h200"])) == 0
    out = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert "control plane up" in out
    assert out.count("Ready") == 3
    assert "gpu-h200-2" in out
    assert "does not exist yet: the demo stops after the cluster" in out
    assert "removed the working directory" in out  # its own temp dir, no --keep
    assert list(tmp_path.glob("sloserve-demo-*")) == []


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
def test_demo_piped_to_a_file_prints_next_steps_and_timestamped_status_lines(
    tmp_path: Path,
) -> None:
    """`sloserve demo --duration 30 > file` (issue 18's check): what a CI log or `tee` sees."""
    require_testenv()
    workdir = tmp_path / "demo"
    out_file = tmp_path / "demo.out"
    argv = [sys.executable, "-m", "sloserve_operator.cli", "demo", "--workdir", str(workdir)]
    argv += ["--duration", "30", "--peak-rps", "6", "--low-rps", "2", "--interval", "5"]
    with out_file.open("w") as out_fh:
        done = subprocess.run(argv, stdout=out_fh, stderr=subprocess.STDOUT, timeout=170)
    out = out_file.read_text()
    assert done.returncode == 0, out
    assert re.search(r"^  export KUBECONFIG=\S+/kubeconfig PATH=\S+:\$PATH$", out, re.M)
    assert "kubectl -n sloserve-demo get llms" in out
    assert "Stop: Ctrl-C" in out
    status = re.findall(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ status .*$", out, re.M)
    assert len(status) >= 5, out
    assert any(re.search(r" ready=[1-9]", line) for line in status), status  # an engine served
    # The example has a router tier: load goes through ready router pods once they are up.
    routed = [line for line in status if re.search(r" routers=[1-9]\d*/\d+ via=router ", line)]
    assert routed, status
    assert re.search(r" ok=[1-9]", routed[-1]), routed
    assert "every process it started has exited" in out
    flat = " ".join(out.split())  # rich wraps long lines on a pipe too
    assert f"kept the working directory {workdir} " in flat  # --workdir given: the user's dir
    kubelet_log = (workdir / "logs" / "process-kubelet.log").read_text()
    assert re.search(r"--simulated --host 127\.\d+\.\d+\.\d+ ", kubelet_log)
    assert re.search(r"-m sloserve_engine\.router\.cli --host 127\.\d+\.\d+\.\d+ ", kubelet_log)
    assert "Ready=True" in kubelet_log
    assert processes_mentioning(str(workdir)) == []
