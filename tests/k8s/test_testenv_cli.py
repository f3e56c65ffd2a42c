"""`sloserve testenv` argument handling and `down`/`status` when nothing runs (no cluster)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from sloserve_operator.devcluster import cli


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(argv)


@pytest.fixture
def state_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "current.json"
    monkeypatch.setattr(cli, "STATE_FILE", path)
    return path


def test_up_rejects_nonsense_sizes_before_starting_anything(
    state_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.run(parse("up", "--nodes", "0", "--gpus-per-node", "-1")) == 2
    err = capsys.readouterr().err
    assert "--nodes must be at least 1" in err
    assert "--gpus-per-node must not be negative" in err
    assert not state_file.exists()


def test_down_and_status_with_nothing_running(
    state_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.run(parse("down")) == 0
    assert "nothing running" in capsys.readouterr().err
    assert cli.run(parse("status")) == 1


def test_stale_state_file_never_signals_a_foreign_pid(
    state_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # our own PID is alive but is not a `testenv up` process: down must leave it alone
    state = cli.RunState(os.getpid(), "/x/kubeconfig", "https://127.0.0.1:1", "/x")
    state_file.write_text(state.dump())
    assert cli.run(parse("down")) == 0
    assert "nothing running" in capsys.readouterr().err
    assert not state_file.exists()
