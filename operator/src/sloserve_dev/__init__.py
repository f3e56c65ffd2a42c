"""Developer tooling for the operator: the local control plane, the demo and the autoscaler
benchmark harness. Not part of the runtime: :mod:`sloserve_operator` never imports it (an
import-linter contract in pyproject.toml says so).
"""
