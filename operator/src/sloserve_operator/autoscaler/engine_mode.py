"""What really serves a service, from the engines' own word, against what the spec asks for.

Each engine exports ``sloserve_engine_info{mode}`` (``simulated`` or ``vllm``). The spec's
``engine.simulated`` is only what the operator rendered: something between the pod spec and
the process can change it (the dev cluster's process kubelet adds ``--simulated``, there is no
GPU), so ``status.engineMode`` reports what the pods say, never the spec.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from sloserve_engine.contract.metrics import ENGINE_INFO, ENGINE_MODES

from ..api.v1alpha1 import EngineModeObserved


def observed_mode(modes: Iterable[str | None]) -> EngineModeObserved | None:
    """The mode of the pods that answered a scrape; None when none answered (scaled to zero,
    all scrapes failed): the last observation stands."""
    seen = {m if m in ENGINE_MODES else None for m in modes}
    if not seen:
        return None
    if len(seen) > 1:
        return "mixed"
    only = seen.pop()
    if only == "simulated":
        return "simulated"
    return "vllm" if only == "vllm" else "unknown"


def expected_mode(spec_simulated: bool) -> EngineModeObserved:
    return "simulated" if spec_simulated else "vllm"


def mismatch(spec_simulated: bool, modes: Iterable[str | None]) -> str | None:
    """Why the engines do not run as the spec says, or None when they do (or nobody says)."""
    modes = list(modes)
    observed = observed_mode(modes)
    if observed in (None, "unknown", expected_mode(spec_simulated)):
        return None
    counts = Counter(m if m in ENGINE_MODES else "unknown" for m in modes)
    said = ", ".join(f"{n} {mode}" for mode, n in sorted(counts.items()))
    return (
        f"engines run {observed} although spec.engine.simulated is "
        f"{str(spec_simulated).lower()} ({said} of {len(modes)} ready engine pod(s), by "
        f"{ENGINE_INFO}): their command was changed outside the operator. Expected on the dev "
        "cluster (sloserve testenv up), whose process kubelet runs every engine with "
        "--simulated because it has no GPU or vLLM"
    )
