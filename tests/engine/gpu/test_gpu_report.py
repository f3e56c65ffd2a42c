"""``sloserve bench gpu-report`` on small hand-written run folders (no GPU needed)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from sloserve_engine import gpu_report

STEP_COLUMNS = ["t_sched", "kv_usage", "preempt_total", "sched_s"]


def write_run(
    folder: Path, label: str, rate: float, attainment: float, max_tbt: list[float]
) -> None:
    """One run as ``bench gpu`` writes it: window, per-request CSV and step log."""
    folder.mkdir(parents=True, exist_ok=True)
    window = {
        "scheduler": label,
        "rate": rate,
        "start": 100.0,
        "end": 110.0,
        "policy": label,
        "slo_attainment": attainment,
    }
    runs_file = folder / f"runs_{label}_{rate:g}.json"
    runs_file.write_text(json.dumps([window]))
    with (folder / f"req_{label}_{rate:g}.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arrival", "max_tbt"])
        w.writerows([0.0, g] for g in max_tbt)
    with (folder / f"steps_{label}_{rate:g}.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(STEP_COLUMNS)
        # 11 steps 10 ms apart inside the window, 3 preemptions, 0.2 ms of scheduler each.
        w.writerows([100.0 + i * 0.01, 0.5, 3 if i > 5 else 0, 0.0002] for i in range(11))
        w.writerow([200.0, 0.9, 50, 0.1])  # outside the window: ignored


def test_load_runs_derives_stalls_preemptions_and_overhead(tmp_path: Path) -> None:
    write_run(tmp_path, "sloserve", 16.0, 0.97, [0.05, 0.25, 0.5, 0.1])
    (run,) = gpu_report.load_runs(tmp_path)
    assert run["stalls_over_200ms"] == 2
    assert run["preemptions"] == 3
    assert run["steps"] == 11
    assert run["mean_step_interval_ms"] == pytest.approx(10.0)
    assert run["sched_overhead"] == pytest.approx(0.02)
    assert run["_kv"].shape == (11, 2)


def test_step_logs_are_found_for_fractional_rates_and_dotted_tags(tmp_path: Path) -> None:
    write_run(tmp_path, "sloserve-r0.05", 16.75, 0.9, [0.1])
    (run,) = gpu_report.load_runs(tmp_path)
    assert run["preemptions"] == 3


def test_a_later_folder_replaces_the_same_policy_and_rate(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    write_run(first, "vllm", 16.0, 0.85, [0.1])
    write_run(first, "sloserve", 16.0, 0.80, [3.0])
    write_run(second, "sloserve", 16.0, 0.98, [0.1])
    write_run(second, "sloserve-r0.05", 16.0, 0.97, [0.1])
    runs = gpu_report.merge_runs([first, second])
    got = {(r["policy"], r["rate"]): (r["slo_attainment"], r["data"]) for r in runs}
    assert got == {
        ("sloserve", 16.0): (0.98, "b"),
        ("sloserve-r0.05", 16.0): (0.97, "b"),
        ("vllm", 16.0): (0.85, "a"),
    }


def test_markdown_table_has_a_row_per_run(tmp_path: Path) -> None:
    write_run(tmp_path, "vllm", 13.0, 1.0, [0.1])
    runs = gpu_report.load_runs(tmp_path)
    for key in ("ttft_p50", "ttft_p90", "ttft_p99", "tbt_p50", "tbt_p99"):
        runs[0][key] = 0.1
    table = gpu_report.markdown_table(runs)
    assert table.count("\n") == 3
    assert "| vllm | 13 | 100.0% |" in table
