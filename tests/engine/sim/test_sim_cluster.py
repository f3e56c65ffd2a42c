"""The cluster replay: real engines, routers and shields; only time and delays are modelled."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sloserve_engine.contract.slo import SLO
from sloserve_engine.router.knobs import RouterKnobs
from sloserve_engine.sim import SimConfig, load_profile
from sloserve_engine.sim.cluster import ClusterConfig, simulate_cluster, verdict
from sloserve_engine.sim.workload import WorkloadSpec, build_workload

PROFILE = load_profile()
SMALL = SimConfig(kv_tokens=40_000)


def requests(rate: float, n: int = 300) -> list:
    return build_workload(WorkloadSpec(requests=n, rate=rate, arrival="poisson", seed=3))


def run(knobs: RouterKnobs, cluster: ClusterConfig, rate: float, n: int = 300):
    return simulate_cluster(requests(rate, n), knobs, PROFILE, SMALL, SLO(), cluster)


def test_every_request_ends_once_and_served_ones_get_exactly_their_tokens() -> None:
    reqs = requests(40.0)
    res = simulate_cluster(
        reqs,
        RouterKnobs(queue_timeout_s=0.5),
        PROFILE,
        SMALL,
        SLO(),
        ClusterConfig(engines=3, routers=2, state_delay_s=0.2, regions=2),
    )
    assert len(res.outcomes) == len(reqs)
    for r, o in zip(reqs, res.outcomes, strict=True):
        if o.rejected is None:
            assert o.tokens_seen == r.output_tokens and o.finish is not None and o.engine >= 0
        else:
            assert o.first_token is None and o.engine == -1
        v = verdict(o, SLO())
        assert not (v.strict and not v.both)
        assert (o.rejected is None) or not v.both
    assert sum(res.per_engine_served) == sum(1 for o in res.outcomes if o.rejected is None)


def test_light_load_all_policies_meet_the_slo() -> None:
    for placement in ("random", "least-kv", "slo-greedy"):
        res = run(RouterKnobs(placement=placement), ClusterConfig(engines=2), rate=4.0, n=120)
        assert all(o.rejected is None for o in res.outcomes), placement
        assert sum(verdict(o, SLO()).both for o in res.outcomes) >= 0.95 * 120


def test_overload_with_admission_rejects_at_once_and_without_never() -> None:
    # Whether that raises attainment is a benchmark (docs/benchmarks.md), not a unit test.
    cluster = ClusterConfig(engines=2)
    on = run(RouterKnobs(placement="slo-greedy"), cluster, rate=90.0, n=200)
    off = run(RouterKnobs(placement="slo-greedy", admission=False), cluster, rate=90.0, n=200)
    assert {o.rejected for o in on.outcomes} >= {"slo_infeasible"}
    assert not any(o.rejected for o in off.outcomes)
    assert all(o.placed_at == o.arrival for o in off.outcomes)


def test_stale_state_makes_several_routers_collide_and_the_shield_refuses() -> None:
    stale = ClusterConfig(engines=4, routers=4, state_delay_s=0.5, regions=2)
    res = run(RouterKnobs(placement="least-kv"), stale, rate=60.0)
    assert res.refusals > 0 and res.grants > 0
    fresh = run(RouterKnobs(placement="least-kv", shield=False), replace(stale, routers=1), 60.0)
    assert fresh.refusals == 0 and fresh.grants == 0


def test_bad_cluster_config_is_named() -> None:
    with pytest.raises(ValueError, match="regions"):
        ClusterConfig(engines=2, regions=3)
    with pytest.raises(ValueError, match="delays"):
        ClusterConfig(state_delay_s=-1.0)


def test_bench_cluster_cli_writes_table_json_and_plot(tmp_path, capsys) -> None:
    import json

    from sloserve_engine.bench.cluster import DEFAULT_MARGIN
    from sloserve_operator.cli import main

    out = tmp_path / "c.json"
    rc = main(
        [
            "bench",
            "cluster",
            "--engines",
            "2",
            "--routers",
            "1,2",
            "--state-delay-ms",
            "0,500",
            "--placement",
            "random,slo-greedy",
            "--rates",
            "20",
            "--requests",
            "60",
            "--kv-tokens",
            "40000",
            "--ttft-margin",
            f"{DEFAULT_MARGIN:g},0.5",
            "--shield-delay-ms",
            "100",
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
    assert len(rep["runs"]) == 32
    assert {r["segment"] for r in rep["runs"]} == {0, 1}
    assert {s["slices"] for s in rep["summary"]} == {2}
    assert set(rep["capacity_bound"]) == {"0", "1"} and all(
        v > 0 for v in rep["capacity_bound"].values()
    )
    for r in rep["runs"]:
        assert len(r["refusals_per_1k_windows"]) == 4 and len(r["attainment_windows"]) == 4
        misses = r["requests"] - round(r["slo_attainment"] * r["requests"])
        assert sum(r["miss_causes"].values()) == misses
        assert r["drain_s"] >= 0
    assert {r["label"] for r in rep["runs"]} >= {"random", "slo-greedy margin 0.5 2r/500ms"}
    assert rep["setup"]["shield_delay_ms"] == 100.0
    assert all(r["requests"] == 60 for r in rep["runs"])
    assert (tmp_path / "cluster_azure-conv_trace.png").stat().st_size > 0
    assert "max rate" in capsys.readouterr().out


def test_per_window_means_consecutive_slices() -> None:
    from sloserve_engine.bench.cluster import per_window

    assert per_window([1, 1, 0, 0, 2, 2, 4, 4]) == [1.0, 0.0, 2.0, 4.0]
    assert per_window([3.0, 5.0], windows=1) == [4.0]


def test_miss_causes_split_misses_by_the_room_engines_had_at_arrival() -> None:
    from sloserve_engine.bench.cluster import miss_causes
    from sloserve_engine.sim.cluster import ClusterResult, RequestOutcome

    def out(delays: tuple[float, ...], met: bool) -> RequestOutcome:
        o = RequestOutcome(arrival=0.0, output_tokens=2, queue_delays=delays)
        if met:
            o.first_token, o.finish, o.tokens_seen = 0.1, 0.15, 2
        else:
            o.rejected = "slo_infeasible"
        return o

    outs = [
        out((0.1, 2.0), met=True),  # met: not a miss
        out((1.5, 2.0), met=False),  # every engine past the 1 s target
        out((0.2, 3.0), met=False),  # one engine within half the target
        out((0.7, 3.0), met=False),  # in between
    ]
    res = ClusterResult(outs, SLO(ttft_ms=1000), 0, 0, 0.0, 0)
    assert miss_causes(res) == {"cluster_full": 1, "room_somewhere": 1, "in_between": 1}


def test_bench_cluster_cli_runs_an_adaptive_margin(tmp_path) -> None:
    import json

    from sloserve_operator.cli import main

    out = tmp_path / "m.json"
    args = ["bench", "cluster", "--engines", "2", "--placement", "slo-greedy", "--rates", "20"]
    args += ["--requests", "40", "--ttft-margin", "0.2", "--margin-late-share", "0,0.01"]
    assert main([*args, "--json", str(out)]) == 0
    runs = json.loads(out.read_text())["runs"]
    assert {(r["label"], r["late_share"]) for r in runs} == {
        ("slo-greedy margin 0.2", 0.0),
        ("slo-greedy margin 0.2 late-share 0.01", 0.01),
    }


def test_bench_cluster_cli_runs_the_reserved_kv_wait(tmp_path) -> None:
    import json

    from sloserve_operator.cli import main

    out = tmp_path / "k.json"
    args = ["bench", "cluster", "--engines", "2", "--placement", "slo-greedy", "--rates", "20"]
    args += ["--requests", "40", "--kv-wait-reserved", "off,on"]
    assert main([*args, "--json", str(out)]) == 0
    runs = json.loads(out.read_text())["runs"]
    assert {(r["label"], r["kv_wait_reserved"]) for r in runs} == {
        ("slo-greedy kv-wait-reserved off", False),
        ("slo-greedy", True),
    }


def test_bench_cluster_cli_names_a_bad_placement(capsys) -> None:
    from sloserve_operator.cli import main

    with pytest.raises(SystemExit):
        main(["bench", "cluster", "--placement", "round-robin"])
    assert "round-robin" in capsys.readouterr().err
