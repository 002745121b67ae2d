// For nogpu tests of generated kernels: compile many kernel sources with NVRTC (the toolkit's
// NVRTC runs on the CPU; no GPU needed), in parallel on the process's thread pool. Test-only.
#pragma once

#include <gtest/gtest.h>

#include <mutex>
#include <string>
#include <vector>

#include "backends/cuda/nvrtc.h"
#include "platform/thread_pool.h"

namespace kiln::cuda::testing {

// Compiles every source for sm_<sm>; returns one message per failure (in no particular order): a
// source that was not generated, a compile error followed by the source, or an empty cubin.
inline std::vector<std::string> compile_all(const std::vector<Result<KernelSource>>& sources,
                                            int sm = 90) {
  std::mutex mu;
  std::vector<std::string> failures;
  parallel_for(static_cast<int64_t>(sources.size()), 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const Result<KernelSource>& src = sources[static_cast<size_t>(i)];
      std::string err;
      if (!src.ok()) {
        err = src.status().to_string();
      } else {
        Result<CompiledKernel> k = nvrtc_compile(*src, sm);
        if (!k.ok()) {
          err = k.status().to_string() + "\n--- source ---\n" + src->source;
        } else if (k->image.empty()) {
          err = src->name + ": empty cubin";
        }
      }
      if (!err.empty()) {
        std::lock_guard<std::mutex> lock(mu);
        failures.push_back(std::move(err));
      }
    }
  });
  return failures;
}

// Expects every source to compile (compile_all); the failure names how many failed and shows
// the first.
inline void expect_all_compile(const std::vector<Result<KernelSource>>& sources, int sm = 90) {
  const std::vector<std::string> failures = compile_all(sources, sm);
  EXPECT_TRUE(failures.empty()) << failures.size() << " of " << sources.size()
                                << " kernels failed; first:\n" << (failures.empty() ? "" : failures[0]);
}

}  // namespace kiln::cuda::testing
