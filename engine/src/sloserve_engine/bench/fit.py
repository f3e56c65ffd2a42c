"""Fit the step-time cost model to GPU step logs (``steps_*.csv``) and write the profile JSON.

``python -m sloserve_engine.bench.fit --steps-dir DIR`` (or
``sloserve bench fit``) reads every ``steps_*.csv``, fits

* the GPU step time ``t_update - t_sched`` linearly in prefill tokens, prefill
  context, prefill attention pairs (attention's quadratic term), decode count and
  decode context, by least squares on *absolute* error with coefficients >= 0.
  Absolute, not relative: the few long prefill steps set what the simulator is
  used for (stream stalls, TPOT in prefill bursts, backlog drain), and a relative
  fit let 30,000 decode steps pull them 3-10 % low. The logs carry sums per step,
  so the attention pairs are known exactly only for steps with at most one
  prefill request (:func:`attention_feature`); the step-time fit uses those;
* the synchronous CPU gap (next ``t_sched`` - ``t_update``) linearly in the
  number of scheduled requests, from the online replays only (gaps over 10 ms
  are the replay loop waiting for arrivals, not CPU work);

and writes ``data/costmodels/<profile>.json`` in the ``sloserve.costmodel/v1``
schema. With ``--async-steps`` (step logs of stock vLLM with asynchronous
scheduling) it also measures the ``"sim"`` section (see
:func:`async_hidden_step_s`); otherwise the existing value is kept.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..policy.costmodel import (
    DEFAULT_PCIE_BYTES_PER_S,
    LLAMA_3_1_8B_BF16_KV_BYTES_PER_TOKEN,
    SCHEMA,
    attention_pairs,
)
from ..sim.costmodel import DEFAULT_PROFILE, profile_path

FEATURES = ("prefill_tokens", "prefill_ctx_sum", "n_decode", "decode_ctx_sum")
"""Columns of a step log the fit reads (plus ``n_prefill_reqs`` for the attention feature)."""
COEFFICIENT_KEYS = (
    "c0_s",
    "prefill_token_s",
    "prefill_ctx_s",
    "decode_seq_s",
    "decode_ctx_s",
    "prefill_attn_s",
)
"""Fitted coefficients, in the column order of :func:`design_matrix`."""
IDLE_GAP_S = 0.010


@dataclass(frozen=True, slots=True)
class StepLog:
    """Columns of one or more ``steps_*.csv`` files as arrays."""

    features: np.ndarray  # (n, 5): FEATURES, then attention pairs (NaN where unknown)
    latency: np.ndarray  # (n,)
    n_reqs: np.ndarray  # (n,)
    gap: np.ndarray  # (n,) gap after the step; NaN for the last row
    online: np.ndarray  # (n,) bool: from an online replay (its gaps are CPU time)


def read_step_logs(paths: list[Path]) -> StepLog:
    feats: list[list[float]] = []
    lat: list[float] = []
    nreq: list[float] = []
    gap: list[float] = []
    online: list[bool] = []
    for path in paths:
        with path.open() as f:
            rows = list(csv.DictReader(f))
        if not rows:
            continue
        missing = {"t_sched", "t_update", "n_reqs", "n_prefill_reqs", *FEATURES} - set(rows[0])
        if missing:
            raise ValueError(f"{path}: missing columns {sorted(missing)}")
        is_online = path.stem.startswith("steps_on")
        for i, row in enumerate(rows):
            values = [float(row[k]) for k in FEATURES]
            feats.append([*values, attention_feature(row)])
            lat.append(float(row["t_update"]) - float(row["t_sched"]))
            nreq.append(float(row["n_reqs"]))
            nxt = rows[i + 1]["t_sched"] if i + 1 < len(rows) else None
            gap.append(float("nan") if nxt is None else float(nxt) - float(row["t_update"]))
            online.append(is_online)
    if not lat:
        raise ValueError("no step rows found")
    return StepLog(np.array(feats), np.array(lat), np.array(nreq), np.array(gap), np.array(online))


def nonneg_lstsq(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted least squares with coefficients >= 0 (drop negatives and refit)."""
    active = list(range(x.shape[1]))
    while True:
        coef, *_ = np.linalg.lstsq(x[:, active] * w[:, None], y * w, rcond=None)
        negative = [a for a, c in zip(active, coef, strict=True) if c < 0]
        if not negative:
            full = np.zeros(x.shape[1])
            full[active] = coef
            return full
        active = [a for a in active if a not in negative]


def attention_feature(row: dict[str, str]) -> float:
    """Attention pairs of a logged step, or NaN when the sums cannot tell them.

    Logs since issue 14 have the column ``prefill_attn_sum``. In older ones, with one
    prefill request its chunk is ``prefill_tokens`` and its prior context
    ``prefill_ctx_sum - prefill_tokens`` (the log counts context after the chunk);
    with several, how the sums split between them is unknown.
    """
    if row.get("prefill_attn_sum"):
        return float(row["prefill_attn_sum"])
    n_prefill = int(row["n_prefill_reqs"])
    if n_prefill == 0:
        return 0.0
    if n_prefill > 1:
        return float("nan")
    chunk = int(row["prefill_tokens"])
    return float(attention_pairs(chunk, int(row["prefill_ctx_sum"]) - chunk))


def design_matrix(features: np.ndarray) -> np.ndarray:
    """Columns in :data:`COEFFICIENT_KEYS` order (a constant for ``c0_s``)."""
    pf, pctx, nd, dctx, attn = features.T
    return np.column_stack([np.ones(len(features)), pf, pctx, nd, dctx, attn])


