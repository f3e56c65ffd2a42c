"""The vLLM 0.26.0 adapter: sloserve policies inside vLLM's own scheduler.

Load it with ``vllm serve ... --scheduler-cls sloserve_engine.vllm.scheduler.SLOScheduler``.
This package is the only part of sloserve that imports vLLM, and only
:mod:`.scheduler`, :mod:`.cpu_driver` and :mod:`.drift` do; the other modules
(SLO parsing, knob polling, statistics) stay importable without it so the
engine server can reuse them.
"""
