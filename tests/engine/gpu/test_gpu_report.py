"""``sloserve bench gpu-report`` on small hand-written run folders (no GPU needed)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from sloserve_engine.bench import gpu_report

STEP_COLUMNS = ["t_sched", "kv_usage", "preempt_total", "sched_s"]


def write_run(
    folder: Path,
    label: str,
    rate: float,
    attainment: float,
    max_tbt: list[float],
    window_extra: dict[str, object] | None = None,
) -> None:
    """One run as ``bench gpu`` wrote it before workloads were recorded (legacy names):
    window, per-request CSV and step log. A request attains (TTFT 0.1 s, 50 ms per token)
    when its index is below ``attainment`` × the number of requests."""
    folder.mkdir(parents=True, exist_ok=True)
    window = {
        "scheduler": label,
        "rate": rate,
        "start": 100.0,
        "end": 110.0,
        "policy": label,
        "slo_attainment": attainment,
        "tbt_p50": 0.01,
        "tbt_p99": 0.09,
    } | (window_extra or {})
    runs_file = folder / f"runs_{label}_{rate:g}_{window.get('segment', 0)}.json"
    runs_file.write_text(json.dumps([window]))
    req = str(window.get("req_file", f"req_{label}_{rate:g}.csv"))
    with (folder / req).open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arrival", "ttft", "finish", "n_in", "n_out", "max_tbt", "n_tokens_seen"])
        for i, g in enumerate(max_tbt):
            ttft = 0.1 if i < attainment * len(max_tbt) else 2.0
            w.writerow([float(i), ttft, i + ttft + 0.5, 10, 11, g, 11])
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
    assert run["slo_attainment"] == 1.0  # recomputed from the CSV, not the window's 0.97
    assert run["strict_attainment"] == 0.5  # two streams froze for more than 200 ms
    assert (run["workload"], run["segment"]) == ("azure-conv", 0)
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
    got = {(r["policy"], r["rate"]): (r["strict_attainment"], r["data"]) for r in runs}
    assert got == {
        ("sloserve", 16.0): (1.0, "b"),
        ("sloserve-r0.05", 16.0): (1.0, "b"),
        ("vllm", 16.0): (1.0, "a"),
    }


def test_markdown_table_has_a_row_per_run(tmp_path: Path) -> None:
    write_run(tmp_path, "vllm", 13.0, 1.0, [0.1])
    runs = gpu_report.load_runs(tmp_path)
    for key in ("ttft_p50", "ttft_p90", "ttft_p99", "tbt_p50", "tbt_p99"):
        runs[0][key] = 0.1
    table = gpu_report.markdown_table(runs)
    assert table.count("\n") == 3
    assert "| azure-conv | vllm | 13 | g0 s0 | 100.0% | 100.0% |" in table


def test_segments_workloads_and_stock_tuned_make_one_report_with_spread(tmp_path: Path) -> None:
    """New-format windows name their workload, slice and files; gpu-report aggregates slices,
    finds the better baseline, and cut-off requests (fewer tokens than asked) are misses."""
    for label, segment, att in (
        ("stock", 0, 0.5),
        ("stock", 1, 0.7),
        ("stock-tuned", 0, 0.9),
        ("stock-tuned", 1, 0.9),
        ("sloserve", 0, 1.0),
        ("sloserve", 1, 0.9),
    ):
        extra = {
            "workload": "azure-conv",
            "trace": "azure-conv",
            "segment": segment,
            "req_file": f"req_{label}_16_azure-conv_g{segment}_s0.csv",
            "steps_file": f"steps_{label}_x.csv",
        }
        write_run(tmp_path, label, 16.0, att, [0.05] * 10, extra)
    runs = gpu_report.merge_runs([tmp_path])
    assert len(runs) == 6
    report = gpu_report.build_report(runs, "h200-llama-3.1-8b")
    by = {(s["policy"], s["rate"]): s for s in report["summary"]}
    assert by[("vllm", 16.0)]["slo_attainment"] == pytest.approx(0.6)
    assert by[("vllm", 16.0)]["slo_attainment_min"] == 0.5
    assert by[("sloserve", 16.0)]["slices"] == 2
    vs = report["by_workload"]["azure-conv"]["versus_baseline"]["strict_attainment"]
    assert vs["better_baseline"] == "vllm-tuned"
    text = gpu_report.report_markdown(report)
    assert "| azure-conv | vllm | 16 | 2 | 60.0% ± 14.1% (50.0%–70.0%) |" in text


def test_a_request_cut_off_before_its_last_token_is_a_miss(tmp_path: Path) -> None:
    write_run(tmp_path, "vllm", 13.0, 1.0, [0.05, 0.05])
    req = tmp_path / "req_vllm_13.csv"
    rows = req.read_text().splitlines()
    rows[2] = rows[2].rsplit(",", 1)[0] + ",4"  # 4 of 11 tokens: cut off at the drain bound
    req.write_text("\n".join(rows) + "\n")
    (run,) = gpu_report.load_runs(tmp_path)
    assert (run["completed"], run["slo_attainment"], run["drain_s"]) == (1, 0.5, float("inf"))
