"""Evaluate the output-length predictor on a trace, online, as an engine would see it.

Requests arrive in trace order; each is predicted at arrival and learned from
when it finishes (arrival + output_tokens x ``--token-s``, a stand-in for the
real finish time). Reports, per configuration: mean absolute error of the point
prediction, coverage (share of requests whose output fits the bound) and the
mean bound, i.e. how many tokens a reservation costs.

    .venv/bin/python docs/examples/predictor_eval.py --confidence 0.9
"""

from __future__ import annotations

import argparse
import heapq
from dataclasses import replace

from sloserve_engine.contract.slo import SLO
from sloserve_engine.policy.predictor import BoundMethod, LengthPredictor, PredictorConfig
from sloserve_engine.policy.views import FinishedInfo
from sloserve_engine.sim.workload import WorkloadSpec, build_workload


def evaluate(config: PredictorConfig, confidence: float, rate: float, token_s: float) -> str:
    requests = build_workload(WorkloadSpec(rate=rate))
    predictor = LengthPredictor(config)
    slo = SLO()
    pending: list[tuple[float, int, int, int]] = []  # (finish time, k, prompt, output)
    abs_err = covered = bound_sum = 0
    for k, r in enumerate(requests):
        while pending and pending[0][0] <= r.arrival:
            t, _, prompt, output = heapq.heappop(pending)
            predictor.observe(FinishedInfo("x", prompt, output, slo, 0, t))
        pred = predictor.predict(slo, r.prompt_tokens, 8192 - r.prompt_tokens, confidence)
        abs_err += abs(pred.predicted_output - r.output_tokens)
        covered += r.output_tokens <= pred.output_bound
        bound_sum += pred.output_bound
        finish = r.arrival + r.output_tokens * token_s
        heapq.heappush(pending, (finish, k, r.prompt_tokens, r.output_tokens))
    n = len(requests)
    return f"MAE {abs_err / n:6.1f}  coverage {covered / n:6.3f}  mean bound {bound_sum / n:7.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--confidence", type=float, default=0.9)
    parser.add_argument("--rate", type=float, default=16.0)
    parser.add_argument("--token-s", type=float, default=0.02)
    args = parser.parse_args()
    base = PredictorConfig()
    variants = {
        "quantile, prompt buckets": base,
        "quantile, no buckets": replace(base, prompt_bucket_edges=()),
        "hoeffding, prompt buckets": replace(base, bound_method=BoundMethod.HOEFFDING),
        "hoeffding, no buckets": replace(
            base, bound_method=BoundMethod.HOEFFDING, prompt_bucket_edges=()
        ),
    }
    print(f"p = {args.confidence}, rate {args.rate} req/s, azure-conv (1,500 requests)")
    for name, config in variants.items():
        print(f"{name:27s} {evaluate(config, args.confidence, args.rate, args.token_s)}")


if __name__ == "__main__":
    main()
