// Latency statistics for `kiln bench`. Pure functions over millisecond samples; thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace kiln::cli {

struct LatencySummary {
  int64_t count = 0;
  double min_ms = 0, max_ms = 0, mean_ms = 0, stddev_ms = 0;
  double median_ms = 0, p90_ms = 0, p99_ms = 0;
};

// The nearest-rank percentile of ascending `sorted` values: the smallest value such that at least
// p percent of the values are <= it (p in [0, 100]; p = 0 gives the minimum). 0 when empty.
double percentile_sorted(std::span<const double> sorted, double p);

// Summary of `samples_ms` (any order). The median of an even count is the mean of the middle two;
// p90 and p99 are nearest-rank; stddev is the sample standard deviation (0 below two samples).
// An empty input gives count 0 and zeros.
LatencySummary summarize_latencies(std::vector<double> samples_ms);

}  // namespace kiln::cli
