#!/usr/bin/env bash
# On a GPU machine with torch: build the Python package, run tests/python/test_gpu.py, then
# bench/compare.py --quick. Everything lands in $OUT (default ./gpu-out): run.log (build,
# tests, benchmark log) and bench/ (results.json, results.md, plots). Extra arguments go to
# compare.py. Regenerate docs/performance.md from the results anywhere with
#   python3 bench/compare.py --render OUT/bench/results.json --out DIR --docs docs/performance.md
set -u -o pipefail
OUT=${OUT:-./gpu-out}
mkdir -p "$OUT"
LOG="$OUT/run.log"
export PYTHONUNBUFFERED=1
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python3 -c "import sys, torch; print(sys.version.split()[0], 'torch', torch.__version__)"
  python3 -c "import torchvision; print('torchvision', torchvision.__version__)"
  python3 -c "import matplotlib; print('matplotlib', matplotlib.__version__)"
} >"$LOG" 2>&1
start=$(date +%s)
# KILN_BENCH_STEP=build stops after the build (e.g. run in the background while other work uses
# the GPU); =run skips it, reusing build/ from an earlier call on the same machine.
STEP=${KILN_BENCH_STEP:-all}
case $STEP in all|build|run) ;; *) echo "KILN_BENCH_STEP=$STEP: expected all, build or run" >&2; exit 2 ;; esac
if [ "$STEP" != run ]; then
  if ! { cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DKILN_BUILD_TESTS=OFF &&
         ninja -C build -j"$(nproc)" kiln_python; } >>"$LOG" 2>&1; then
    tail -40 "$LOG"
    exit 1
  fi
  echo "== build: $(( $(date +%s) - start )) s" | tee -a "$LOG"
  [ "$STEP" = build ] && exit 0
fi
export PYTHONPATH="$PWD/build/python${PYTHONPATH:+:$PYTHONPATH}"
timeout "${PYTEST_TIMEOUT:-180}" python3 -m pytest -q -rs tests/python/test_gpu.py 2>&1 | tee -a "$LOG"
echo "== pytest: $(( $(date +%s) - start )) s" | tee -a "$LOG"
timeout "${BENCH_TIMEOUT:-560}" python3 bench/compare.py --quick --out "$OUT/bench" "$@" 2>&1 | tee -a "$LOG"
rc=$?
echo "== compare.py exit $rc: $(( $(date +%s) - start )) s" | tee -a "$LOG"
exit $rc
