"""The named policies as component combinations (see docs/algorithms.md for why each is so).

- ``ecoserve``: EconoServe: reserve KV for the predicted length (point estimate,
  no padding), lend unused reservations (KVCPipe), decodes before prefill,
  GT groups by predicted length, KV-holding/urgent/short-first ordering.
  Fixed token budget, recompute preemption.
- ``cacheopt``: CacheOPT: bound with confidence p adjusted by arrival rate,
  reservation + reuse (lending), global reserve with proactive extension,
  victim scoring, swap-vs-recompute. FCFS order, fixed budget.
- ``accelgen``: AccelGen: SLO-guaranteed dynamic chunking, SLO-class and
  deadline priority, Tetris multi-resource batching; no length prediction.
- ``sloserve``: our combination, measured best on the Azure conversation trace
  (docs/algorithms.md): vLLM's own admission above a small global reserve
  (``reservation_ratio``; no per-request reservation: KV is the bottleneck) so
  running streams rarely need a preemption, paused streams resumed before any
  new admission, then an SLO-slack deadline order with backfill, CacheOPT's
  victim score with swap-vs-recompute, SLO-guaranteed chunks that may spend
  banked TPOT time up to 1.5x the TBT target, decodes before prefill.
"""

from __future__ import annotations

from .batching import Batching
from .composed import PolicySpec, VictimRule
from .kvgate import Gate, GateConfig
from .ordering import AdmitRule, OrderingConfig
from .predictor import PredictorConfig, RateDirection

ECOSERVE = PolicySpec(
    name="ecoserve",
    predictor=PredictorConfig(rate_direction=RateDirection.OFF),
    fixed_confidence=0.5,
    gate=GateConfig(gate=Gate.LENDING),
    use_reserve=False,
    ordering=OrderingConfig(admit_rule=AdmitRule.ECOSERVE),
    batching=Batching.BACKFILL,
    decodes_first=True,
    victims=VictimRule.LENGTH_GROUPS,
    dynamic_chunking=False,
    auto_swap=False,
)

CACHEOPT = PolicySpec(
    name="cacheopt",
    predictor=PredictorConfig(rate_direction=RateDirection.DOWN),
    gate=GateConfig(gate=Gate.LENDING),
    use_reserve=True,
    ordering=OrderingConfig(admit_rule=AdmitRule.FCFS),
    batching=Batching.HEAD,
    decodes_first=False,
    victims=VictimRule.SCORE,
    dynamic_chunking=False,
    auto_swap=True,
)

ACCELGEN = PolicySpec(
    name="accelgen",
    predictor=None,
    gate=GateConfig(gate=Gate.WATERMARK),
    use_reserve=True,
    ordering=OrderingConfig(admit_rule=AdmitRule.CLASS),
    batching=Batching.TETRIS,
    decodes_first=True,
    victims=VictimRule.ADMISSION,
    dynamic_chunking=True,
    auto_swap=False,
)

SLOSERVE = PolicySpec(
    name="sloserve",
    predictor=PredictorConfig(rate_direction=RateDirection.DOWN),
    gate=GateConfig(gate=Gate.WATERMARK),
    use_reserve=True,
    ordering=OrderingConfig(
        admit_rule=AdmitRule.SLACK, hopeless_load_exponent=2.0, start_lead_steps=2.0
    ),
    batching=Batching.BACKFILL,
    decodes_first=True,
    victims=VictimRule.SCORE,
    dynamic_chunking=True,
    chunk_bank_cap=1.5,
    auto_swap=True,
)

SPECS = {spec.name: spec for spec in (ECOSERVE, CACHEOPT, ACCELGEN, SLOSERVE)}
"""Every named policy except ``vllm`` (which is :class:`~.vllm_fcfs.VllmFcfsPolicy`)."""
