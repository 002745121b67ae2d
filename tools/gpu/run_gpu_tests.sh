#!/usr/bin/env bash
# Runs kiln's GPU tests on a machine with an NVIDIA GPU; logs and JUnit XML go to $OUT.
#
#   tools/gpu/run_gpu_tests.sh [--prebuilt BUNDLE.tar.xz] [--testdata MODELS] [--sanitize]
#                              [--sanitize-only] [--sanitize-seconds S]
#
# Without --prebuilt it configures (CMake + Ninja, Release) and builds the gpu-labelled tests with
# every core into build-gpu/, then runs `ctest -L '^gpu$'` (a regex: plain `gpu` matches nogpu too).
# That needs the CUDA toolkit and kiln's build dependencies (protobuf, OpenBLAS, GTest, CLI11,
# nlohmann-json, zlib); the device machines have them.
# With --prebuilt it runs binaries built on another x86-64 machine: the bundle holds bin/*
# (cuda_gpu_test, cuda_backend_test, kiln) and lib/* (shared libraries the GPU machine may lack); see
# tools/gpu/make_bundle.sh. The CUDA libraries (libcudart, libnvrtc, libcublasLt) come from the
# GPU machine's toolkit (/usr/local/cuda); cuDNN from $CUDNN_ROOT, by default the folder of the
# Python package nvidia.cudnn (PyTorch's), passed to CMake as a hint and added to LD_LIBRARY_PATH.
# summary.txt says which cuDNN the configure found and whether the test binaries load it.
# MODELS is the shared test data: a folder holding models/ and onnx-conformance/, or their
# .tar.gz archives, or one archive. Default:
# ../shared/testdata.
# After the gpu label it runs `kiln conformance --backend cuda` over the ONNX conformance cases
# (conformance_cuda.json; at most $CONFORMANCE_SECONDS s, default 400), then five `kiln bench`
# cold starts of the encoder that exit while lazy's background work runs (each must exit 0;
# cold_starts.log). With --sanitize it then runs the gpu test binary under
# compute-sanitizer: memcheck (out-of-bounds and misaligned accesses, leaks of device memory)
# and racecheck (shared-memory races), each for at most S seconds (default 240) with
# --error-exitcode, logs in sanitizer_<tool>.log; the summary names the tests that finished.
# --sanitize-only skips the gpu label and the conformance run (for a second call on a machine
# that already ran them: the build is reused).
set -uo pipefail

OUT=${OUT:-$PWD/gpu-out}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PREBUILT=""
TESTDATA="$ROOT/../shared/testdata"
SANITIZE=0
SANITIZE_ONLY=0
SANITIZE_SECONDS=240
while [ $# -gt 0 ]; do
  case "$1" in
    --prebuilt) PREBUILT=$2; shift 2 ;;
    --testdata) TESTDATA=$2; shift 2 ;;
    --sanitize) SANITIZE=1; shift ;;
    --sanitize-only) SANITIZE=1; SANITIZE_ONLY=1; shift ;;
    --sanitize-seconds) SANITIZE_SECONDS=$2; shift 2 ;;
    *) echo "usage: $0 [--prebuilt BUNDLE.tar.xz] [--testdata DIR|models.tar.gz] [--sanitize] [--sanitize-seconds S]" >&2
       exit 2 ;;
  esac
done
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/kiln-gpu.XXXXXX)
status=0

{ nvidia-smi; nvcc --version; cmake --version; } > "$OUT/machine.txt" 2>&1

# Test data: unpack the archives (models.tar.gz, onnx-conformance.tar.gz), or use the folders.
if [ -f "$TESTDATA" ]; then
  mkdir -p "$WORK/testdata" && tar xzf "$TESTDATA" -C "$WORK/testdata"
  export KILN_TESTDATA="$WORK/testdata"
