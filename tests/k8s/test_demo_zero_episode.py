"""The demo's scale-to-zero load (``sloserve demo --scale-to-zero``) against a real simulated
engine over real HTTP: warm load, nothing while the service is not at zero, a burst once it
is. The episode on the dev cluster itself: docs/testenv.md."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sloserve_dev.devcluster.loadgen import LoadStats, ZeroEpisode, drive_zero_episode
from sloserve_engine.bench.fleet import fleet


def test_warm_then_idle_until_zero_then_one_burst(tmp_path: Path) -> None:
    with fleet(tmp_path) as f:
        engine = f.start_engine(model="m")
        f.wait_ready()
        stats = LoadStats()
        phases: list[str] = []

        async def episode() -> None:
            stop, zero = asyncio.Event(), asyncio.Event()
            task = asyncio.create_task(
                drive_zero_episode(
                    lambda: [engine.url], "m", stats, stop, zero.is_set,
                    ZeroEpisode(warm_s=2.0, warm_rps=5.0, burst=8),
                )
            )  # fmt: skip
            await asyncio.sleep(0.5)
            phases.append(stats.phase)
            while stats.phase == "warm":  # 2 s of load, then its answers
                await asyncio.sleep(0.05)
            phases.append(stats.phase)
            sent = stats.sent
            await asyncio.sleep(1.5)
            assert stats.sent == sent, "requests sent while not at zero"
            zero.set()  # the service reached zero: one burst
            while stats.phase != "burst":
                await asyncio.sleep(0.01)
            phases.append(stats.phase)
            zero.clear()  # the burst woke it: wait for the next zero
            while not stats.last_burst:
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)
            phases.append(stats.phase)
            stop.set()
            await task

        asyncio.run(episode())
        assert phases == ["warm", "idle", "burst", "idle"]
        assert stats.last_burst.startswith("8/8 answered in ")
        assert stats.failed == 0 and stats.ok == stats.sent and stats.sent > 8
