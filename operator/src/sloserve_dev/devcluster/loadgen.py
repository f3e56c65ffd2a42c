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
from typing import Any

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
    phase: str = ""
    """The scale-to-zero episode's phase (``warm``, ``idle``, ``burst``); empty otherwise."""
    last_burst: str = ""
    """How the episode's last burst at zero ended: answered / sent and their latency."""


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
) -> bool:
    """Send one request; ``True`` if it was answered 200."""
    stats.in_flight += 1
    try:
        response = await client.post(url, json=body)
        if response.status_code == 200:
            stats.ok += 1
            return True
        stats.failed += 1
        stats.last_error = f"{url}: HTTP {response.status_code} {response.text[:120]}"
    except httpx.HTTPError as exc:
        stats.failed += 1
        stats.last_error = f"{url}: {type(exc).__name__} {exc}"
    finally:
        stats.in_flight -= 1
    return False


def _client() -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=httpx.Timeout(120.0, connect=2.0))


async def drive_load(
    targets: Callable[[], list[str]],
    model: str,
    stats: LoadStats,
    stop: asyncio.Event,
    profile: LoadProfile | None = None,
    seed: int = 0,
    finish_in_flight: bool = False,
) -> None:
    """Send requests to ``targets()`` (base URLs) until ``stop`` is set; then cancel those in
    flight, or with ``finish_in_flight`` wait for their answers (a phase ends, not the demo)."""
    profile = profile or LoadProfile()
    rng = random.Random(seed)
    loop = asyncio.get_running_loop()
    start = loop.time()
    tasks: set[asyncio.Task[bool]] = set()
    turn = 0
    async with _client() as client:
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
        if not finish_in_flight:
            for task in tasks:
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@dataclass(frozen=True)
class ZeroEpisode:
    """The demo's scale-to-zero episode: steady load, then nothing until the service is at
    zero replicas, then a burst all at once (held by the routers while a replica starts);
    idle, zero and burst then repeat."""

    warm_s: float = 20.0
    warm_rps: float = 2.0
    burst: int = 30


async def drive_zero_episode(
    targets: Callable[[], list[str]],
    model: str,
    stats: LoadStats,
    stop: asyncio.Event,
    at_zero: Callable[[], bool],
    episode: ZeroEpisode | None = None,
    seed: int = 0,
) -> None:
    """Warm load for ``warm_s``; then, until ``stop``: wait for ``at_zero()``, send a burst."""
    episode = episode or ZeroEpisode()
    stats.phase = "warm"
    warm = LoadProfile(low_rps=episode.warm_rps, peak_rps=episode.warm_rps)
    warm_done = asyncio.Event()
    timer = asyncio.get_running_loop().call_later(episode.warm_s, warm_done.set)
    stopper = asyncio.create_task(stop.wait())
    stopper.add_done_callback(lambda _: warm_done.set())
    try:
        await drive_load(targets, model, stats, warm_done, warm, seed, finish_in_flight=True)
    finally:
        timer.cancel()
        stopper.cancel()
    rng = random.Random(seed + 1)
    async with _client() as client:
        while not stop.is_set():
            stats.phase, stats.rps = "idle", 0.0
            while not stop.is_set() and not (at_zero() and targets()):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)
            if stop.is_set():
                return
            stats.phase = "burst"
            current = targets()
            stats.targets = current
            stats.sent += episode.burst
            urls = [f"{current[i % len(current)]}/v1/completions" for i in range(episode.burst)]
            bodies = [completion_body(model, rng, LoadProfile()) for _ in urls]
            burst = asyncio.gather(
                *(_timed(client, u, b, stats) for u, b in zip(urls, bodies, strict=True))
            )
            stopped = asyncio.ensure_future(stop.wait())
            watched: set[asyncio.Future[Any]] = {burst, stopped}
            await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if not burst.done():  # Ctrl-C during a cold start: do not wait it out
                burst.cancel()
                await asyncio.gather(burst, return_exceptions=True)
                return
            timed = burst.result()
            answered = sum(ok for ok, _ in timed)
            latencies = [s for _, s in timed]
            stats.last_burst = (
                f"{answered}/{episode.burst} answered in "
                f"{min(latencies):.1f}-{max(latencies):.1f} s"
            )


async def _timed(
    client: httpx.AsyncClient, url: str, body: dict[str, object], stats: LoadStats
) -> tuple[bool, float]:
    """:func:`_one` and how long it took."""
    loop = asyncio.get_running_loop()
    sent_at = loop.time()
    ok = await _one(client, url, body, stats)
    return ok, loop.time() - sent_at
