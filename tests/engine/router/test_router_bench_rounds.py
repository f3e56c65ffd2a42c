"""``sloserve bench router --segments``: arms in rounds over trace slices, the order rotated
so that engines which learn as they serve do not favour the arms that run last."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from sloserve_engine.bench import router as bench_router
from sloserve_engine.bench.router import PolicyRun, parse_segments, ranking, rotations

ARMS = [("random", True), ("least-kv", True), ("p2c", True), ("least-kv", False)]


def test_rotations_put_every_arm_in_every_position_when_rounds_equal_arms() -> None:
    orders = rotations(ARMS, len(ARMS))
    assert all(sorted(o) == sorted(ARMS) for o in orders)
    for position in range(len(ARMS)):
        assert sorted(o[position] for o in orders) == sorted(ARMS)


def test_rotations_spread_starts_evenly_and_one_round_keeps_the_order() -> None:
    assert rotations(ARMS, 1) == [ARMS]
    starts = [o[0] for o in rotations(ARMS, 2)]
    assert starts == [ARMS[0], ARMS[2]]
    assert [o[0] for o in rotations(ARMS[:3], 3)] == ARMS[:3]
    assert rotations([], 2) == [[], []]


def test_parse_segments_refuses_duplicates_negatives_and_empty() -> None:
    assert parse_segments("0, 2,1") == [0, 2, 1]
    for bad in ("", "0,0", "-1"):
        with pytest.raises(ValueError, match="--segments"):
            parse_segments(bad)


def _run(placement: str, shield: bool, segment: int, standard: float) -> PolicyRun:
    return PolicyRun(
        placement, shield, segment, segment, 0, standard, standard - 0.1, 200, 0, 0,
        20 * segment, 0.001, 0.0001, 1.0,
    )  # fmt: skip


def test_ranking_orders_arms_by_mean_with_min_max_and_refusals() -> None:
    runs = [
        _run("random", True, 0, 0.8),
        _run("p2c", True, 0, 0.9),
        _run("random", True, 1, 1.0),
        _run("p2c", True, 1, 0.7),
        _run("p2c", False, 0, 0.85),
    ]
    rows = ranking(runs)
    assert [(r["placement"], r["shield"]) for r in rows] == [
        ("random", True), ("p2c", False), ("p2c", True),
    ]  # fmt: skip
    top = rows[0]
    assert top["rounds"] == 2 and top["standard_mean"] == pytest.approx(0.9)
    assert (top["standard_min"], top["standard_max"]) == (0.8, 1.0)
    assert top["shield_refusals_per_1k"] == pytest.approx(1000 * 20 / 400)


@pytest.mark.slow
def test_policies_phase_runs_rounds_over_slices_in_rotated_order(tmp_path: Path) -> None:
    p = argparse.ArgumentParser()
    bench_router.add_arguments(p)
    args = p.parse_args(
        [
            "--engines", "2", "--routers", "2", "--requests", "12", "--rate", "6",
            "--policies", "random,p2c", "--shield-compare", "p2c", "--segments", "3,5",
            "--warmup", "4", "--skip", "latency,relay", "--log-dir", str(tmp_path),
            "--json", str(tmp_path / "r.json"),
        ]
    )  # fmt: skip
    assert bench_router.run(args) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    order = [(r["round"], r["segment"], r["placement"], r["shield"]) for r in report["runs"]]
    assert order == [
        (0, 3, "random", True), (0, 3, "p2c", True), (0, 3, "p2c", False),
        (1, 5, "p2c", True), (1, 5, "p2c", False), (1, 5, "random", True),
    ]  # fmt: skip
    assert all(r["requests"] == 12 for r in report["runs"])
    assert sorted((r["placement"], r["shield"]) for r in report["ranking"]) == [
        ("p2c", False), ("p2c", True), ("random", True),
    ]  # fmt: skip
    assert all(r["rounds"] == 2 for r in report["ranking"])
    assert "--segments 3,5" in report["command"]
