"""The router's own cost, measured on real processes: added latency, decision time, relay
throughput (``sloserve bench router``'s ``latency`` and ``relay`` phases).

- **Added latency**: the same one-token completion, sent one at a time directly to
  an idle engine and through a router (shield on and off), interleaved so all three
  paths see the same engine and machine; added = router path − direct path.
- **Decision time**: the routers' own ``sloserve_router_decision_seconds``
  histogram over the run (a bucket bound, not an estimate).
- **Relay throughput**: many long streams from fast engines through one router;
  tokens per wall second, and per second of the router process's CPU time (from
  ``/proc``). ``router_cpu_share`` near 1 means the router's core was the limit;
  well below 1, the engines or the client were.

The router runs alone on one core when the machine has two or more (``Pinning``),
engines and this client on the others, so "one router core" is literal. The client is
``aiohttp``, the cheapest client measured here, so it disturbs the engines' core least.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import statistics
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from .fleet import Child
from .router import _delta, _merged_hist, histogram_quantile_le, scrape

DECISION = "sloserve_router_decision_seconds"
JSON_HEADERS = {"Content-Type": "application/json"}
ONE_TOKEN = json.dumps({"model": "sim", "prompt": [5, 6, 7], "max_tokens": 1}).encode()


@dataclass(frozen=True, slots=True)
class Pinning:
    """Which CPUs the router gets, and which everything else gets (``None``: no pinning)."""

    router: frozenset[int] | None
    rest: frozenset[int] | None

    def describe(self) -> str:
        if self.router is None or self.rest is None:
            return "not pinned"
        return f"router on CPU {sorted(self.router)}, engines and client on {sorted(self.rest)}"


def pinning(router_cpu: int | None) -> Pinning:
    """``router_cpu``: the router's CPU; ``None``: the last CPU this process may use; ``-1``
    (or a single CPU): no pinning."""
    available = sorted(os.sched_getaffinity(0))
    if router_cpu == -1 or len(available) < 2:
        return Pinning(None, None)
    cpu = available[-1] if router_cpu is None else router_cpu
    if cpu not in available:
        raise ValueError(f"--router-cpu {cpu}: this process may use CPUs {available}")
    return Pinning(frozenset({cpu}), frozenset(available) - {cpu})


@contextlib.contextmanager
def client_on(cpus: frozenset[int] | None) -> Iterator[None]:
    """This process (the load client) on ``cpus`` for the block."""
    if cpus is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its threads (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def decision_quantiles(
    before: Sequence[dict[str, float]], after: Sequence[dict[str, float]]
) -> dict[str, float]:
    """Decision time over a run, from the routers' histograms (merged over routers)."""
    deltas = [_delta(a, b) for a, b in zip(after, before, strict=True)]
    hist = _merged_hist(deltas, DECISION)
    count = hist.get(DECISION + "_count", 0.0)
    return {
        "decisions": count,
        "decision_p50_le_ms": histogram_quantile_le(hist, DECISION, 0.5) * 1e3,
        "decision_p99_le_ms": histogram_quantile_le(hist, DECISION, 0.99) * 1e3,
        "decision_mean_ms": hist.get(DECISION + "_sum", 0.0) / max(count, 1.0) * 1e3,
    }


def _pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _timed_post(session: aiohttp.ClientSession, url: str) -> float:
    t0 = time.perf_counter()
    async with session.post(url + "/v1/completions", data=ONE_TOKEN, headers=JSON_HEADERS) as r:
        await r.read()
        status = r.status
    elapsed = time.perf_counter() - t0
    if status != 200:
        raise RuntimeError(f"{url} answered {status}")
    return elapsed


async def _idle_cpu_per_s(children: Sequence[Child], seconds: float) -> dict[str, float]:
    """CPU seconds per second each process spends with no requests (polling, ticks)."""
    cpu0 = {c.name: cpu_seconds(c.process.pid) for c in children}
    await asyncio.sleep(seconds)
    return {c.name: (cpu_seconds(c.process.pid) - cpu0[c.name]) / seconds for c in children}


