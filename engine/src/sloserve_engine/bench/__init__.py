"""Benchmarks, cost-model fitting, simulator fidelity and GPU reports: tooling, not runtime.

Nothing in the serving path imports this package (an import-linter contract in
pyproject.toml says so), and its extra dependencies (rich, matplotlib) live in the
``[bench]`` extra. ``sloserve bench ...`` (:mod:`.cli`) is the entry point.
"""
