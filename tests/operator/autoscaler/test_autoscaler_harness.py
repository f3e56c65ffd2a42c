"""The closed-loop harness itself, briefly: real engine processes, real load, our loop."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from sloserve_dev.autoscaler.harness import RunConfig, SloAutoscaler, run_episode
from sloserve_dev.autoscaler.trace import Phase, Workload
from sloserve_operator.autoscaler.decision import ScalingPolicy

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


async def test_overload_on_one_engine_adds_a_replica(tmp_path: Path) -> None:
    """Three times one engine's capacity for 40 modelled seconds (at 4x real time)."""
    policy = ScalingPolicy(max_replicas=3, scale_up_stabilization_s=5)
    episode = await run_episode(
        lambda clock: SloAutoscaler(policy, clock),
        [Phase(10, 3.0), Phase(50, 33.0)],
        Workload(),
        RunConfig(time_scale=4.0, base_port=18600),
        tmp_path,
    )
    assert episode.sent > 300 and episode.failed == 0
    # Sent by the generator process and recorded once each (those still in flight at the
    # end are not recorded).
    assert episode.sent == len(episode.sent_at) >= len(episode.requests) > 0
    assert len({r.index for r in episode.requests}) == len(episode.requests)
    ups = [d for d in episode.decisions if d.desired > d.current]
    assert ups and ups[0].t > 10, episode.decisions
    assert max(r.ready for r in episode.rows) >= 2
    assert any(r.kv_pressure and r.kv_pressure > 0.5 for r in episode.rows)
    assert sum(r.attained + r.missed for r in episode.rows) > 100
    for port in range(18600, 18600 + len(list(tmp_path.glob("engine-*.log")))):
        with socket.socket() as sock:  # every engine process was stopped on the way out
            assert sock.connect_ex(("127.0.0.1", port)) != 0


async def test_a_drained_engine_serves_what_routers_still_place_on_it(tmp_path: Path) -> None:
    """A router places on a scaled-down engine until its next re-read of the engine list: the
    engine must still answer then, and stop only once it holds nothing."""
    import asyncio

    import httpx

    from sloserve_dev.autoscaler.fleet import EngineFleet

    fleet = EngineFleet(
        ["--kv-tokens", "16384", "--served-model-name", "m", "--time-scale", "4"],
        18650,
        tmp_path,
        unlist_s=1.0,
    )
    try:
        await fleet.scale_to(1)
        while not fleet.ready():
            await asyncio.sleep(0.2)
        replica = fleet.ready()[0]
        await fleet.scale_to(0)
        assert not fleet.ready()  # unlisted at once
        body = {"model": "m", "prompt": [101] * 300, "max_tokens": 200}
        async with httpx.AsyncClient(timeout=30.0) as client:
            response = await client.post(f"{replica.url}/v1/completions", json=body)
        assert response.status_code == 200
        for _ in range(100):
            if replica.process.returncode is not None:
                break
            await asyncio.sleep(0.2)
        assert replica.process.returncode is not None  # stopped once idle
    finally:
        await fleet.close()
