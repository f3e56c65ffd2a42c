"""How faithfully ``sloserve-engine --simulated`` keeps modelled time, seen from real clients.

Starts the engine as a real process, runs a closed loop of streaming clients
against it, and compares the TTFT and TBT the clients measure (wall seconds ×
time scale = modelled seconds) with what the engine itself reports in
``sloserve_ttft_seconds``/``sloserve_tbt_seconds``. The gap is what HTTP, the
event loop and a busy CPU add; it tells how far ``--time-scale`` can be pushed
on a machine before the simulated pod stops behaving like the modelled GPU.

    python -m sloserve_engine.bench.pacing --clients 32 --requests 256 --time-scale 1
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

from ..contract import metrics as names
from ..server.supervisor import free_loopback_port


@dataclass(frozen=True, slots=True)
class ClientSample:
    ttft_s: float
    mean_tbt_s: float


async def _one(client: httpx.AsyncClient, prompt: int, output: int, scale: float) -> ClientSample:
    body = {"prompt": [1] * prompt, "max_tokens": output, "stream": True}
    start = time.monotonic()
    first = last = 0.0
    tokens = 0
    async with client.stream("POST", "/v1/completions", json=body) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if line.startswith("data: {"):
                last = time.monotonic()
                if tokens == 0:
                    first = last
                tokens += 1
    if tokens != output:
        raise RuntimeError(f"got {tokens} tokens, asked for {output}")
    tbt = (last - first) / (tokens - 1) if tokens > 1 else 0.0
    return ClientSample((first - start) * scale, tbt * scale)


async def _load(url: str, args: argparse.Namespace) -> list[ClientSample]:
    samples: list[ClientSample] = []
    remaining = args.requests

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            samples.append(await _one(client, args.prompt, args.output, args.time_scale))

    limits = httpx.Limits(max_connections=args.clients)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:
        await asyncio.gather(*(worker(client) for _ in range(args.clients)))
    return samples


def _engine_means(metrics_text: str) -> tuple[float, float, float]:
    """Mean TTFT, mean TBT (modelled s) and request count, from the engine's histograms."""
    sums: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics_text):
        for s in family.samples:
            if s.name.startswith((f"{names.TTFT}_", f"{names.TBT}_")):
                sums[s.name] = sums.get(s.name, 0.0) + s.value
    n = sums.get(f"{names.TTFT}_count", 0.0)
    n_tbt = sums.get(f"{names.TBT}_count", 0.0)
    ttft = sums.get(f"{names.TTFT}_sum", 0.0) / n if n else 0.0
    tbt = sums.get(f"{names.TBT}_sum", 0.0) / n_tbt if n_tbt else 0.0
    return ttft, tbt, n


def _wait_healthy(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{url}/sloserve/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the simulated engine did not become healthy")


def run(args: argparse.Namespace) -> int:
    port = free_loopback_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [
        sys.executable,
        "-m",
        "sloserve_engine.server.cli",
        "--simulated",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--time-scale",
        str(args.time_scale),
        "--profile",
        args.profile,
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(cmd, env={**os.environ}, stderr=subprocess.DEVNULL)
    try:
        _wait_healthy(url, proc)
        wall = time.monotonic()
        samples = asyncio.run(_load(url, args))
        wall = time.monotonic() - wall
        engine_ttft, engine_tbt, n = _engine_means(httpx.get(f"{url}/metrics").text)
        lag = httpx.get(f"{url}/sloserve/health").json()["lagS"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    client_ttft = statistics.fmean(s.ttft_s for s in samples)
    client_tbt = statistics.fmean(s.mean_tbt_s for s in samples)
    ttfts = sorted(s.ttft_s for s in samples)
    print(
        f"{len(samples)} requests ({args.prompt} in / {args.output} out), {args.clients} clients, "
        f"time scale {args.time_scale:g}: {wall:.1f} s wall, engine counted {n:.0f}"
    )
    print(f"{'':22}{'client':>12}{'engine':>12}{'gap':>12}   (modelled seconds)")
    print(
        f"{'mean TTFT':22}{client_ttft:12.4f}{engine_ttft:12.4f}{client_ttft - engine_ttft:12.4f}"
    )
    print(f"{'mean TBT':22}{client_tbt:12.5f}{engine_tbt:12.5f}{client_tbt - engine_tbt:12.5f}")
    print(f"{'client TTFT p99':22}{ttfts[int(0.99 * (len(ttfts) - 1))]:12.4f}")
    print(f"last step lag (wall s): {lag}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sloserve_engine.bench.pacing")
    p.add_argument("--clients", type=int, default=32, help="concurrent streaming clients")
    p.add_argument("--requests", type=int, default=256, help="requests in total")
    p.add_argument("--prompt", type=int, default=512, help="prompt tokens per request")
    p.add_argument("--output", type=int, default=128, help="output tokens per request")
    p.add_argument("--time-scale", type=float, default=1.0, help="as sloserve-engine's")
    p.add_argument("--profile", default="h200-llama-3.1-8b", help="cost-model profile")
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
