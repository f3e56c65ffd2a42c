#!/usr/bin/env bash
# One GPU session for issue 17 (placement across two real vLLM replicas), run on the lent
# machine after the bundle is unpacked to /tmp/site (docs/benchmarks.md, "GPU proof").
# Two real-mode `sloserve-engine` processes (vLLM 0.26.0, SLOScheduler, Llama-3.1-8B dummy
# weights, 97,488 KV tokens each), then `sloserve bench router --engine-urls ...`: two routers
# in front, the five arms (random, least-kv, p2c, sloserve+shield, sloserve+admission) at
# each rate, then the out-of-sample trace. Progress in OUT/session.log.
#
# Usage: bash hack/gpu-session-issue17.sh OUT [--kind x1|x2] [--detach]
#   --kind x1 (default): both engines on GPU 0 (gpu-memory-utilization 0.4 each); the output
#            is labelled "two engines on one H200: placement correctness and ranking, not capacity".
#   --kind x2: engine 0 on GPU 0, engine 1 on GPU 1 (the machine kind nvidia-h200-x2).
#   --detach: run in a new process session and return at once (a device command may last
#            only 10 minutes; the session needs ~25): poll OUT/session.log, OUT/DONE marks the end.
# Overrides (environment): RATES (28,32,36), REQUESTS (500), WARMUP (100), OOS (azure-code@5),
#   OOS_REQUESTS (250), GPU_UTIL (0.4 for x1, 0.9 for x2), KV_TOKENS (97488).
set -uo pipefail

# ---- pure helpers (tests/engine/bench/test_gpu_session_issue17.py sources this file)

# gpu_of KIND INDEX: the CUDA device engine INDEX runs on.
gpu_of() { if [[ $1 == x2 ]]; then echo "$2"; else echo 0; fi; }

# gpu_util_of KIND: each engine's share of its GPU's memory (both must fit on one in x1).
gpu_util_of() { if [[ $1 == x2 ]]; then echo 0.9; else echo 0.4; fi; }

# label_of KIND: what the numbers may be used for.
label_of() {
  if [[ $1 == x2 ]]; then echo "two engines on two H200s (nvidia-h200-x2)"
  else echo "two engines on one H200: placement correctness and ranking, not capacity"; fi
}

# engine_cmd PORT MODEL_DIR TOKEN_FILE GPU_UTIL KV_TOKENS VLLM: one real-mode engine's argv.
engine_cmd() {
  echo python3 -m sloserve_engine.server.cli --host 127.0.0.1 --port "$1" \
    --served-model-name sim --model "$2" --admin-token-file "$3" --kv-tokens "$5" \
    --vllm-executable "$6" --log-level warning -- \
    --load-format dummy --skip-tokenizer-init --dtype bfloat16 --max-model-len 8192 \
    --max-num-seqs 256 --max-num-batched-tokens 8192 --no-enable-prefix-caching \
    --gpu-memory-utilization "$4" --seed 0
}

# ---- the session

main() {
  local O=${1:?output dir} kind=x1 detach=0
  shift
  while (($#)); do
    case $1 in
      --kind) kind=${2:?x1 or x2}; shift 2 ;;
      --detach) detach=1; shift ;;
      *) echo "unknown argument $1" >&2; return 2 ;;
    esac
  done
  [[ $kind == x1 || $kind == x2 ]] || { echo "--kind must be x1 or x2" >&2; return 2; }
  mkdir -p "$O"
  if ((detach)); then
    setsid bash "$0" "$O" --kind "$kind" > "$O/session.out" 2>&1 < /dev/null &
    echo "detached (pid $!): tail $O/session.log; $O/DONE marks the end"
    return 0
  fi
  cd "$(dirname "$0")/.." || return 1
  export PYTHONPATH=/tmp/site:$PWD/engine/src:$PWD/operator/src PYTHONUNBUFFERED=1
  export HF_HUB_OFFLINE=1 VLLM_NO_USAGE_STATS=1 SLOSERVE_POLICY=sloserve
  log() { echo "$(date -u +%FT%TZ) $*" >> "$O/session.log"; }
  local util=${GPU_UTIL:-$(gpu_util_of "$kind")} kv=${KV_TOKENS:-97488}
  local token="$O/admin-token" vllm="$O/vllm" model="$O/model" pids=()
  echo "issue17-admin-token" > "$token"
  printf '#!/bin/sh\nexec python3 -c "import sys; sys.argv[0] = \\"vllm\\"; from vllm.entrypoints.cli.main import main; main()" "$@"\n' > "$vllm"
  chmod +x "$vllm"
  python3 -c "from pathlib import Path; from sloserve_engine.bench.gpu import write_model_dir; write_model_dir(Path('$model'))"
  nvidia-smi > "$O/nvidia-smi.txt" 2>&1
  stop_engines() { for p in "${pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null; done; }
  trap stop_engines EXIT
  local i port
  # One after the other: vLLM sizes its memory from what is free when it starts.
  for i in 0 1; do
    port=$((8001 + i))
    log "start engine $i on GPU $(gpu_of "$kind" "$i") port $port util $util kv $kv"
    # shellcheck disable=SC2046
    CUDA_VISIBLE_DEVICES=$(gpu_of "$kind" "$i") SLOSERVE_STEP_LOG="$O/engine$i-steps.jsonl" \
      setsid $(engine_cmd "$port" "$model" "$token" "$util" "$kv" "$vllm") \
      > "$O/engine$i.log" 2>&1 < /dev/null &
    pids+=($!)
    local t=0
    until curl -sf "http://127.0.0.1:$port/sloserve/health" > /dev/null; do
      sleep 5; t=$((t + 5))
      if ! kill -0 "${pids[$i]}" 2>/dev/null || ((t > 900)); then
        log "engine $i failed to start (see engine$i.log)"; tail -50 "$O/engine$i.log" >> "$O/session.log"
        touch "$O/DONE"; return 1
      fi
    done
    log "engine $i healthy after ${t} s"
  done
  # One token-id completion straight to each engine: fail loudly before the sweep if the
  # real path (skip-tokenizer-init, token-id prompt, ignore_eos) does not serve.
  for i in 0 1; do
    curl -sf "http://127.0.0.1:$((8001 + i))/v1/completions" -H 'Content-Type: application/json' \
      -d '{"model":"sim","prompt":[1,2,3],"max_tokens":4,"ignore_eos":true}' \
      >> "$O/smoke.txt" 2>&1 || { log "engine $i smoke completion failed"; touch "$O/DONE"; return 1; }
    echo >> "$O/smoke.txt"
  done
  log "bench start"
  python3 -m sloserve_operator.cli bench router \
    --engine-urls http://127.0.0.1:8001,http://127.0.0.1:8002 --admin-token-file "$token" \
    --routers 2 --trace azure-conv --rates "${RATES:-28,32,36}" --requests "${REQUESTS:-500}" \
    --warmup "${WARMUP:-100}" --oos "${OOS:-azure-code@5}" --oos-requests "${OOS_REQUESTS:-250}" \
    --latency-samples 200 \
    --out "$O/bench" --label "$(label_of "$kind")" >> "$O/session.log" 2>&1
  log "bench done rc=$?"
  stop_engines
  trap - EXIT
  sleep 10
  log "session complete"
  touch "$O/DONE"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then main "$@"; fi
