"""The bench's one declaration of its offered load: Poisson phases and seeded request bodies.

The load generator process sends exactly this plan and the bench counts against it; the same
trace, workload and seed always give the same requests, so a saved episode can be replayed.
All times are modelled seconds.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Phase:
    """Constant Poisson rate ``rps`` (requests per modelled second) until ``until_s``."""

    until_s: float
    rps: float


@dataclass(frozen=True)
class Workload:
    prompt_tokens: tuple[int, int] = (256, 1024)
    output_tokens: tuple[int, int] = (64, 256)
    model: str = "m"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Workload:
        """From its ``dataclasses.asdict`` as JSON (lists back to tuples)."""
        low, high = data["prompt_tokens"]
        out_low, out_high = data["output_tokens"]
        return cls((int(low), int(high)), (int(out_low), int(out_high)), str(data["model"]))


def rate_at(trace: Sequence[Phase], t: float) -> float:
    for phase in trace:
        if t < phase.until_s:
            return phase.rps
    return 0.0


def arrivals(
    trace: Sequence[Phase], workload: Workload, seed: int
) -> Iterator[tuple[float, dict[str, Any]]]:
    """The seeded open-loop load: (modelled send time, completions body), Poisson per phase."""
    rng = random.Random(seed)
    end = trace[-1].until_s
    t = 0.0
    while True:
        rps = rate_at(trace, t)
        if rps <= 0:  # an idle phase sends nothing: skip to where the next one starts
            t = next((p.until_s for p in trace if p.until_s > t), end)
        else:
            t += rng.expovariate(rps)
        if t >= end:
            return
        if rps <= 0:
            continue
        yield (
            t,
            {
                "model": workload.model,
                "prompt": [
                    rng.randrange(100, 30000) for _ in range(rng.randint(*workload.prompt_tokens))
                ],
                "max_tokens": rng.randint(*workload.output_tokens),
            },
        )
