#!/usr/bin/env bash
# Session 13's closing device call: the gpu suites (with memcheck and racecheck of the GEMM and
# specialisation tests), then the Python package and the start-up scenario. Run from the checkout
# root with OUT set and the shared test data in .testdata/td.
set -u
T0=$(date +%s)
MEMCHECK_FILTER='CudaOpsTest.*:SpecializeGpuTest.*' RACECHECK_FILTER='CudaOpsTest.*' CONFORMANCE_SECONDS=60 \
  OUT=$OUT/gpu-tests tools/gpu/run_gpu_tests.sh --testdata .testdata/td --sanitize --sanitize-seconds 50 > $OUT/gpu-tests.log 2>&1
echo "gpu tests exit $? after $(( $(date +%s) - T0 )) s"
tail -25 $OUT/gpu-tests/summary.txt 2>/dev/null
(cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DKILN_BUILD_TESTS=OFF && ninja -C build kiln_python) > $OUT/build.log 2>&1 || { tail -20 $OUT/build.log; exit 1; }
export PYTHONPATH=$PWD/build/python
timeout 120 python3 bench/compare.py --quick --scenario startup --budget-s 80 --out $OUT/startup > $OUT/startup.log 2>&1
echo "startup exit $? after $(( $(date +%s) - T0 )) s"
grep -A20 "start-up" $OUT/startup/results.md | head -24
