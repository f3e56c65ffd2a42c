"""Small builders shared by the router tests (real router objects, no fakes)."""

from __future__ import annotations

from sloserve_engine.policy.costmodel import GPU_PROFILE_H200_LLAMA_8B
from sloserve_engine.router.demand import KvDemand
from sloserve_engine.router.snapshot import ArrivalPoint, EngineSnapshot, QueuePoint

COST = GPU_PROFILE_H200_LLAMA_8B


def snap(
    engine_id: str = "e0",
    *,
    region: str = "r0",
    total: int = 97_488,
    free: int = 97_488,
    reserved: int = 0,
    waiting: int = 0,
    running: int = 0,
    waiting_prompt: int = 0,
    delay: float = 0.0,
    drain: float = 0.0,
    at: float = 0.0,
    points: tuple[QueuePoint, ...] = (),
    arrivals: tuple[ArrivalPoint, ...] = (),
    freed: float | None = None,
) -> EngineSnapshot:
    return EngineSnapshot(
        engine_id=engine_id,
        region=region,
        kv_total_tokens=total,
        kv_free_tokens=free,
        kv_reserved_tokens=reserved,
        waiting=waiting,
        running=running,
        waiting_prompt_tokens=waiting_prompt,
        predicted_queue_delay_s=delay,
        kv_drain_tokens_per_s=drain,
        max_batched_tokens=8192,
        observed_at=at,
        queue_by_start=points,
        arrival_work_by_ttft=arrivals,
        kv_freed_tokens_per_s=freed,
    )


def demand(prompt: int = 1000, output: int = 300) -> KvDemand:
    return KvDemand(prompt, output, max(output // 2, 1))
