// The measuring loop of `kiln bench`: N threads call one Engine concurrently and time each call.
//
// Each thread first runs its warmup calls, then all threads start measuring together and keep
// calling until, all threads together, at least `iterations` calls are measured and `min_time_s`
// has passed (or kMaxMeasuredCalls is reached). A call's latency is steady_clock around
// Engine::run. Throughput is the measured calls divided by the wall time from the common start to
// the end of the last thread's last call.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string_view>
#include <vector>

#include "kiln/engine.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::cli {

inline constexpr int64_t kMaxMeasuredCalls = 10'000'000;

struct BenchPlan {
  int warmup = 10;          // per thread, not measured
  int64_t iterations = 50;  // at least this many measured calls (all threads together), >= 1
  double min_time_s = 1.0;  // and at least this many seconds, >= 0
  int threads = 1;          // >= 1
};

struct BenchMeasurement {
  std::vector<double> latencies_ms;  // every measured call, all threads
  double wall_s = 0;                 // from the common start to the last call's end
  double throughput_per_s = 0;       // latencies_ms.size() / wall_s
};

// Called about every 100 ms from the calling thread while the threads run: the stage
// ("warmup" or "measuring") and the fraction of it done.
using BenchProgress = std::function<void(std::string_view stage, double fraction)>;

// Runs `plan` against `engine` with `inputs` and `options` (shared read-only by the threads).
// The first failing call stops every thread and its Status is returned, with context naming the
// thread. `progress` may be empty.
Result<BenchMeasurement> bench_measure(const Engine& engine, std::span<const Tensor> inputs,
                                       const RunOptions& options, const BenchPlan& plan,
                                       const BenchProgress& progress);

}  // namespace kiln::cli
