#include "bench_runner.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <latch>
#include <mutex>
#include <thread>

namespace kiln::cli {

Result<BenchMeasurement> bench_measure(const Engine& engine, std::span<const Tensor> inputs,
                                       const RunOptions& options, const BenchPlan& plan,
                                       const BenchProgress& progress) {
  using Clock = std::chrono::steady_clock;
  if (plan.threads < 1 || plan.iterations < 1 || plan.warmup < 0 || !(plan.min_time_s >= 0))
    return invalid_argument(
        "bench_measure: threads and iterations must be >= 1, warmup and "
        "min_time_s >= 0");
  const int n = plan.threads;
  const int64_t target_calls = std::min(plan.iterations, kMaxMeasuredCalls);
  std::atomic<int64_t> warmup_done{0}, measured{0};
  std::atomic<int> threads_finished{0};
  std::atomic<bool> stop{false};
  std::latch warmed(n);   // every worker has done its warmup
  std::latch started(1);  // the common start time is set
  Clock::time_point start;
  std::vector<std::vector<double>> per_thread(static_cast<size_t>(n));
  std::vector<Clock::time_point> ends(static_cast<size_t>(n));
  std::mutex error_mu;
  Status first_error;

  auto fail = [&](Status s, int t) {
    std::lock_guard<std::mutex> lock(error_mu);
    if (first_error.ok())
      first_error = s.with_context(n > 1 ? "bench thread " + std::to_string(t) : "bench");
    stop.store(true);
  };
  auto worker = [&](int t) {
    for (int i = 0; i < plan.warmup && !stop.load(std::memory_order_relaxed); ++i) {
      Result<std::vector<Tensor>> r = engine.run(inputs, options);
      if (!r.ok()) fail(r.status(), t);
      warmup_done.fetch_add(1, std::memory_order_relaxed);
    }
    warmed.count_down();
    started.wait();
    std::vector<double>& lat = per_thread[static_cast<size_t>(t)];
    while (!stop.load(std::memory_order_relaxed)) {
      const Clock::time_point t0 = Clock::now();
      Result<std::vector<Tensor>> r = engine.run(inputs, options);
      const Clock::time_point t1 = Clock::now();
      if (!r.ok()) {
        fail(r.status(), t);
        break;
      }
      lat.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
      const int64_t done = measured.fetch_add(1, std::memory_order_relaxed) + 1;
      if (done >= kMaxMeasuredCalls ||
          (done >= target_calls &&
           std::chrono::duration<double>(t1 - start).count() >= plan.min_time_s))
        stop.store(true);
    }
    ends[static_cast<size_t>(t)] = Clock::now();
    threads_finished.fetch_add(1);
  };

  std::vector<std::thread> threads;
  threads.reserve(static_cast<size_t>(n));
  for (int t = 0; t < n; ++t) threads.emplace_back(worker, t);

  const int64_t warmup_total = static_cast<int64_t>(plan.warmup) * n;
  Clock::time_point last_report = Clock::now();
  auto report = [&](std::string_view stage, double f) {
    if (!progress || Clock::now() - last_report < std::chrono::milliseconds(100)) return;
    last_report = Clock::now();
    progress(stage, f);
  };
  // Wait for every thread's warmup, then release them all at once.
  while (!warmed.try_wait()) {
    if (warmup_total > 0) report("warmup", static_cast<double>(warmup_done.load()) / warmup_total);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  start = Clock::now();
  started.count_down();
  while (threads_finished.load() < n) {
    const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    const double by_calls = static_cast<double>(measured.load()) / target_calls;
    const double by_time = plan.min_time_s > 0 ? elapsed / plan.min_time_s : 1.0;
    report("measuring", std::min(by_calls, by_time));
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  for (std::thread& th : threads) th.join();
  if (!first_error.ok()) return first_error;

  BenchMeasurement m;
  Clock::time_point end = start;
  for (int t = 0; t < n; ++t) {
    const auto& lat = per_thread[static_cast<size_t>(t)];
    m.latencies_ms.insert(m.latencies_ms.end(), lat.begin(), lat.end());
    end = std::max(end, ends[static_cast<size_t>(t)]);
  }
  m.wall_s = std::chrono::duration<double>(end - start).count();
  if (m.wall_s > 0) m.throughput_per_s = static_cast<double>(m.latencies_ms.size()) / m.wall_s;
  return m;
}

}  // namespace kiln::cli
