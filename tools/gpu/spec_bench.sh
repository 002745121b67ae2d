#!/usr/bin/env bash
# Issue #6 on a GPU machine, in one go: build, the specialisation tests, models and conformance
# with specialised kernels (eager), then the benchmarks (cold vs warm start in fresh processes,
# dynamic shapes per strategy) and `kiln cache warm` throughput. Logs go to $OUT.
#   tools/gpu/spec_bench.sh TESTDATA_DIR_WITH_ARCHIVES
set -uo pipefail
OUT=${OUT:-$PWD/gpu-out}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TD=$1
mkdir -p "$OUT" /tmp/td
for a in "$TD"/models.tar.gz "$TD"/onnx-conformance.tar.gz; do tar xzf "$a" -C /tmp/td; done
export KILN_TESTDATA=/tmp/td LD_LIBRARY_PATH="/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/machine.txt"
B="$ROOT/build-gpu"
mkdir -p "$B/testdata"
cmake -S "$ROOT" -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release -DKILN_BUILD_PYTHON=OFF -DKILN_TESTDATA=/tmp/td \
  > "$OUT/configure.log" 2>&1 || { tail -20 "$OUT/configure.log"; exit 1; }
ninja -C "$B" -j"$(nproc)" cuda_gpu_test kiln_cli > "$OUT/build.log" 2>&1 || { grep -A5 error "$OUT/build.log" | head -40; exit 1; }
T="$B/bin/cuda_gpu_test"
"$T" --gtest_filter='SpecializeGpuTest.*' > "$OUT/tests.log" 2>&1
grep -E "^\[ +(OK|FAILED|PASSED) |first call at|Failure|Expected|Which|rror" "$OUT/tests.log" | head -40
{
  for m in encoder_L4_d256 mobilenet_v3_small; do
    rm -f /tmp/bench.kcache
    for pass in cold warm; do
      KILN_BENCH_MODEL=$m KILN_RUNTIME_CACHE=/tmp/bench.kcache "$T" --gtest_filter='SpecializeBench.FirstInference' \
        | grep "first inference" | sed "s/^/$pass /"
    done
  done
  for s in lazy eager none; do
    KILN_BENCH_STRATEGY=$s KILN_RUNTIME_CACHE=none "$T" --gtest_filter='SpecializeBench.DynamicShapes' \
      | sed -n '/dynamic shapes/,/counters/p'
  done
  K="$B/bin/kiln"
  "$K" build /tmp/td/models/encoder_L4_d256/model.onnx -o /tmp/enc.kiln --shape ids:1x1:2x77:4x320 > /dev/null
  "$K" build /tmp/td/models/mobilenet_v3_small/model.onnx -o /tmp/mob.kiln --shape x:2x3x224x224:2x3x224x224:2x3x224x224 > /dev/null
  echo "== kiln cache warm ($(nproc) cores)"
  "$K" cache warm /tmp/enc.kiln /tmp/mob.kiln --arch sm_90 --arch sm_100 --cache /tmp/warm.kcache --no-progress
  "$K" cache verify /tmp/warm.kcache
  echo "== kiln run --json backend counters"
  "$K" run /tmp/enc.kiln --backend cuda --data /tmp/td/models/encoder_L4_d256/test_data_set_0 --iterations 5 --json \
    | python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["status"], j.get("backend_counters"))'
} > "$OUT/bench.log" 2>&1
cat "$OUT/bench.log"
# Specialised kernels against the references: the models and the conformance suite under eager.
KILN_KERNEL_SPECIALIZATION=eager KILN_RUNTIME_CACHE=/tmp/eager.kcache timeout "${CONFORMANCE_TIMEOUT:-100}" "$T" \
  --gtest_filter='CudaModelTest.Every*:CudaProgramTest.*:CudaConformanceTest.*' > "$OUT/eager_models.log" 2>&1
echo "eager models/conformance rc=$?"
grep -E "^\[ +(OK|FAILED|PASSED) |Failure|rror" "$OUT/eager_models.log" | head -30
