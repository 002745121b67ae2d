#!/usr/bin/env bash
# Runs kiln's CPU test suite: the nogpu label, then again under ASan+UBSan and TSan.
#   tools/test.sh           everything CI runs (plain, asan, tsan)
#   tools/test.sh --quick   the plain build only
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
quick=0
[[ "${1:-}" == "--quick" ]] && quick=1

run_suite() {  # build_dir, extra cmake args..., then ctest
  local dir=$1; shift
  echo "== $dir: configure + build"
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
  cmake --build "$dir" -j"$jobs"
  echo "== $dir: ctest -L nogpu"
  ctest --test-dir "$dir" -L nogpu --output-on-failure -j"$jobs" --timeout 900
}

run_suite build
if ((!quick)); then
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run_suite build-asan -DKILN_SANITIZE=address -DKILN_WITH_CUDA=OFF -DKILN_BUILD_PYTHON=OFF
  TSAN_OPTIONS=halt_on_error=1 run_suite build-tsan -DKILN_SANITIZE=thread -DKILN_WITH_CUDA=OFF -DKILN_BUILD_PYTHON=OFF
fi
