"""What large request bodies do to the other clients of ``sloserve-engine --simulated``.

Starts the engine as a real process, keeps one token stream open and probes
``/sloserve/health`` every 10 ms while a client posts large bodies one after
another (near the ``--max-body-bytes`` limit: a text prompt or token ids).
Reports the health probe's latency and the stream's longest gap between two
tokens, against a baseline of small bodies. Wall-clock seconds.

    python -m sloserve_engine.bench.bodies --kind text --bodies 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time

import httpx

from ..server.body import DEFAULT_MAX_BODY_BYTES
from ..server.supervisor import free_loopback_port
from .pacing import _wait_healthy

PROBE_INTERVAL_S = 0.01


def large_body(kind: str, size: int) -> bytes:
    """A completions body of about ``size`` bytes (below the limit) of the given kind."""
    if kind == "text":
        words = "hello world, " * (size // 13)
        return json.dumps({"prompt": words[: size - 64], "max_tokens": 1}).encode()
    if kind == "ids":
        ids = list(range(size // 8))
        return json.dumps({"prompt": ids, "max_tokens": 1}).encode()
    return json.dumps({"prompt": "small body", "max_tokens": 1}).encode()


async def _probe(client: httpx.AsyncClient, stop: asyncio.Event) -> list[float]:
    latencies = []
    while not stop.is_set():
        start = time.perf_counter()
        (await client.get("/sloserve/health")).raise_for_status()
        latencies.append(time.perf_counter() - start)
        await asyncio.sleep(PROBE_INTERVAL_S)
    return latencies


async def _stream(client: httpx.AsyncClient, tokens: int) -> float:
    body = {"prompt": [1] * 16, "max_tokens": tokens, "stream": True}
    gaps, last = [], None
    async with client.stream("POST", "/v1/completions", json=body) as r:
        async for line in r.aiter_lines():
            if line.startswith("data: {"):
                now = time.perf_counter()
                if last is not None:
                    gaps.append(now - last)
                last = now
    return max(gaps)


async def _senders(client: httpx.AsyncClient, body: bytes, n: int) -> list[int]:
    statuses = []
    headers = {"content-type": "application/json"}
    for _ in range(n):
        r = await client.post("/v1/completions", content=body, headers=headers)
        statuses.append(r.status_code)
    return statuses


async def _measure(url: str, args: argparse.Namespace) -> tuple[list[float], float, list[int]]:
    body = large_body(args.kind, args.size)
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        stop = asyncio.Event()
        probe = asyncio.create_task(_probe(client, stop))
        stream = asyncio.create_task(_stream(client, args.stream_tokens))
        await asyncio.sleep(0.2)
        statuses = await _senders(client, body, args.bodies)
        max_gap = await stream
        stop.set()
        return await probe, max_gap, statuses


def run(args: argparse.Namespace) -> int:
    port = free_loopback_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [
        sys.executable, "-m", "sloserve_engine.server.cli", "--simulated",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, env={**os.environ}, stderr=subprocess.DEVNULL)
    try:
        _wait_healthy(url, proc)
        latencies, max_gap, statuses = asyncio.run(_measure(url, args))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    latencies.sort()
    size = len(large_body(args.kind, args.size))
    print(
        f"kind {args.kind}: {args.bodies} bodies of {size} bytes "
        f"(answers {sorted(set(statuses))}), {len(latencies)} health probes"
    )
    print(
        f"health latency ms: p50 {1e3 * statistics.median(latencies):.1f}  "
        f"p99 {1e3 * latencies[int(0.99 * (len(latencies) - 1))]:.1f}  "
        f"max {1e3 * latencies[-1]:.1f};  stream's longest token gap ms: {1e3 * max_gap:.1f}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sloserve_engine.bench.bodies")
    p.add_argument("--kind", choices=["text", "ids", "small"], default="text")
    p.add_argument("--size", type=int, default=DEFAULT_MAX_BODY_BYTES - 4096, help="bytes")
    p.add_argument("--bodies", type=int, default=10, help="large bodies posted in a row")
    p.add_argument("--stream-tokens", type=int, default=1000, help="tokens of the open stream")
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
