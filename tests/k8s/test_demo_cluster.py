"""`sloserve demo` brings the cluster up and cleans up after itself (real control plane)."""

from __future__ import annotations

import argparse

import pytest

from sloserve_operator.devcluster import demo
from sloserve_operator.devcluster.pytest_plugin import require_testenv

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
