#!/usr/bin/env bash
# Runs kiln's CPU test suite as CI does (.ci/run), timing each step:
#   plain  build/ (Release, configured as tools/setup.sh does, so nothing is rebuilt there):
#          every test labelled nogpu
#   asan   build-asan/ (ASan+UBSan): every test labelled nogpu, conformance and CLI included
#   tsan   build-tsan/ (TSan): the threaded tests only ($tsan_tests below): the thread pool,
#          runtime settings and scopes on many threads, engines called from many threads, the
#          stress tests, the runtime cache's threads and processes, and the CPU kernels that
#          split work over the pool
#   fuzz   tools/fuzz.sh: each libFuzzer target for $KILN_FUZZ_SECONDS seconds (default 45)
# Any failing test, sanitizer report or fuzz finding makes the script exit non-zero.
#   tools/test.sh               every step
#   tools/test.sh --quick       plain only
#   tools/test.sh STEP...       the named steps, e.g. tools/test.sh asan tsan
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

steps=("$@")
if ((${#steps[@]} == 0)); then
  steps=(plain asan tsan fuzz)
elif [[ ${steps[0]} == --quick ]]; then
  steps=(plain)
fi

# Test names (gtest Suite.Case, as ctest lists them) that run under TSan.
tsan_tests='^(ThreadPoolTest|FileLockTest|RuntimeThreadTest|RuntimeScopeTest|EngineContextTest'
tsan_tests+='|EngineStressTest|RuntimeCacheTest|RuntimeCacheProcessTest)\.'
tsan_tests+='|^[A-Za-z]+Test\.Large'  # CPU kernels big enough to split over kiln's thread pool
tsan_binaries=(platform_test runtime_test cpu_backend_test)

# Allocation failures return null (as they do outside ASan), so kiln's own out-of-memory
# Status paths are what the tests see; leaks fail the run. A sanitizer report exits with 86, a
# code the CLI never uses (its 1 means "mismatch", which a CLI test may expect).
export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1:halt_on_error=1:exitcode=86
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:exitcode=86
# OpenBLAS (not instrumented) would start its own thread pool at load; kiln runs it single-
# threaded anyway (nn_common.cc), so keep its threads from existing at all under TSan.
tsan_env=(TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1" OPENBLAS_NUM_THREADS=1)

configure() {  # dir, cmake args...
  local dir=$1; shift
  cmake -S . -B "$dir" -G Ninja "$@" >/dev/null
}

run_ctest() {  # dir, ctest args...
  local dir=$1; shift
  ctest --test-dir "$dir" -L nogpu --no-tests=error --output-on-failure -j"$jobs" \
    --timeout 1800 "$@"
}

step_plain() {
  configure build -DCMAKE_BUILD_TYPE=Release
  cmake --build build -j"$jobs"
  run_ctest build
}

step_asan() {
  configure build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKILN_SANITIZE=address \
    -DKILN_WITH_CUDA=OFF -DKILN_BUILD_PYTHON=OFF
  cmake --build build-asan -j"$jobs"
  run_ctest build-asan
}

step_tsan() {
  configure build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKILN_SANITIZE=thread \
    -DKILN_WITH_CUDA=OFF -DKILN_BUILD_PYTHON=OFF
  cmake --build build-tsan -j"$jobs" --target "${tsan_binaries[@]}"
  local listed
  listed=$(ctest --test-dir build-tsan -L nogpu -R "$tsan_tests" -N | sed -n 's/^Total Tests: //p')
  echo "== tsan: $listed tests match"
  ((listed > 0)) || { echo "tsan: no test matches \$tsan_tests"; return 1; }
  env "${tsan_env[@]}" ctest --test-dir build-tsan -L nogpu -R "$tsan_tests" --no-tests=error \
    --output-on-failure -j"$jobs" --timeout 1800
}

step_fuzz() {
  tools/fuzz.sh "${KILN_FUZZ_SECONDS:-45}"
}

summary=()
for s in "${steps[@]}"; do
  if ! declare -F "step_$s" >/dev/null; then
    echo "unknown step '$s'; expected plain|asan|tsan|fuzz (or --quick)" >&2
    exit 2
  fi
  echo "== step $s"
  start=$SECONDS
  # In a subshell of its own so that set -e stops the step at its first failing command.
  set +e
  (set -e; "step_$s")
  status=$?
  set -e
  summary+=("$(printf '%-6s %5ds  %s' "$s" $((SECONDS - start)) "$([[ $status == 0 ]] && echo ok || echo FAILED)")")
  if ((status != 0)); then
    printf '%s\n' "== summary" "${summary[@]}"
    exit 1
  fi
done
printf '%s\n' "== summary" "${summary[@]}"
