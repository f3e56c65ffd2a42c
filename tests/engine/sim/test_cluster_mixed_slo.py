"""``bench cluster --workload mixed-slo``: requests carry their SLO class into the router,
every request ends exactly once per class, and the full queue sheds the lower class."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from sloserve_engine.bench.workloads import DEFAULT_MIX, add_slo_mix_arguments, slo_mix
from sloserve_engine.contract.slo import SLO
from sloserve_engine.router.knobs import RouterKnobs
from sloserve_engine.sim import SimConfig, load_profile
from sloserve_engine.sim.cluster import ClusterConfig, simulate_cluster
from sloserve_engine.sim.workload import SLO_CLASSES, TraceRequest
from sloserve_operator.cli import main


def _mix(argv: list[str]) -> float | None:
    p = argparse.ArgumentParser()
    add_slo_mix_arguments(p)
    return slo_mix(p.parse_args(argv))


def test_mix_option_is_read_once_for_every_bench() -> None:
    assert _mix([]) is None
    assert _mix(["--workload", "mixed-slo"]) == DEFAULT_MIX
    assert _mix(["--workload", "mixed-slo", "--mix", "0.3"]) == 0.3
    with pytest.raises(ValueError, match="--mix needs --workload mixed-slo"):
        _mix(["--mix", "0.3"])


@pytest.mark.parametrize("bench", ["cluster", "sim"])
@pytest.mark.parametrize("bad", ["1.5", "-0.1", "nan", "half"])
def test_a_bad_mix_is_named(bench: str, bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["bench", bench, "--workload", "mixed-slo", "--mix", bad])
    err = capsys.readouterr().err
    assert "--mix" in err and "between 0 and 1" in err and bad in err


def test_mix_without_mixed_slo_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "cluster", "--mix", "0.3", "--rates", "10", "--requests", "10"]) == 2
    assert "--mix needs --workload mixed-slo" in capsys.readouterr().out


def test_overloaded_mixed_run_gives_every_request_one_outcome_per_class(tmp_path: Path) -> None:
    out = tmp_path / "mixed.json"
    rc = main(
        [
            "bench",
            "cluster",
            "--engines",
            "2",
            "--placement",
            "random,slo-greedy",
            "--admission",
            "on,off",
            "--rates",
            "60",
            "--requests",
            "120",
            "--kv-tokens",
            "40000",
            "--workload",
            "mixed-slo",
            "--mix",
            "0.5",
            "--segments",
            "0,1",
            "--json",
            str(out),
            "--plots",
            str(tmp_path),
        ]
    )
    assert rc == 0
    rep = json.loads(out.read_text())
    assert rep["workload"] == "azure-conv-mixed0.5" and rep["setup"]["slo_mix"] == 0.5
    assert len(rep["runs"]) == 8
    for r in rep["runs"]:
        classes = r["per_class"]
        assert set(classes) == {"interactive", "batch"}
        assert sum(c["requests"] for c in classes.values()) == r["requests"] == 120
        for c in classes.values():
            assert c["served"] + c["rejected_total"] == c["requests"]
            assert sum(c["rejected"].values()) == c["rejected_total"]
            assert c["strict_attainment"] <= c["slo_attainment"] <= c["served"] / c["requests"]
        assert sum(c["rejected_total"] for c in classes.values()) == r["rejected_total"]
        met = sum(round(c["slo_attainment"] * c["requests"]) for c in classes.values())
        assert met == round(r["slo_attainment"] * r["requests"])
        if not r["admission"]:
            assert r["rejected_total"] == 0
    # overload: admission turns some interactive (250 ms) requests away
    assert any(r["per_class"]["interactive"]["rejected_total"] for r in rep["runs"])
    summary = rep["class_summary"]
    assert len(summary) == 8 and {s["slices"] for s in summary} == {2}
    for s in summary:
        assert s["slo_attainment_min"] <= s["slo_attainment"] <= s["slo_attainment_max"]
        assert 0.0 <= s["shed_share"] <= 1.0
    assert (tmp_path / "cluster_azure-conv_trace_classes.png").stat().st_size > 0


def _queue_then_shed(class_priority: tuple[str, ...]) -> list[tuple[str, str | None]]:
    """One engine whose KV (2,048 tokens) no request's predicted demand fits: every request
    is held (an idle engine meets its TTFT) in a queue of 3, so the 4th and later arrivals
    find it full. Arrival order: interactive, batch, batch, interactive, interactive, batch."""
    order = ["interactive", "batch", "batch", "interactive", "interactive", "batch"]
    reqs = [TraceRequest(str(k), 0.005 * k, 1500, 20, SLO_CLASSES[c]) for k, c in enumerate(order)]
    res = simulate_cluster(
        reqs,
        RouterKnobs(queue_limit=3, class_priority=class_priority),
        load_profile(),
        SimConfig(kv_tokens=2048),
        SLO(),
        ClusterConfig(engines=1),
    )
    return [(o.slo.slo_class if o.slo else "", o.rejected) for o in res.outcomes]


def test_the_full_queue_sheds_the_lower_class_newest_first() -> None:
    got = _queue_then_shed(("interactive", "standard", "batch"))
    # the two interactive arrivals evict the newest batch, then the other; the last batch
    # finds only interactive requests held and is turned away, not shed
    assert [got[k] for k in (1, 2, 5)] == [
        ("batch", "shed"),
        ("batch", "shed"),
        ("batch", "queue_full"),
    ]
    assert all(reason != "shed" for cls, reason in got if cls == "interactive")
    # the same requests with the ranking reversed: now interactive is the one shed
    flipped = _queue_then_shed(("batch", "standard", "interactive"))
    assert [k for k, (_, reason) in enumerate(flipped) if reason == "shed"] == [0]
    assert flipped[0] == ("interactive", "shed")
