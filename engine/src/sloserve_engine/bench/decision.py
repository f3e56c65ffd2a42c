"""Per-step decision cost of each policy: ``python -m sloserve_engine.bench.decision``.

Builds a synthetic but realistic engine state (``--running`` requests mid-decode
with a few chunked prefills, ``--waiting`` queued, KV nearly full so that the
gate, the victim order and backfill all do work) and times ``plan()`` plus one
``can_admit()`` per policy. Output: one line per policy, microseconds per call.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Sequence

from ..contract.knobs import POLICY_NAMES
from ..contract.slo import SLO
from ..policy import make_policy
from ..policy.views import EngineSnapshot, RequestView


def synthetic_snapshot(running: int, waiting: int, seed: int = 0) -> EngineSnapshot:
    """A KV-pressured state: ``running`` requests (every 8th in prefill), ``waiting`` queued."""
    rng = random.Random(seed)
    block = 16
    slo = SLO()
    views_running: list[RequestView] = []
    held = 0
    for i in range(running):
        prompt = rng.randint(100, 3000)
        prefilling = i % 8 == 7
        out = 0 if prefilling else rng.randint(1, 400)
        computed = prompt // 2 if prefilling else prompt + out - 1
        blocks = -(-max(computed, 1) // block)
        held += blocks
        bound = rng.randint(200, 900)
        views_running.append(
            RequestView(
                f"r{i}",
                rng.uniform(0, 50),
                prompt,
                out,
                computed,
                blocks,
                slo,
                bound // 2,
                bound,
                8192 - prompt,
            )
        )
    views_waiting = [
        RequestView(f"w{i}", 50 + i * 0.05, rng.randint(100, 3000), 0, 0, 0, slo, 256, 700, 6000)
        for i in range(waiting)
    ]
    total = max(held + held // 20, 6092)
    return EngineSnapshot(
        now=60.0,
        block_size=block,
        total_blocks=total,
        free_blocks=total - held,
        max_num_batched_tokens=8192,
        max_num_seqs=max(256, running + 1),
        running=tuple(views_running),
        waiting=tuple(views_waiting),
    )


def time_policy(name: str, snapshot: EngineSnapshot, repeats: int) -> tuple[float, float]:
    """(µs per plan(), µs per can_admit()) for the named policy."""
    policy = make_policy(name)
    start = time.perf_counter()
    for _ in range(repeats):
        policy.plan(snapshot)
    plan_us = (time.perf_counter() - start) / repeats * 1e6
    candidate = snapshot.waiting[0] if snapshot.waiting else snapshot.running[0]
    start = time.perf_counter()
    for _ in range(repeats):
        policy.can_admit(
            snapshot.free_blocks,
            snapshot.total_blocks,
            snapshot.block_size,
            snapshot.running,
            candidate,
            snapshot.now,
        )
    gate_us = (time.perf_counter() - start) / repeats * 1e6
    return plan_us, gate_us


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--running", type=int, default=256)
    parser.add_argument("--waiting", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=300)
    args = parser.parse_args(argv)
    snapshot = synthetic_snapshot(args.running, args.waiting)
    print(f"running={args.running} waiting={args.waiting} repeats={args.repeats}")
    for name in POLICY_NAMES:
        plan_us, gate_us = time_policy(name, snapshot, args.repeats)
        print(f"{name:9s} plan {plan_us:8.1f} us   can_admit {gate_us:7.1f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
