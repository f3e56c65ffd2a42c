"""The vLLM 0.26.0 adapter: sloserve policies inside vLLM's own scheduler.

Load it with ``vllm serve ... --scheduler-cls sloserve_engine.vllm.scheduler.SLOScheduler``.
This package is the only runtime part of sloserve that imports vLLM, and only
:mod:`.scheduler` and :mod:`.drift` do (the CPU test driver and the GPU benchmark live in
:mod:`sloserve_engine.bench`); the other modules
(SLO parsing, knob polling, statistics) stay importable without it so the
engine server can reuse them.
"""
