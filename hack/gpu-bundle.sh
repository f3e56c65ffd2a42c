#!/usr/bin/env bash
# Prepare vLLM 0.26.0 for the lent GPU machine, which has torch and ~180 packages but no
# package index: download what is missing as manylinux wheels for CPython 3.12, unpack them
# into one site folder, drop what a dense Llama never loads, compress, and split into parts
# small enough to carry (64 MiB per call, with the working tree).
#
#   bash hack/gpu-bundle.sh            # -> .gpu/parts/part.00 .. part.NN (4 parts of at most 44 MiB)
#
# Then carry the parts in back-to-back calls (the machine keeps files outside the tree only
# while it stays warm) and unpack on the last one; docs/benchmarks.md ("GPU proof") shows the
# exact calls. Inputs: ../shared/gpu/vllm-0.26.0-resolved-requirements.txt (the full
# resolution) and hack/gpu-present.txt (what the GPU image already has, from the device
# tool's KINDS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-.gpu}
REQS=${REQS:-../shared/gpu/vllm-0.26.0-resolved-requirements.txt}
PRESENT=hack/gpu-present.txt
PART_SIZE=${PART_SIZE:-44M}  # one carry holds 64 MiB including the tracked tree (~16 MB on 2026-12-03)
[[ -f $REQS ]] || { echo "gpu-bundle: $REQS not found (the shared folder beside the checkout)" >&2; exit 2; }
mkdir -p "$OUT"

# 1. What is missing: the resolution minus the image's packages minus what a dense
#    Llama on Hopper never imports (MLA/MoE kernels, the CUDA compiler, video codecs).
python3 - "$REQS" "$PRESENT" > "$OUT/missing.txt" <<'EOF'
import re, sys
norm = lambda n: re.sub(r"[-_.]+", "-", n.lower())
present = {norm(line.strip()) for line in open(sys.argv[2]) if line.strip() and not line.startswith("#")}
skip = {"tokenspeed-triton", "tokenspeed-mla", "nvidia-nvvm", "nvidia-cuda-nvcc", "tilelang",
        "z3-solver", "pynvvideocodec", "torchcodec"}
for line in open(sys.argv[1]):
    m = re.match(r"^([A-Za-z0-9_.\-\[\]]+)==(\S+)", line.strip())
    if not m:
        continue
    name = norm(m[1].split("[")[0])
    if name in present or name in skip or name.startswith("nvidia-cutlass-dsl"):
        continue
    print(f"{m[1]}=={m[2]}")
EOF
echo "gpu-bundle: $(wc -l < "$OUT/missing.txt") packages to carry" >&2

PLATFORMS=()
for tag in manylinux_2_35 manylinux_2_34 manylinux_2_31 manylinux_2_28 manylinux_2_27 \
           manylinux_2_24 manylinux_2_17 manylinux2014 manylinux1; do
  PLATFORMS+=(--platform "${tag}_x86_64")
done
PIP=(python3 -m pip)
# 2. Download (cached by pip; a second run is fast).
"${PIP[@]}" download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${PLATFORMS[@]}" --platform any -d "$OUT/wheels" -r "$OUT/missing.txt"
# 3. One site folder, without the kernels Hopper does not use.
rm -rf "$OUT/site"
"${PIP[@]}" install -q --no-deps --no-compile --no-index --target "$OUT/site" --python-version 3.12 \
  --implementation cp "${PLATFORMS[@]}" --platform any --only-binary=:all: "$OUT"/wheels/*.whl
rm -f "$OUT/site/vllm/vllm_flash_attn/_vllm_fa2_C.abi3.so"   # FlashAttention 2; Hopper uses FA3
find "$OUT/site" -path '*deep_gemm*' -name '*cpython-3[!1][!2]*' -delete
# 4. Compress and split.
tar -C "$OUT" -cf - site | xz -T2 -6 > "$OUT/bundle.tar.xz"
rm -rf "$OUT/parts" && mkdir -p "$OUT/parts"
split -b "$PART_SIZE" -d "$OUT/bundle.tar.xz" "$OUT/parts/part."
ls -l "$OUT/parts" >&2
echo "gpu-bundle: unpack on the GPU machine with: cat part.* | xz -d | tar -x -C /tmp  (then PYTHONPATH=/tmp/site)" >&2