elif ls "$TESTDATA"/*.tar.gz > /dev/null 2>&1; then
  mkdir -p "$WORK/testdata"
  for a in "$TESTDATA"/*.tar.gz; do tar xzf "$a" -C "$WORK/testdata"; done
  export KILN_TESTDATA="$WORK/testdata"
else
  export KILN_TESTDATA="$TESTDATA"
fi
echo "KILN_TESTDATA=$KILN_TESTDATA" >> "$OUT/machine.txt"

export LD_LIBRARY_PATH="/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# cuDNN for the convolutions: the toolkit's, or the one PyTorch's wheel ships (nvidia.cudnn).
CUDNN_ROOT=${CUDNN_ROOT:-$(python3 -c "import nvidia.cudnn as m, os; print(os.path.dirname(m.__file__ or '') or list(m.__path__)[0])" 2>/dev/null)}
if [ -n "$CUDNN_ROOT" ] && [ -d "$CUDNN_ROOT/lib" ]; then
  export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$CUDNN_ROOT/lib"
fi
echo "CUDNN_ROOT=${CUDNN_ROOT:-none}" >> "$OUT/machine.txt"
# Whether the test binaries load cuDNN (cuda_backend_test prints it; needs no GPU).
report_cudnn() {
  "$1" --gtest_filter='CudnnBuildTest.*' 2>&1 | grep '\[ cudnn \]' | tee -a "$OUT/summary.txt"
}
if [ -n "$PREBUILT" ]; then
  [ -f "$PREBUILT" ] || { echo "run_gpu_tests.sh: --prebuilt $PREBUILT: no such file (make one with tools/gpu/make_bundle.sh)" >&2; exit 2; }
  tar xJf "$PREBUILT" -C "$WORK" || { echo "run_gpu_tests.sh: $PREBUILT is not a bundle made by tools/gpu/make_bundle.sh" >&2; exit 2; }
  export LD_LIBRARY_PATH="$WORK/bundle/lib:$LD_LIBRARY_PATH"
  BIN="$WORK/bundle/bin"
  report_cudnn "$BIN/cuda_backend_test"
  if [ "$SANITIZE_ONLY" = 0 ]; then
    # Every gpu-labelled test is in cuda_gpu_test; one process runs them all (ctest would start
    # one process per test). GTEST_FILTER narrows it (e.g. MultiDevice*).
    echo "=== cuda_gpu_test ${GTEST_FILTER:+(filter $GTEST_FILTER)}" | tee -a "$OUT/summary.txt"
    start=$(date +%s)
    "$BIN/cuda_gpu_test" --gtest_output="xml:$OUT/cuda_gpu_test.xml" > "$OUT/cuda_gpu_test.log" 2>&1
    rc=$?
    grep -E "^\[  (PASSED|FAILED) |tests? ran|^\[  FAILED  \]|^\[  SKIPPED \]" "$OUT/cuda_gpu_test.log" \
      | tee -a "$OUT/summary.txt"
    echo "cuda_gpu_test exit $rc after $(( $(date +%s) - start )) s" | tee -a "$OUT/summary.txt"
    [ $rc -ne 0 ] && status=1
    # The cuDNN tests again with the backend (graph) API off: the legacy API path stays tested.
    if [ -z "${GTEST_FILTER:-}" ]; then
      echo "=== cuda_gpu_test, cuDNN tests with KILN_CUDNN_GRAPH=0" | tee -a "$OUT/summary.txt"
      KILN_CUDNN_GRAPH=0 "$BIN/cuda_gpu_test" --gtest_filter='CudnnConvGpuTest.*:Models/CudnnModelTest.*' \
        > "$OUT/cuda_gpu_test_legacy_cudnn.log" 2>&1
      rc=$?
      grep -E "^\[  (PASSED|FAILED) |^\[  FAILED  \]" "$OUT/cuda_gpu_test_legacy_cudnn.log" | tee -a "$OUT/summary.txt"
      [ $rc -ne 0 ] && status=1
    fi
  fi
else
  BUILD="$ROOT/build-gpu"
  BIN="$BUILD/bin"
  mkdir -p "$BUILD/testdata"  # the test-data links go here
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DKILN_BUILD_PYTHON=OFF \
    ${CUDNN_ROOT:+-DCUDNN_ROOT="$CUDNN_ROOT"} > "$OUT/configure.log" 2>&1 \
    || { echo "configure failed: see configure.log"; exit 1; }
  grep -E "kiln: (cuDNN|no cuDNN)" "$OUT/configure.log" | tee -a "$OUT/summary.txt"
  ninja -C "$BUILD" -j"$(nproc)" cuda_gpu_test cuda_backend_test kiln_cli > "$OUT/build.log" 2>&1 \
    || { echo "build failed: see build.log"; tail -30 "$OUT/build.log"; exit 1; }
  report_cudnn "$BIN/cuda_backend_test"
  if [ "$SANITIZE_ONLY" = 0 ]; then
    (cd "$BUILD" && ctest -L '^gpu$' --output-on-failure --output-junit "$OUT/ctest_gpu.xml") > "$OUT/ctest_gpu.log" 2>&1 \
      || status=1
    tail -20 "$OUT/ctest_gpu.log" | tee -a "$OUT/summary.txt"
  fi
fi
if [ "$SANITIZE_ONLY" = 0 ] && [ -d "$KILN_TESTDATA/onnx-conformance" ] && [ -x "$BIN/kiln" ]; then
  echo "=== kiln conformance --backend cuda" | tee -a "$OUT/summary.txt"
  start=$(date +%s)
  timeout "${CONFORMANCE_SECONDS:-400}" "$BIN/kiln" conformance "$KILN_TESTDATA/onnx-conformance" --backend cuda \
    --expected-unsupported "$ROOT/tests/conformance/expected_unsupported.txt" \
    --report "$OUT/conformance_cuda.json" > "$OUT/conformance_cuda.log" 2>&1 || status=1
  tail -3 "$OUT/conformance_cuda.log" | tee -a "$OUT/summary.txt"
  echo "conformance: $(( $(date +%s) - start )) s" | tee -a "$OUT/summary.txt"
fi
# Cold starts that exit while lazy's background work (the GEMM bridge's cuBLASLt warm-up) runs:
# each must exit 0 (session 6: every one segfaulted at exit before Specializer's destructor waited).
ENC="$KILN_TESTDATA/models/encoder_L4_d256/model.onnx"
if [ "$SANITIZE_ONLY" = 0 ] && [ -f "$ENC" ] && [ -x "$BIN/kiln" ]; then
  echo "=== kiln bench cold starts (exit during background work)" | tee -a "$OUT/summary.txt"
  cold_dir=$(mktemp -d)
  failed=0
  if "$BIN/kiln" build "$ENC" -o "$cold_dir/e.kiln" --shape ids:1x128 > "$OUT/cold_starts.log" 2>&1; then
    for i in 1 2 3 4 5; do
      rm -f "$cold_dir/c.kcache"
      "$BIN/kiln" bench "$cold_dir/e.kiln" --backend cuda --runtime-cache "$cold_dir/c.kcache" --iterations 2 \
        --warmup 0 --min-time 0 >> "$OUT/cold_starts.log" 2>&1 || failed=$((failed + 1))
    done
  else
    failed=5
  fi
  echo "cold starts: $((5 - failed)) of 5 exited 0" | tee -a "$OUT/summary.txt"
  [ "$failed" = 0 ] || status=1
  rm -rf "$cold_dir"
fi
if [ "$SANITIZE" = 1 ]; then
  SAN=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
  # Benchmarks and stress loops only repeat what the other tests cover, thousands of times.
  # kiln checks every CUDA call's result itself and probes on purpose (cudaFuncGetParamInfo past
  # a kernel's last parameter): API errors are not reported, memory errors, leaks and races are.
  for tool in memcheck racecheck; do
    if [ "$tool" = memcheck ]; then
      extra="--leak-check full"
      FILTER=${MEMCHECK_FILTER:-'-*Bench*:*Stress*:*ThousandCalls*:*PrintHostOverhead*'}
    else
      # racecheck is slow (minutes for the conformance sweep): the tests that run the kernels
      # with shared memory (reductions, softmax, normalisation, pooling, fused chains, GEMM
      # epilogues, attention) and the encoder model.
      extra=""
      FILTER=${RACECHECK_FILTER:-'CudaOpsTest.*:FusedGpuTest.*:CudaEpilogueGpuTest.*:CudaAttentionTest.*:*encoder*:-*PrintHostOverhead*:*Bench*'}
    fi
    echo "=== compute-sanitizer --tool $tool (at most ${SANITIZE_SECONDS} s)" | tee -a "$OUT/summary.txt"
    timeout "$SANITIZE_SECONDS" "$SAN" --tool "$tool" $extra --report-api-errors no --error-exitcode 9 --print-limit 50 \
      "$BIN/cuda_gpu_test" --gtest_filter="$FILTER" > "$OUT/sanitizer_$tool.log" 2>&1
    rc=$?
    ok=$(grep -c "^\[       OK \]" "$OUT/sanitizer_$tool.log")
    failed=$(grep -c "^\[  FAILED  \]" "$OUT/sanitizer_$tool.log")
    summary=$(grep -E "ERROR SUMMARY|RACECHECK SUMMARY|LEAK SUMMARY" "$OUT/sanitizer_$tool.log" | tail -2 | tr '\n' ' ')
    case $rc in
      0) how="clean" ;;
      124) how="time box reached (the tests that finished were clean unless a summary says otherwise)" ;;
      9) how="FINDINGS"; status=1 ;;
      *) how="exit $rc"; status=1 ;;
    esac
    if grep -qE "^========= (Invalid|Program hit|Race|Error|Leaked|Warning: Race)" "$OUT/sanitizer_$tool.log"; then
      how="FINDINGS ($how)"
      status=1
    fi
    echo "$tool: $how; tests finished OK: $ok, failed: $failed; $summary" | tee -a "$OUT/summary.txt"
    grep -B2 -A12 -E "^========= (Invalid|Program hit|Race|Error|Leaked|Warning: Race)" "$OUT/sanitizer_$tool.log" | head -60 \
      >> "$OUT/summary.txt"
  done
fi
exit $status
