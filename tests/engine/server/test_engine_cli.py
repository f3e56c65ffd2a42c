"""``sloserve-engine``: vllm command line, environment, and both modes as real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sloserve_engine.contract.knobs import Knobs, KnobsState
from sloserve_engine.server.cli import build_parser, sim_config_from, split_extra
from sloserve_engine.server.supervisor import free_loopback_port
from sloserve_engine.server.vllm_command import (
    SCHEDULER_CLS,
    VllmLaunch,
    build_vllm_command,
    vllm_environment,
)

HERE = Path(__file__).parent


def test_vllm_command_binds_loopback_with_our_scheduler_then_extra_args() -> None:
    cmd = build_vllm_command(
        VllmLaunch(
            model="/models/llama",
            served_model_name="llama-8b",
            port=8123,
            kv_tokens=97_488,
            extra_args=("--max-model-len", "8192", "--gpu-memory-utilization", "0.2"),
        )
    )
    assert cmd == [
        "vllm",
        "serve",
        "/models/llama",
        "--host",
        "127.0.0.1",
        "--port",
        "8123",
        "--served-model-name",
        "llama-8b",
        "--scheduler-cls",
        "sloserve_engine.vllm.scheduler.SLOScheduler",
        "--num-gpu-blocks-override",
        "6093",
        "--max-model-len",
        "8192",
        "--gpu-memory-utilization",
        "0.2",
    ]


@pytest.mark.parametrize("spelling", [["--model", "/m/llama"], ["--model=/m/llama"]])
def test_model_among_extra_args_becomes_the_positional_model(spelling: list[str]) -> None:
    extra = ("--tensor-parallel-size", "2", *spelling, "--max-model-len", "8192")
    cmd = build_vllm_command(VllmLaunch("served", "served", 1, extra_args=extra))
    assert cmd[:3] == ["vllm", "serve", "/m/llama"]
    assert cmd[-4:] == ["--tensor-parallel-size", "2", "--max-model-len", "8192"]
    assert "--model" not in " ".join(cmd)


def test_kv_tokens_follow_a_custom_block_size() -> None:
    cmd = build_vllm_command(
        VllmLaunch("m", "m", 1, kv_tokens=4096, extra_args=("--block-size=32",))
    )
    assert cmd[cmd.index("--num-gpu-blocks-override") + 1] == "128"


@pytest.mark.parametrize(
    "flag", ["--port", "--host=0.0.0.0", "--scheduler-cls", "--served-model-name"]
)
def test_extra_args_may_not_override_what_the_server_controls(flag: str) -> None:
    with pytest.raises(ValueError, match="sloserve-engine controls"):
        build_vllm_command(VllmLaunch("m", "m", 1, extra_args=(flag, "x")))


def test_vllm_environment_names_knobs_file_metrics_dir_and_profile(tmp_path: Path) -> None:
    env = vllm_environment({"PATH": "/bin"}, tmp_path / "prom", tmp_path / "k.json", "h200-x")
    assert env == {
        "PATH": "/bin",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"),
        "SLOSERVE_KNOBS_PATH": str(tmp_path / "k.json"),
        "SLOSERVE_PROFILE": "h200-x",
    }


def test_contract_3_command_line_parses() -> None:
    ours, extra = split_extra(
        [
            "--simulated",
            "--host",
            "0.0.0.0",
            "--port",
            "8000",
            "--served-model-name",
            "llama",
            "--knobs-file",
            "/etc/sloserve/knobs/knobs.json",
            "--admin-token-file",
            "/etc/sloserve/admin/token",
            "--profile",
            "h200-llama-3.1-8b",
            "--kv-tokens",
            "97488",
            "--",
            "--max-model-len",
            "4096",
            "--enforce-eager",
        ]
    )
    args = build_parser().parse_args(ours)
    assert args.simulated and args.port == 8000 and args.kv_tokens == 97488
    assert args.knobs_file == Path("/etc/sloserve/knobs/knobs.json")
    assert extra == ["--max-model-len", "4096", "--enforce-eager"]
    cfg = sim_config_from(args.kv_tokens, extra)
    assert (cfg.kv_tokens, cfg.max_model_len) == (97488, 4096)


def test_simulated_engine_reads_only_exact_vllm_flags() -> None:
    cfg = sim_config_from(
        None, ["--block", "32", "--max-num-seqs=8", "--tensor-parallel-size", "2"]
    )
    assert (cfg.block_size, cfg.max_num_seqs) == (16, 8)  # no abbreviation matching


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"exited {proc.returncode}: {proc.stderr.read() if proc.stderr else ''!r}"
            )
        try:
            if httpx.get(f"{url}/sloserve/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("engine did not become healthy")


def _stop(proc: subprocess.Popen[bytes]) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=40)
    return proc.returncode, err.decode()


@pytest.fixture
def knobs_file(tmp_path: Path) -> Path:
    path = tmp_path / "knobs.json"
    path.write_text(json.dumps({"policy": "vllm", "sloDefaults": {"sloClass": "batch"}}))
    return path


def _engine(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "sloserve_engine.server.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )


def test_simulated_process_serves_reads_knobs_file_and_stops_on_sigterm(
    knobs_file: Path, token_file: Path
) -> None:
    port = free_loopback_port()
    url = f"http://127.0.0.1:{port}"
    proc = _engine(
        [
            "--simulated",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--served-model-name",
            "m",
            "--knobs-file",
            str(knobs_file),
            "--admin-token-file",
            str(token_file),
            "--time-scale",
            "10",
            "--",
            "--max-model-len",
            "2048",
        ]
    )
    try:
        _wait_healthy(url, proc)
        state = httpx.get(f"{url}/sloserve/knobs").json()
        assert state["revision"] == Knobs.model_validate_json(knobs_file.read_text()).revision()
        r = httpx.post(f"{url}/v1/completions", json={"prompt": "hi", "max_tokens": 5}, timeout=30)
        assert r.json()["usage"]["completion_tokens"] == 5
        too_long = httpx.post(f"{url}/v1/completions", json={"prompt": [1] * 2045, "max_tokens": 5})
        assert too_long.status_code == 400
        auth = {"Authorization": f"Bearer {token_file.read_text().strip()}"}
        assert (
            httpx.put(f"{url}/sloserve/knobs", json={"policy": "vllm"}, headers=auth).status_code
            == 200
        )
    finally:
        code, err = _stop(proc)
    assert code in (0, -signal.SIGTERM)
    assert token_file.read_text().strip() not in err
    assert "Shutting down" in err


def test_bad_knobs_file_exits_2_naming_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "knobs.json"
    bad.write_text('{"reservationRatio": 3}')
    proc = _engine(["--simulated", "--port", "1", "--knobs-file", str(bad)])
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "reservationRatio" in err.decode()


def test_startup_delay_holds_the_port_closed_like_a_model_load() -> None:
    port = free_loopback_port()
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    proc = _engine(
        ["--simulated", "--host", "127.0.0.1", "--port", str(port), "--startup-delay-s", "3"]
    )
    try:
        time.sleep(1.0)
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/sloserve/health", timeout=1)
        _wait_healthy(url, proc)
        assert time.monotonic() - started >= 3.0
    finally:
        _stop(proc)


def test_negative_startup_delay_exits_2() -> None:
    proc = _engine(["--simulated", "--port", "1", "--startup-delay-s", "-1"])
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "--startup-delay-s" in err.decode()


def test_empty_admin_token_file_refuses_to_start(tmp_path: Path) -> None:
    empty = tmp_path / "token"
    empty.write_text("\n")
    proc = _engine(["--simulated", "--port", "1", "--admin-token-file", str(empty)])
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "is empty" in err.decode()


@pytest.fixture
def fake_vllm(tmp_path: Path) -> Iterator[Path]:
    """An executable that runs the FAKE vLLM server (no GPU here for the real one)."""
    wrapper = tmp_path / "vllm"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{HERE / "fake_vllm.py"}" "$@"\n')
    wrapper.chmod(0o755)
    yield wrapper


def test_real_mode_proxies_vllm_mirrors_knobs_and_forwards_sigterm(
    tmp_path: Path, knobs_file: Path, token_file: Path, fake_vllm: Path
) -> None:
    port = free_loopback_port()
    url = f"http://127.0.0.1:{port}"
    marker = tmp_path / "terminated"
    proc = _engine(
        [
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--served-model-name",
            "llama",
            "--knobs-file",
            str(knobs_file),
            "--admin-token-file",
            str(token_file),
            "--vllm-executable",
            str(fake_vllm),
            "--kv-tokens",
            "1600",
            "--",
            "--model",
            "/models/llama",
            "--max-model-len",
            "4096",
        ],
        env={"FAKE_VLLM_MARKER": str(marker)},
    )
    try:
        _wait_healthy(url, proc)
        started = httpx.get(f"{url}/fake/argv").json()
        argv = started["argv"]
        assert argv[:3] == ["serve", "/models/llama", "--host"]
        assert argv[argv.index("--scheduler-cls") + 1] == SCHEDULER_CLS
        assert argv[argv.index("--num-gpu-blocks-override") + 1] == "100"
        assert argv[-2:] == ["--max-model-len", "4096"]
        assert Path(started["env"]["PROMETHEUS_MULTIPROC_DIR"]).is_dir()
        # The scheduler's knobs file holds the document in force, before and after a PUT.
        first = Knobs.model_validate_json(httpx.get(f"{url}/fake/knobs").content)
        assert first == Knobs.model_validate_json(knobs_file.read_text())
        auth = {"Authorization": f"Bearer {token_file.read_text().strip()}"}
        doc = {"policy": "vllm", "reservationRatio": 0.25}
        assert httpx.put(f"{url}/sloserve/knobs", json=doc, headers=auth).status_code == 200
        mirrored = Knobs.model_validate_json(httpx.get(f"{url}/fake/knobs").content)
        assert mirrored == Knobs.model_validate(doc)
        # Health reports what the scheduler says it applied (it writes <knobs file>.applied).
        assert httpx.get(f"{url}/sloserve/health").json()["appliedKnobsRevision"] is None
        applied = Path(started["env"]["SLOSERVE_KNOBS_PATH"] + ".applied")
        applied.write_text(
            KnobsState(revision=mirrored.revision(), knobs=mirrored).model_dump_json()
        )
        health = httpx.get(f"{url}/sloserve/health").json()
        assert health["appliedKnobsRevision"] == health["knobsRevision"] == mirrored.revision()
        # OpenAI API and /metrics pass through, streaming included.
        assert httpx.post(f"{url}/v1/completions", json={"x": 1}).json() == {"echo": {"x": 1}}
        with httpx.stream(
            "POST", f"{url}/v1/completions", json={"stream": True, "max_tokens": 4}
        ) as r:
            lines = [line for line in r.iter_lines() if line.startswith("data: ")]
        assert len(lines) == 5 and lines[-1] == "data: [DONE]"
        assert "vllm:num_requests_running" in httpx.get(f"{url}/metrics").text
    finally:
        code, err = _stop(proc)
    assert marker.read_text() == "SIGTERM"
    assert not Path(started["env"]["PROMETHEUS_MULTIPROC_DIR"]).exists()  # run dir removed
    assert code in (0, -signal.SIGTERM)
    assert token_file.read_text().strip() not in err


def test_real_mode_exits_with_vllms_status_when_vllm_dies(tmp_path: Path, fake_vllm: Path) -> None:
    port = free_loopback_port()
    proc = _engine(
        ["--host", "127.0.0.1", "--port", str(port), "--vllm-executable", str(fake_vllm)],
        env={"FAKE_VLLM_EXIT": "3", "FAKE_VLLM_MARKER": str(tmp_path / "m")},
    )
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err.decode()
    assert "vllm serve exited with status 3" in err.decode()
