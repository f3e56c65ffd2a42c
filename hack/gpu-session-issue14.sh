#!/usr/bin/env bash
# One GPU session for issue 14 (honest evaluation), run on the lent H200 after the bundle is
# unpacked to /tmp/site (docs/benchmarks.md, "GPU proof"). Runs in priority order so that a
# session cut short by the device budget leaves the most important runs done:
#   1. azure-conv (in-sample), segment 0 (requests 0-999), 14/16/18 req/s: stock defaults,
#      tuned stock (chunked-prefill budget 4096, picked in the simulator), sloserve defaults;
#   2. the mixed-SLO workload (half interactive 250 ms/50 ms, half batch 5 s/200 ms) at 14 req/s;
#   3. sharegpt lengths with Poisson arrivals, 500 requests at 5 req/s (out of sample);
#   4. azure-conv segment 1 (requests 1000-1999) at 16 req/s, the knee.
# Usage: bash hack/gpu-session-issue14.sh OUT_DIR   (progress in OUT_DIR/session.log)
set -uo pipefail
cd "$(dirname "$0")/.."
O=${1:?output dir}
mkdir -p "$O"
export PYTHONPATH=/tmp/site:$PWD/engine/src:$PWD/operator/src PYTHONUNBUFFERED=1
export HF_HUB_OFFLINE=1 VLLM_NO_USAGE_STATS=1
G=(python3 -m sloserve_engine.bench.gpu --out "$O" --drain-s 30)
TUNED=(--schedulers stock --tag tuned --max-num-batched-tokens 4096)
step() { echo "$(date -u +%FT%TZ) start: $*" >> "$O/session.log"; "$@" >> "$O/session.log" 2>&1; echo "$(date -u +%FT%TZ) done rc=$?: $*" >> "$O/session.log"; }
CONV=(--trace azure-conv --requests 1000)
step "${G[@]}" "${CONV[@]}" --segments 0 --rates 14,16,18 --schedulers stock
step "${G[@]}" "${CONV[@]}" --segments 0 --rates 14,16,18 "${TUNED[@]}"
step "${G[@]}" "${CONV[@]}" --segments 0 --rates 14,16,18 --schedulers sloserve
MIXED=(--trace azure-conv --requests 1000 --segments 0 --workload mixed-slo --mix 0.5 --rates 14)
step "${G[@]}" "${MIXED[@]}" --schedulers stock
step "${G[@]}" "${MIXED[@]}" --schedulers sloserve
SHARE=(--trace sharegpt --arrivals poisson --requests 500 --rates 5)
step "${G[@]}" "${SHARE[@]}" --schedulers stock
step "${G[@]}" "${SHARE[@]}" "${TUNED[@]}"
step "${G[@]}" "${SHARE[@]}" --schedulers sloserve
SEG1=(--trace azure-conv --requests 1000 --segments 1 --rates 16)
step "${G[@]}" "${SEG1[@]}" --schedulers stock
step "${G[@]}" "${SEG1[@]}" "${TUNED[@]}"
step "${G[@]}" "${SEG1[@]}" --schedulers sloserve
echo "$(date -u +%FT%TZ) session complete" >> "$O/session.log"
