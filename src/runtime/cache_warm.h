// Warming a runtime cache for GPUs this machine may not have: `kiln cache warm`.
//
// For each engine, plans the kernels a run at the profile's opt shape (or the static shape)
// launches, host-only (backends/cuda/kernel_plan.h), and makes sure the cache holds the machine
// code of every one of them for every requested SM: the generic variants and, optionally, their
// specialised variants for that shape; plus the generic kernels a run at the min shape launches. NVRTC runs on the CPU, so no GPU or driver is needed.
// Kernels already in the cache are hits and are not compiled again. cuBLASLt algorithm choices
// need a GPU and are not warmed. Requires a kiln built with the CUDA backend.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "kiln/runtime_cache.h"
#include "kiln/status.h"

namespace kiln {

struct CacheWarmOptions {
  std::vector<int> sms;     // 90 for sm_90; at least one
  bool specialized = true;  // also the specialised variants for the opt shape
  int threads = 0;          // parallel compiles; 0: one per hardware thread
  // Called from the calling thread, at most every 100 ms and once at the end.
  std::function<void(uint64_t done, uint64_t total)> progress;
};

struct CacheWarmReport {
  uint64_t engines = 0;
  uint64_t kernels = 0;     // distinct (kernel source, SM) pairs needed
  uint64_t compiled = 0;    // compiled by NVRTC now
  uint64_t hits = 0;        // already in the cache
  uint64_t failed = 0;
  uint64_t specializable = 0;  // of `kernels`, specialised variants
  double seconds = 0;          // wall time of the compile phase
  std::vector<std::string> errors;  // the first few failures
  std::map<std::string, uint64_t> per_arch;  // kernels per "sm_XX"
};

// "sm_90" / "90" / "9.0" -> 90. Errors: kInvalidArgument naming the text.
Result<int> parse_sm(const std::string& text);

// Warms `cache` (inserts only; the caller saves). Errors: kUnavailable without the CUDA backend,
// an engine's load or planning error (naming the file), kInvalidArgument for no SMs.
Result<CacheWarmReport> cache_warm(const std::vector<std::string>& engine_paths, RuntimeCache& cache,
                                   const CacheWarmOptions& options);

// What an engine's CUDA run at its opt (or static) shape launches, planned host-only as for an
// sm_90 device: for `kiln inspect`. Errors as cache_warm's.
struct KernelInventory {
  uint64_t kernels = 0;        // distinct kernel variants launched (generic)
  uint64_t specializable = 0;  // of those, with a specialised variant that gains
  uint64_t launches = 0;       // launches per run (GEMMs not counted)
  uint64_t gemm_bridges = 0;   // of `kernels`, GEMM kernels lazy's first calls run while cuBLASLt gets ready
  uint64_t gemv_kernels = 0;   // of `kernels`, GEMV kernels that compute one-row GEMMs instead of cuBLASLt
  uint64_t gpu_nodes = 0, host_nodes = 0, fallback_nodes = 0;
};
Result<KernelInventory> engine_kernel_inventory(const std::string& engine_path);

}  // namespace kiln
