// Kernel machine code through the persistent runtime cache (kiln/runtime_cache.h).
//
// kernel_image() is the one place NVRTC runs for kernels the backend launches: it looks the
// kernel up in the runtime cache under make_cache_key(source, options, NVRTC version, arch) and
// compiles only on a miss, inserting what it compiled. Without a cache it always compiles.
// Nothing here needs a GPU, so `kiln cache warm` uses it on machines without one.
// Thread-safe; concurrent calls for one kernel may each compile (the kernel table above it
// de-duplicates within a process).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backends/cuda/nvrtc.h"
#include "kiln/runtime_cache.h"
#include "kiln/status.h"

namespace kiln::cuda {

// What JIT work was done on someone's behalf (a program, a warm run). Lock-free counters.
struct JitCounters {
  std::atomic<uint64_t> compiles{0};       // NVRTC compilations
  std::atomic<uint64_t> cache_hits{0};     // runtime-cache lookups that found the kernel
  std::atomic<uint64_t> cache_misses{0};   // lookups that did not (a compile follows)
  std::atomic<uint64_t> compile_us{0};  // wall time spent in NVRTC, microseconds

  void add_to(std::map<std::string, uint64_t>& out) const;
};

struct KernelImage {
  std::shared_ptr<const std::vector<uint8_t>> bytes;  // cubin, or NUL-terminated PTX
  bool is_ptx = false;
  bool from_cache = false;
};

// "sm_90" for 90.
std::string sm_arch(int sm);
// The runtime-cache key of `source` compiled by this NVRTC for `sm`.
CacheKey kernel_key(const std::string& source, int sm);

// The machine code of `src` for `sm`: from `cache` (may be null) when it holds it, else compiled
// by NVRTC and inserted (an insert that fails is logged once; the image is still returned).
// `counters` may be null. Errors: NVRTC's (with its log), naming the kernel. With `compile`
// false a cache miss is kNotFound instead (nothing counted, nothing compiled).
Result<KernelImage> kernel_image(const KernelSource& src, int sm, RuntimeCache* cache,
                                 JitCounters* counters, bool compile = true);

}  // namespace kiln::cuda