async def added_latency(
    engine: Child, router: Child, unshielded: Child, samples: int
) -> dict[str, float]:
    """Sequential one-token requests, the three paths interleaved (same engine load)."""
    paths = {"direct": engine.url, "router": router.url, "router_no_shield": unshielded.url}
    times: dict[str, list[float]] = {k: [] for k in paths}
    routers = (router, unshielded)
    async with aiohttp.ClientSession() as session:
        for url in paths.values():  # warm connections (and the routers' code paths)
            for _ in range(20):
                await _timed_post(session, url)
        idle = await _idle_cpu_per_s(routers, 5.0)
        before = [scrape(r.url) for r in routers]
        cpu0 = {c.name: cpu_seconds(c.process.pid) for c in routers}
        t0 = time.monotonic()
        for _ in range(samples):
            for name, url in paths.items():
                times[name].append(await _timed_post(session, url))
        window = time.monotonic() - t0
        cpu = {c.name: cpu_seconds(c.process.pid) - cpu0[c.name] for c in routers}
        after = [scrape(r.url) for r in routers]
    out: dict[str, float] = {
        # CPU the routers spent on the requests: their CPU in the window minus what they
        # spend idle in as long (state polling at 20 Hz, queue ticks).
        "router_idle_cpu_ms_per_s": idle[router.name] * 1e3,
        "router_cpu_ms_per_request": (cpu[router.name] - idle[router.name] * window)
        / samples
        * 1e3,
        "router_no_shield_cpu_ms_per_request": (
            cpu[unshielded.name] - idle[unshielded.name] * window
        )
        / samples
        * 1e3,
    }
    for name, values in times.items():
        out[f"{name}_p50_ms"] = _pct(values, 0.5) * 1e3
        out[f"{name}_p99_ms"] = _pct(values, 0.99) * 1e3
    for name in ("router", "router_no_shield"):
        added = [a - b for a, b in zip(times[name], times["direct"], strict=True)]
        out[f"{name}_added_p50_ms"] = (_pct(times[name], 0.5) - _pct(times["direct"], 0.5)) * 1e3
        out[f"{name}_added_p99_ms"] = (_pct(times[name], 0.99) - _pct(times["direct"], 0.99)) * 1e3
        out[f"{name}_paired_added_median_ms"] = statistics.median(added) * 1e3
        out[f"{name}_paired_added_p99_ms"] = _pct(added, 0.99) * 1e3
    out["shield_hop_p50_ms"] = out["router_p50_ms"] - out["router_no_shield_p50_ms"]
    out.update(decision_quantiles(before, after))
    out["samples"] = samples
    return out


async def _drain(session: aiohttp.ClientSession, url: str, tokens: int) -> tuple[int, int]:
    """One streamed completion read to its end: (tokens, chunks read). Tokens are counted in
    the bytes (one ``finish_reason`` key per token event), as the router counts them; a
    chunk holds several events when they queued up on the socket."""
    body = json.dumps(
        {"model": "sim", "prompt": [9] * 16, "max_tokens": tokens, "stream": True}
    ).encode()
    got = chunks = 0
    async with session.post(url + "/v1/completions", data=body, headers=JSON_HEADERS) as r:
        async for chunk in r.content.iter_any():
            got += chunk.count(b'"finish_reason"')
            chunks += 1
    return got, chunks


def relay_throughput(router: Child, streams: int, tokens: int) -> dict[str, float]:
    async def go() -> list[tuple[int, int]]:
        connector = aiohttp.TCPConnector(limit=0)
        timeout = aiohttp.ClientTimeout(total=600)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            return await asyncio.gather(
                *(_drain(session, router.url, tokens) for _ in range(streams))
            )

    before = [scrape(router.url)]
    cpu0 = cpu_seconds(router.process.pid)
    t0 = time.monotonic()
    counts = asyncio.run(go())
    wall = time.monotonic() - t0
    cpu = cpu_seconds(router.process.pid) - cpu0
    relayed = sum(n for n, _ in counts)
    chunks = sum(c for _, c in counts)
    return {
        "streams": streams,
        "tokens": relayed,
        "client_chunks": chunks,
        "tokens_per_chunk": relayed / max(chunks, 1),
        "wall_s": wall,
        "router_cpu_s": cpu,
        "router_cpu_share": cpu / wall,
        "tokens_per_wall_s": relayed / wall,
        "tokens_per_router_cpu_s": relayed / cpu if cpu > 0 else math.nan,
        # what one core relays when every token is its own chunk (no coalescing)
        "chunks_per_router_cpu_s": chunks / cpu if cpu > 0 else math.nan,
        **decision_quantiles(before, [scrape(router.url)]),
    }
