"""``sloserve bench router --engine-urls``: the issue-17 arms against running engines, and the
GPU session script's helpers (the script itself runs only on the lent GPU machine)."""

from __future__ import annotations

import argparse
import csv
import json
import math
import subprocess
from pathlib import Path

import pytest

from sloserve_engine.bench import router as bench_router
from sloserve_engine.bench.fleet import fleet
from sloserve_engine.bench.router_arms import ARMS, ArmRun, max_rate_at, parse_runs
from sloserve_engine.router.knobs import DEFAULT_PLACEMENT, RouterKnobs

SCRIPT = Path(__file__).parents[3] / "hack" / "gpu-session-issue17.sh"


def _run(arm: str, rate: float, standard: float, strict: float) -> ArmRun:
    return ArmRun(
        "azure-conv",
        rate,
        arm,
        "random",
        False,
        False,
        10,
        standard,
        strict,
        0,
        0,
        0,
        None,
        math.nan,
        math.nan,
        math.nan,
        1.0,
    )


def test_arms_are_valid_router_knobs_and_cover_issue_17() -> None:
    assert [a.name for a in ARMS] == [
        "random",
        "least-kv",
        "p2c",
        "sloserve-shield",
        "sloserve-admission",
    ]
    for arm in ARMS:
        knobs = RouterKnobs.model_validate(arm.knobs())
        assert (knobs.shield, knobs.admission) == (arm.shield, arm.admission)
    assert ARMS[3].placement == ARMS[4].placement == DEFAULT_PLACEMENT
    assert [a.admission for a in ARMS] == [False, False, False, False, True]


def test_parse_runs() -> None:
    assert parse_runs("azure-code@5, sharegpt@2.5") == [("azure-code", 5.0), ("sharegpt", 2.5)]
    assert parse_runs("") == []
    with pytest.raises(ValueError, match="TRACE@RATE"):
        parse_runs("azure-code")


def test_max_rate_at_stops_at_the_first_miss() -> None:
    runs = [_run("p2c", 28, 0.95, 0.91), _run("p2c", 32, 0.85, 0.5), _run("p2c", 36, 0.92, 0.2)]
    assert max_rate_at(runs, "p2c", "azure-conv", "standard", 0.9) == 28
    assert max_rate_at(runs, "p2c", "azure-conv", "strict", 0.9) == 28
    assert max_rate_at(runs, "p2c", "azure-conv", "strict", 0.95) is None
    assert max_rate_at(runs, "random", "azure-conv", "standard", 0.9) is None


def _bash(snippet: str) -> str:
    return subprocess.run(
        ["bash", "-c", f"source {SCRIPT}; {snippet}"], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_session_script_parses_and_places_engines() -> None:
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    assert _bash("gpu_of x1 0; gpu_of x1 1").split() == ["0", "0"]
    assert _bash("gpu_of x2 0; gpu_of x2 1").split() == ["0", "1"]
    assert _bash("gpu_util_of x1") == "0.4"
    assert _bash("label_of x1") == (
        "two engines on one H200: placement correctness and ranking, not capacity"
    )
    argv = _bash("engine_cmd 8001 /m /t 0.4 97488 /v").split()
    assert argv[argv.index("--kv-tokens") + 1] == "97488"
    assert argv[argv.index("--gpu-memory-utilization") + 1] == "0.4"
    assert {"--skip-tokenizer-init", "--no-enable-prefix-caching"} <= set(argv)
    assert argv[argv.index("--load-format") + 1] == "dummy"
    assert argv.index("--") < argv.index("--load-format")  # vLLM's flags after the separator


def test_session_script_rejects_an_unknown_kind(tmp_path: Path) -> None:
    r = subprocess.run(
        ["bash", str(SCRIPT), str(tmp_path), "--kind", "x8"], capture_output=True, text=True
    )
    assert r.returncode == 2 and "--kind" in r.stderr


@pytest.mark.slow
def test_url_mode_runs_all_five_arms_against_running_engines(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    with fleet(tmp_path / "engines", token="arms-test-token") as f:
        engines = [f.start_engine("--kv-tokens", "16384") for _ in range(2)]
        f.wait_ready()
        p = argparse.ArgumentParser()
        bench_router.add_arguments(p)
        args = p.parse_args(
            [
                "--engine-urls",
                ",".join(e.url for e in engines),
                "--admin-token-file",
                str(f.token_file),
                "--requests",
                "8",
                "--warmup",
                "3",
                "--rates",
                "6",
                "--oos",
                "azure-code@4",
                "--oos-requests",
                "5",
                "--latency-samples",
                "3",
                "--out",
                str(out),
            ]
        )
        assert bench_router.run(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    names = [a.name for a in ARMS]
    assert [(r["trace"], r["arm"]) for r in summary["runs"]] == [
        *(("azure-conv", n) for n in names),
        *(("azure-code", n) for n in names),
    ]
    assert set(summary["max_rate_at_90"]) == set(names)
    assert summary["added_latency"]["samples"] == 3
    for run in summary["runs"]:
        stem = f"{run['trace']}-r{run['rate']:g}-{run['arm']}"
        rows = list(csv.DictReader((out / f"{stem}.csv").open()))
        assert len(rows) == run["requests"] == (8 if run["trace"] == "azure-conv" else 5)
        assert sum(int(r["met_standard"]) for r in rows) / len(rows) == run["standard"]
        log = json.loads((out / "routers" / f"{stem}.json").read_text())
        assert log["knobs"]["placement"] == run["placement"]
        assert len(log["counter_deltas"]) == 2  # two routers
        assert (out / "engines" / f"{stem}-engine1.prom").exists()
    assert "sloserve-admission" in (out / "summary.txt").read_text()
