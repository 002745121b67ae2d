#!/usr/bin/env bash
# Where does a CUDA call's host time go? On a GPU machine: builds the CLI, the Python package and
# kiln_host_bench, exports the benchmark models (bench/harness/models.py) at batch 1, builds fp32
# and fp16 engines, and runs kiln_host_bench on each with KILN_CUDA_HOST_PROFILE=1 (host time per
# call under each cuda_graph_strategy, split per op and phase). Output: $OUT/host_profile.txt.
#   tools/gpu/host_profile.sh [MODEL ...]      (default: mlp encoder_l4_d256 resnet18)
set -uo pipefail
OUT=${OUT:-$PWD/gpu-out}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
B=${KILN_BUILD:-$ROOT/build-gpu}
mkdir -p "$OUT"
LOG="$OUT/host_profile.txt"
models=("$@")
[ ${#models[@]} -eq 0 ] && models=(mlp encoder_l4_d256 resnet18)
export LD_LIBRARY_PATH="/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
if ! { cmake -S "$ROOT" -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release -DKILN_BUILD_TESTS=OFF &&
       ninja -C "$B" -j"$(nproc)" kiln_python kiln_cli kiln_host_bench; } > "$OUT/host_profile_build.log" 2>&1; then
  tail -30 "$OUT/host_profile_build.log"
  exit 1
fi
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$LOG"
export PYTHONPATH="$B/python:$ROOT/bench${PYTHONPATH:+:$PYTHONPATH}"
WORK=$(mktemp -d)
for m in "${models[@]}"; do
  python3 - "$m" "$WORK/$m.onnx" <<'PY' || exit 1
import sys
import torch  # before kiln: kiln's protobuf must not load first (free(): invalid pointer)
from harness import models as M
import kiln
spec = M.MODELS[sys.argv[1]]
open(sys.argv[2], "wb").write(kiln.export_onnx(M.build(spec), (M.sample(spec, 1),)))
PY
  for p in fp32 fp16; do
    "$B/bin/kiln" build "$WORK/$m.onnx" -o "$WORK/$m.$p.kiln" --precision "$p" > /dev/null || exit 1
    echo "== $m $p: $("$B/bin/kiln" inspect "$WORK/$m.$p.kiln" --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(sum(d["op_histogram"].values()), "nodes", d["op_histogram"])')" | tee -a "$LOG"
    KILN_CUDA_HOST_PROFILE=1 KILN_RUNTIME_CACHE=none "$B/bin/kiln_host_bench" "$WORK/$m.$p.kiln" --iterations 1000 2>&1 | tee -a "$LOG"
  done
done