def fit_profile(log: StepLog, gpu: str, model: str) -> dict[str, Any]:
    """The profile document (without the ``sim`` section) and fit statistics."""
    known = np.isfinite(log.features[:, 4])
    x = design_matrix(log.features[known])
    coef = nonneg_lstsq(x, log.latency[known], np.ones(int(known.sum())))
    rel = np.abs(x @ coef - log.latency[known]) / log.latency[known]
    sel = log.online & np.isfinite(log.gap) & (log.gap < IDLE_GAP_S) & (log.gap > 0)
    gx = np.column_stack([np.ones(int(sel.sum())), log.n_reqs[sel]])
    gcoef, *_ = np.linalg.lstsq(gx, log.gap[sel], rcond=None)
    gcoef = np.maximum(gcoef, 0.0)
    grel = np.abs(gx @ gcoef - log.gap[sel]) / log.gap[sel]
    return {
        "schema": SCHEMA,
        "gpu": gpu,
        "model": model,
        "coefficients": {k: float(v) for k, v in zip(COEFFICIENT_KEYS, coef, strict=True)},
        "cpu": {"per_step_s": float(gcoef[0]), "per_request_s": float(gcoef[1])},
        # Swap path: not in the step logs; Llama-3.1-8B bf16 KV size and PCIe Gen5 x16.
        "kv": {
            "bytes_per_token": LLAMA_3_1_8B_BF16_KV_BYTES_PER_TOKEN,
            "d2h_bytes_per_s": DEFAULT_PCIE_BYTES_PER_S,
            "h2d_bytes_per_s": DEFAULT_PCIE_BYTES_PER_S,
        },
        "fit": {
            "n_steps": int(known.sum()),
            "n_steps_excluded": int((~known).sum()),
            "median_rel_error": round(float(np.median(rel)), 4),
            "p90_rel_error": round(float(np.quantile(rel, 0.9)), 4),
            "n_gaps": int(sel.sum()),
            "gap_median_rel_error": round(float(np.median(grel)), 4),
        },
    }


def async_hidden_step_s(doc: dict[str, Any], async_logs: list[Path]) -> float:
    """Host time per step that asynchronous scheduling overlaps, measured directly.

    ``async_logs`` are step logs of stock vLLM with asynchronous scheduling (same
    columns; ``t_update`` = when the batch's output is processed). While the batch
    queue is busy (the next batch was scheduled before this output), consecutive
    ``t_update`` are one GPU step apart. The overlap is the median, over those
    steps, of the synchronous step model's prediction minus that interval.
    """
    c = doc["coefficients"]
    coef = np.array([c.get(k, 0.0) for k in COEFFICIENT_KEYS])
    hidden: list[np.ndarray] = []
    for path in async_logs:
        with gzip.open(path, "rt") if path.suffix == ".gz" else path.open() as f:
            rows = list(csv.DictReader(f))
        t_sched = np.array([float(r["t_sched"]) for r in rows])
        t_update = np.array([float(r["t_update"]) for r in rows])
        feats = np.array([[*(float(r[k]) for k in FEATURES), attention_feature(r)] for r in rows])
        x = design_matrix(feats)
        interval = np.diff(t_update)
        busy = (t_sched[1:] < t_update[:-1]) & (interval > 0) & (interval < 0.5)
        busy &= np.isfinite(x[1:, -1])
        hidden.append((x[1:] @ coef - interval)[busy])
    if not hidden or not sum(len(h) for h in hidden):
        raise ValueError("no back-to-back asynchronous steps in the given logs")
    return round(float(np.median(np.concatenate(hidden))), 6)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--steps-dir",
        type=Path,
        required=True,
        help="directory with steps_*.csv GPU step logs (what `sloserve bench gpu` writes)",
    )
    parser.add_argument("--profile", default=DEFAULT_PROFILE, help="profile name (file stem)")
    parser.add_argument("--gpu", default="h200")
    parser.add_argument("--model", default="llama-3.1-8b")
    parser.add_argument("--out", type=Path, default=None, help="output JSON (default: packaged)")
    parser.add_argument(
        "--async-steps",
        type=Path,
        nargs="+",
        default=None,
        help="step logs (.csv or .csv.gz) of stock vLLM with async scheduling",
    )


def run(args: argparse.Namespace) -> int:
    paths = sorted(Path(args.steps_dir).glob("steps_*.csv"))
    if not paths:
        raise SystemExit(f"no steps_*.csv in {args.steps_dir}")
    out: Path = args.out or profile_path(args.profile)
    doc = fit_profile(read_step_logs(paths), args.gpu, args.model)
    doc["fit"]["source"] = ", ".join(p.name for p in paths)
    if args.async_steps:
        doc["sim"] = {"async_hidden_step_s": async_hidden_step_s(doc, args.async_steps)}
        doc["fit"]["async_calibration"] = ", ".join(p.name for p in args.async_steps)
    elif out.exists():
        previous = json.loads(out.read_text())
        if isinstance(previous, dict) and "sim" in previous:
            doc["sim"] = previous["sim"]
            calibration = previous.get("fit", {}).get("async_calibration")
            if calibration:
                doc["fit"]["async_calibration"] = calibration
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {out}: {json.dumps(doc['coefficients'])} cpu {json.dumps(doc['cpu'])}")
    print(f"fit: {json.dumps(doc['fit'])}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sloserve_engine.bench.fit", description=__doc__
    )
    add_arguments(parser)
    return run(parser.parse_args())


if __name__ == "__main__":
    raise SystemExit(main())
