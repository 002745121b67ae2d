#!/usr/bin/env bash
# Runs kiln's GPU tests on a machine with an NVIDIA GPU; logs and JUnit XML go to $OUT.
#
#   tools/gpu/run_gpu_tests.sh [--prebuilt BUNDLE.tar.xz] [--testdata MODELS]
#
# Without --prebuilt it configures (CMake + Ninja, Release) and builds the gpu-labelled tests with
# every core into build-gpu/, then runs `ctest -L '^gpu$'` (a regex: plain `gpu` matches nogpu too).
# That needs the CUDA toolkit and kiln's build dependencies (protobuf, OpenBLAS, GTest, CLI11,
# nlohmann-json, zlib); the device machines have them.
# With --prebuilt it runs test binaries built on another x86-64 machine: the bundle holds bin/*
# (the test binaries) and lib/* (shared libraries the GPU machine may lack); see
# tools/gpu/make_bundle.sh. The CUDA libraries (libcudart, libnvrtc, libcublasLt) come from the
# GPU machine's toolkit (/usr/local/cuda).
# MODELS is the shared test data: a folder holding models/ and onnx-conformance/, or their
# .tar.gz archives, or one archive. Default:
# ../shared/testdata.
set -uo pipefail

OUT=${OUT:-$PWD/gpu-out}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PREBUILT=""
TESTDATA="$ROOT/../shared/testdata"
while [ $# -gt 0 ]; do
  case "$1" in
    --prebuilt) PREBUILT=$2; shift 2 ;;
    --testdata) TESTDATA=$2; shift 2 ;;
    *) echo "usage: $0 [--prebuilt BUNDLE.tar.xz] [--testdata DIR|models.tar.gz]" >&2; exit 2 ;;
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
if [ -n "$PREBUILT" ]; then
  tar xJf "$PREBUILT" -C "$WORK"
  export LD_LIBRARY_PATH="$WORK/bundle/lib:$LD_LIBRARY_PATH"
  for bin in "$WORK"/bundle/bin/*; do
    name=$(basename "$bin")
    echo "=== $name" | tee -a "$OUT/summary.txt"
    "$bin" --gtest_output="xml:$OUT/$name.xml" > "$OUT/$name.log" 2>&1
    rc=$?
    grep -E "^\[  (PASSED|FAILED) |tests? ran|^\[  FAILED  \]" "$OUT/$name.log" | tee -a "$OUT/summary.txt"
    [ $rc -ne 0 ] && status=1
  done
else
  BUILD="$ROOT/build-gpu"
  mkdir -p "$BUILD/testdata"  # the test-data links go here
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DKILN_BUILD_PYTHON=OFF \
    > "$OUT/configure.log" 2>&1 || { echo "configure failed: see configure.log"; exit 1; }
  ninja -C "$BUILD" -j"$(nproc)" cuda_gpu_test cuda_backend_test > "$OUT/build.log" 2>&1 \
    || { echo "build failed: see build.log"; tail -30 "$OUT/build.log"; exit 1; }
  (cd "$BUILD" && ctest -L '^gpu$' --output-on-failure --output-junit "$OUT/ctest_gpu.xml") > "$OUT/ctest_gpu.log" 2>&1 \
    || status=1
  tail -20 "$OUT/ctest_gpu.log" | tee "$OUT/summary.txt"
fi
exit $status
