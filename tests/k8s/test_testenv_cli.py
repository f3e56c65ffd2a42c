"""`sloserve testenv` argument handling and `down`/`status` when nothing runs (no cluster)."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sloserve_dev.devcluster import cli
from sloserve_dev.devcluster.pytest_plugin import require_testenv


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


def children(pid: int) -> set[int]:
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text()
        found |= {int(p) for p in text.split()}
    return found


@pytest.mark.k8s
@pytest.mark.timeout(180)
def test_up_runs_until_sigterm_then_stops_every_process_it_started(
    state_file: Path, tmp_path: Path
) -> None:
    require_testenv()
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}  # its own state file
    up = subprocess.Popen(
        [sys.executable, "-m", "sloserve_operator.cli", "testenv", "up", "--nodes", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert up.stdout is not None
    first = up.stdout.readline()
    assert first.startswith("control plane up"), first + up.stdout.read()
    started = children(up.pid)
    assert len(started) == 5  # etcd, apiserver, controller-manager, scheduler, kwok
    up.send_signal(signal.SIGTERM)
    assert up.wait(60) == 0
    for pid in started:
        assert not Path(f"/proc/{pid}").exists(), f"child {pid} outlived `testenv up`"
