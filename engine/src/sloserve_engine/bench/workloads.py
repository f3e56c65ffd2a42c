"""The workload options ``bench sim`` and ``bench gpu`` share, so a simulated and a measured
run of the same command line replay exactly the same requests; ``bench cluster`` shares the
SLO mix (:func:`add_slo_mix_arguments`, :func:`slo_mix`).

``--segments 0,1,2,3`` replays disjoint slices of the trace (held-out data: the
policy constants were chosen on segment 0 of azure-conv), ``--seeds`` repeats
randomised workloads, ``--workload mixed-slo --mix 0.5`` gives every request one
of two SLO classes, and ``--arrivals poisson|gamma --cv 3`` replaces the trace's
timestamps.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from ..sim.workload import TRACES, Arrival, WorkloadSpec

WORKLOADS = ("single-slo", "mixed-slo")
DEFAULT_MIX = 0.5
"""``--mix`` when ``--workload mixed-slo`` is given without it."""


def _ints(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from exc
    if not values or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError("expected integers >= 0")
    return values


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 1.0:  # also rejects nan
        raise argparse.ArgumentTypeError(f"expected a share between 0 and 1, got {text!r}")
    return value


def add_slo_mix_arguments(p: argparse.ArgumentParser) -> None:
    """``--workload single-slo|mixed-slo`` and ``--mix``: read them with :func:`slo_mix`."""
    p.add_argument("--workload", choices=WORKLOADS, default="single-slo")
    p.add_argument(
        "--mix",
        type=_share,
        default=None,
        help="mixed-slo: share of interactive requests (TTFT 250 ms, TBT 50 ms), "
        f"the rest batch (TTFT 5 s, TBT 200 ms); default {DEFAULT_MIX:g}",
    )


def slo_mix(args: argparse.Namespace) -> float | None:
    """The :class:`WorkloadSpec` ``slo_mix`` the options ask for (``None``: one SLO for all);
    raises ``ValueError`` for ``--mix`` without ``--workload mixed-slo``."""
    if args.workload != "mixed-slo":
        if args.mix is not None:
            raise ValueError("--mix needs --workload mixed-slo")
        return None
    return DEFAULT_MIX if args.mix is None else float(args.mix)


def add_workload_arguments(p: argparse.ArgumentParser) -> None:
    """Trace, slice, arrivals and SLO mix of the replayed requests."""
    p.add_argument("--trace", default="azure-conv", choices=sorted(TRACES))
    p.add_argument("--requests", type=int, default=1500, help="requests per segment")
    p.add_argument(
        "--segments",
        type=_ints,
        default=[0],
        help="disjoint slices of --requests requests each, e.g. 0,1,2,3 (default 0)",
    )
    p.add_argument(
        "--seeds",
        "--seed",
        dest="seeds",
        type=_ints,
        default=[0],
        help="seeds of the randomised parts, e.g. 0,1,2 (default 0)",
    )
    p.add_argument(
        "--arrivals",
        "--arrival",
        dest="arrival",
        choices=("auto", "trace", "poisson", "gamma"),
        default="auto",
        help="auto: the trace's timestamps for azure-*, poisson otherwise",
    )
    p.add_argument(
        "--cv",
        "--gamma-cv",
        dest="gamma_cv",
        type=float,
        default=3.0,
        help="coefficient of variation of gamma inter-arrival times (burstiness)",
    )
    add_slo_mix_arguments(p)


def workload_specs(args: argparse.Namespace, rate: float) -> list[WorkloadSpec]:
    """One spec per (segment, seed) at ``rate``; raises ``ValueError`` naming a bad option."""
    arrival: Arrival
    if args.arrival == "auto":
        arrival = "trace" if TRACES[args.trace][1] else "poisson"
    else:
        arrival = args.arrival
    base = WorkloadSpec(
        trace=args.trace,
        requests=args.requests,
        rate=rate,
        arrival=arrival,
        gamma_cv=args.gamma_cv,
        slo_mix=slo_mix(args),
    )
    return [replace(base, segment=g, seed=s) for g in args.segments for s in args.seeds]


def workload_name(spec: WorkloadSpec) -> str:
    """What was replayed, without rate, segment or seed: ``azure-conv``,
    ``sharegpt-gamma3``, ``azure-conv-mixed0.5``. Reports group runs by it."""
    name = spec.trace
    if spec.arrival == "gamma":
        name += f"-gamma{spec.gamma_cv:g}"
    elif spec.arrival == "poisson" and TRACES[spec.trace][1]:
        name += "-poisson"
    if spec.slo_mix is not None:
        name += f"-mixed{spec.slo_mix:g}"
    return name


def workload_record(spec: WorkloadSpec) -> dict[str, object]:
    """The fields a run row carries so a report can tell workloads and slices apart."""
    return {
        "workload": workload_name(spec),
        "trace": spec.trace,
        "arrival": spec.arrival,
        "gamma_cv": spec.gamma_cv,
        "segment": spec.segment,
        "seed": spec.seed,
        "slo_mix": spec.slo_mix,
    }
