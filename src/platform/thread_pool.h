// A process-wide pool of worker threads for data-parallel loops.
//
// parallel_for may be called from any number of threads at once, and from inside another
// parallel_for (the caller always works on its own loop, so nesting cannot deadlock).
#pragma once

#include <cstdint>
#include <functional>

namespace kiln {

// Runs fn(begin, end) over [0, n) in chunks of at least `grain` items, on the pool and the
// calling thread; returns when every chunk is done. Small loops run inline.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

// Number of threads parallel_for may use (workers + caller).
int parallel_threads();

}  // namespace kiln
