#include "bench_stats.h"

#include <algorithm>
#include <cmath>

namespace kiln::cli {

double percentile_sorted(std::span<const double> sorted, double p) {
  if (sorted.empty()) return 0;
  p = std::clamp(p, 0.0, 100.0);
  // Rank ceil(p/100 * n), 1-based; rank 0 (p = 0) means the first value.
  const double n = static_cast<double>(sorted.size());
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * n - 1e-9));
  if (rank == 0) rank = 1;
  return sorted[std::min(rank, sorted.size()) - 1];
}

LatencySummary summarize_latencies(std::vector<double> samples_ms) {
  LatencySummary s;
  if (samples_ms.empty()) return s;
  std::sort(samples_ms.begin(), samples_ms.end());
  const size_t n = samples_ms.size();
  s.count = static_cast<int64_t>(n);
  s.min_ms = samples_ms.front();
  s.max_ms = samples_ms.back();
  double sum = 0;
  for (double v : samples_ms) sum += v;
  s.mean_ms = sum / static_cast<double>(n);
  if (n > 1) {
    double sq = 0;
    for (double v : samples_ms) sq += (v - s.mean_ms) * (v - s.mean_ms);
    s.stddev_ms = std::sqrt(sq / static_cast<double>(n - 1));
  }
  s.median_ms = n % 2 ? samples_ms[n / 2] : (samples_ms[n / 2 - 1] + samples_ms[n / 2]) / 2;
  s.p90_ms = percentile_sorted(samples_ms, 90);
  s.p99_ms = percentile_sorted(samples_ms, 99);
  return s;
}

}  // namespace kiln::cli
