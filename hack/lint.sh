#!/usr/bin/env bash
# Static gates: formatting, lint, types, import contracts.
set -euo pipefail
cd "$(dirname "$0")/.."
V=${VENV:-.venv}/bin
"$V/ruff" format --check engine operator tests
"$V/ruff" check engine operator tests
"$V/mypy"
"$V/lint-imports"
