"""Open-loop load for the demo: Poisson arrivals whose rate swings between a low and a peak.

The swing is what makes the demo interesting: KV pressure and SLO attainment move, and the
autoscaler scales up and back down. Requests go straight to ready engine pod IPs, round robin,
because there is no kube-proxy to implement Service IPs here.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx


@dataclass(frozen=True)
class LoadProfile:
    """Request rate (per second) over time and the shape of each request."""

    low_rps: float = 2.0
    peak_rps: float = 24.0
    period_s: float = 120.0
    prompt_tokens: tuple[int, int] = (200, 1500)
    output_tokens: tuple[int, int] = (50, 400)
    max_in_flight: int = 512


def rate_at(profile: LoadProfile, t: float) -> float:
    """Raised-cosine swing: ``low_rps`` at t=0, ``peak_rps`` at half a period."""
    phase = 0.5 * (1.0 - math.cos(2.0 * math.pi * t / profile.period_s))
    return profile.low_rps + (profile.peak_rps - profile.low_rps) * phase


@dataclass
class LoadStats:
    """Counters the live status shows."""

    sent: int = 0
    ok: int = 0
    failed: int = 0
    in_flight: int = 0
    rps: float = 0.0
    last_error: str = ""
    targets: list[str] = field(default_factory=list)


def completion_body(
    model: str, rng: random.Random, profile: LoadProfile, slo_class: str = "standard"
) -> dict[str, object]:
    """An OpenAI completions body with token-id prompts (no tokenizer needed) and an SLO."""
    n_prompt = rng.randint(*profile.prompt_tokens)
    return {
        "model": model,
        "prompt": [rng.randrange(100, 30000) for _ in range(n_prompt)],
        "max_tokens": rng.randint(*profile.output_tokens),
        "vllm_xargs": {"slo_class": slo_class},
    }


async def _one(
    client: httpx.AsyncClient, url: str, body: dict[str, object], stats: LoadStats
) -> None:
    stats.in_flight += 1
    try:
        response = await client.post(url, json=body)
        if response.status_code == 200:
            stats.ok += 1
        else:
            stats.failed += 1
            stats.last_error = f"{url}: HTTP {response.status_code} {response.text[:120]}"
    except httpx.HTTPError as exc:
        stats.failed += 1
        stats.last_error = f"{url}: {type(exc).__name__} {exc}"
    finally:
        stats.in_flight -= 1


async def drive_load(
    targets: Callable[[], list[str]],
    model: str,
    stats: LoadStats,
    stop: asyncio.Event,
    profile: LoadProfile | None = None,
    seed: int = 0,
) -> None:
    """Send requests to ``targets()`` (base URLs) until ``stop`` is set."""
    profile = profile or LoadProfile()
    rng = random.Random(seed)
    loop = asyncio.get_running_loop()
    start = loop.time()
    tasks: set[asyncio.Task[None]] = set()
    turn = 0
    async with httpx.AsyncClient(timeout=httpx.Timeout(120.0, connect=2.0)) as client:
        while not stop.is_set():
            stats.rps = rate_at(profile, loop.time() - start)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), rng.expovariate(stats.rps))
            current = targets()
            stats.targets = current
            if stop.is_set() or not current or stats.in_flight >= profile.max_in_flight:
                continue
            url = f"{current[turn % len(current)]}/v1/completions"
            turn += 1
            stats.sent += 1
            task = asyncio.create_task(
                _one(client, url, completion_body(model, rng, profile), stats)
            )
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
