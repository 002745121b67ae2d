// The per-call cost of runtime-settings resolution (kiln issue #4; targets: < 100 ns with no
// scope, < 200 ns with three nested scopes). Every benchmark also reports `allocs`, the heap
// allocations per resolution, which must be 0: a replacement operator new counts them.
//
//   build/bin/settings_bench [--benchmark_filter=...] [--benchmark_min_time=0.5s]
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <new>
#include <thread>

#include "kiln/runtime.h"

namespace {
thread_local long t_allocations = 0;  // per thread, so threads' setup does not count
}  // namespace

void* operator new(std::size_t size) {
  ++t_allocations;
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
// GCC cannot see that the replaced operator new above allocates with malloc.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop

namespace kiln {
namespace {

RuntimeSettings one_field(int i) {
  RuntimeSettings s;
  switch (i % 3) {
    case 0: s.cuda_graph_strategy = CudaGraphStrategy::kWholeGraphCapture; break;
    case 1: s.kernel_specialization = KernelSpecializationStrategy::kEager; break;
    default: s.runtime_cache = RuntimeCacheSetting::path("/tmp/bench.kcache"); break;
  }
  return s;
}

// Runs `resolve` in the benchmark loop and reports allocations per iteration.
template <typename F>
void run(benchmark::State& state, F resolve) {
  (void)resolve();  // first use: reads the environment, takes this thread's snapshot
  long before = t_allocations;
  for (auto _ : state) {
    ResolvedSettings r = resolve();
    benchmark::DoNotOptimize(r);
  }
  long allocs = t_allocations - before;
  state.counters["allocs"] =
      benchmark::Counter(static_cast<double>(allocs), benchmark::Counter::kAvgIterations);
  if (allocs != 0) state.SkipWithError("resolution allocated on the hot path");
}

void BM_ResolveNoScope(benchmark::State& state) {
  run(state, [] { return current_runtime_settings(); });
}
BENCHMARK(BM_ResolveNoScope)->ThreadRange(1, 4);

void BM_ResolveThreeNestedScopes(benchmark::State& state) {
  ScopedRuntimeSettings a(one_field(0));
  ScopedRuntimeSettings b(one_field(1));
  ScopedRuntimeSettings c(one_field(2));
  run(state, [] { return current_runtime_settings(); });
}
BENCHMARK(BM_ResolveThreeNestedScopes)->ThreadRange(1, 4);

// What an engine call does: per-call and per-engine layers over three scopes.
void BM_ResolveCallEngineAndThreeScopes(benchmark::State& state) {
  ScopedRuntimeSettings a(one_field(0));
  ScopedRuntimeSettings b(one_field(1));
  ScopedRuntimeSettings c(one_field(2));
  RuntimeSettings engine;
  engine.multi_device_safe_mode = true;
  RuntimeSettings call;
  call.cuda_graph_strategy = CudaGraphStrategy::kDisabled;
  run(state, [&] { return resolve_runtime_settings(&call, &engine); });
}
BENCHMARK(BM_ResolveCallEngineAndThreeScopes)->ThreadRange(1, 4);

// Resolution plus keying a context, as Engine::run does per call.
void BM_ResolveAndKey(benchmark::State& state) {
  run(state, [] {
    ResolvedSettings r = current_runtime_settings();
    benchmark::DoNotOptimize(r.context_key().hash());
    return r;
  });
}
BENCHMARK(BM_ResolveAndKey);

// A shared cache handle in the process defaults: each resolution then holds the handle, so the
// reference count is shared between threads (the one cost a path does not have).
void BM_ResolveHandleDefault(benchmark::State& state) {
  static auto* owner = new std::shared_ptr<int>(std::make_shared<int>(0));
  if (state.thread_index() == 0) {
    RuntimeSettings d;
    d.runtime_cache = RuntimeCacheSetting::handle(
        std::shared_ptr<RuntimeCache>(*owner, reinterpret_cast<RuntimeCache*>(owner->get())));
    set_default_runtime_settings(d);
  }
  run(state, [] { return current_runtime_settings(); });
  if (state.thread_index() == 0) set_default_runtime_settings(RuntimeSettings{});
}
BENCHMARK(BM_ResolveHandleDefault)->ThreadRange(1, 4);

// Entering and leaving a scope (what a Python `with` block costs on the C++ side).
void BM_ScopeEnterExit(benchmark::State& state) {
  RuntimeSettings s = one_field(0);
  for (auto _ : state) {
    ScopedRuntimeSettings scope(s);
    benchmark::DoNotOptimize(&scope);
  }
}
BENCHMARK(BM_ScopeEnterExit);

}  // namespace
}  // namespace kiln

BENCHMARK_MAIN();
