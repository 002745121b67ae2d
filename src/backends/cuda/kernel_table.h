// The process-wide table of loaded kernels: each distinct kernel compiles once per process.
//
// Kernels are asked for by a *variant key*: a short string that fully determines the generated
// source (generator name, op, dtypes, layout variant; never a shape for generic kernels). The
// builder runs only on the first request for (variant key, SM); the source is then compiled by
// machine code is fetched from the persistent runtime cache or compiled by NVRTC (kernel_jit.h),
// and loaded as a context-independent cudaLibrary_t, valid on every device of that SM. Entries
// live for the whole process; the table is shared by every program and context.
// Thread-safe: concurrent first requests for one kernel compile it once; other kernels do not
// wait. A failed compile is remembered and returned again (it would fail the same way).
#pragma once

#include <cuda_runtime_api.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "backends/cuda/kernel_jit.h"
#include "backends/cuda/nvrtc.h"
#include "kiln/status.h"

namespace kiln::cuda {

struct KernelTableStats {
  uint64_t compiles = 0;  // NVRTC compilations
  uint64_t hits = 0;      // requests served from the table
  uint64_t loads = 0;     // cudaLibraryLoadData calls
  // Host nanoseconds, summed over threads: generating sources (with their cache keys), getting
  // machine code (runtime-cache lookup or NVRTC), and loading it (cudaLibraryLoadData and
  // cudaLibraryGetKernel).
  uint64_t source_ns = 0, image_ns = 0, load_ns = 0;
};

class KernelTable {
 public:
  using Builder = std::function<Result<KernelSource>()>;

  static KernelTable& global();

  // The kernel for (variant_key, sm), fetched from `cache` (may be null) or compiled, and loaded
  // on first use; `counters` (may be null) counts the JIT work done by this call.
  // Errors: the builder's, NVRTC's (with its log), or cudaLibraryLoadData's, naming the kernel.
  Result<cudaKernel_t> get(std::string_view variant_key, int sm, const Builder& build,
                           RuntimeCache* cache = nullptr, JitCounters* counters = nullptr);
  // As get(), but never compiles: kNotFound (and nothing remembered) when the kernel is neither
  // loaded nor in `cache`.
  Result<cudaKernel_t> get_cached(std::string_view variant_key, int sm, const Builder& build,
                                  RuntimeCache* cache, JitCounters* counters = nullptr);
  // The kernel when it is already loaded; never builds, compiles or waits.
  std::optional<cudaKernel_t> find(std::string_view variant_key, int sm) const;

  KernelTableStats stats() const;

 private:
  struct Impl;
  KernelTable();
  Result<cudaKernel_t> lookup_or_build(std::string_view variant_key, int sm, const Builder& build,
                                       RuntimeCache* cache, JitCounters* counters, bool compile);
  Impl* impl_;
};

}  // namespace kiln::cuda
