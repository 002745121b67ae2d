#include "backends/cuda/kernel_jit.h"

#include <chrono>

#include "core/logging.h"

namespace kiln::cuda {

void JitCounters::add_to(std::map<std::string, uint64_t>& out) const {
  out["kernels_compiled"] += compiles.load(std::memory_order_relaxed);
  out["cache_hits"] += cache_hits.load(std::memory_order_relaxed);
  out["cache_misses"] += cache_misses.load(std::memory_order_relaxed);
  out["compile_us"] += compile_us.load(std::memory_order_relaxed);
}

std::string sm_arch(int sm) { return "sm_" + std::to_string(sm); }

CacheKey kernel_key(const std::string& source, int sm) {
  std::string options;
  for (const std::string& o : nvrtc_options(sm)) options += o + '\n';
  return make_cache_key(source, options, nvrtc_version(), sm_arch(sm));
}

Result<KernelImage> kernel_image(const KernelSource& src, int sm, RuntimeCache* cache,
                                 JitCounters* counters, bool compile) {
  const bool is_ptx = nvrtc_options(sm)[0].find("compute_") != std::string::npos;
  CacheKey key;
  if (cache) {
    key = kernel_key(src.source, sm);
    if (std::optional<CacheValue> hit = cache->lookup(key)) {
      if (counters) counters->cache_hits.fetch_add(1, std::memory_order_relaxed);
      return KernelImage{hit->bytes, is_ptx, true};
    }
    if (!compile) return not_found("kernel " + src.name + " is not in the runtime cache");
    if (counters) counters->cache_misses.fetch_add(1, std::memory_order_relaxed);
  }
  if (!compile) return not_found("kernel " + src.name + ": no runtime cache");
  const auto start = std::chrono::steady_clock::now();
  KILN_ASSIGN_OR_RETURN(CompiledKernel compiled, nvrtc_compile(src, sm));
  if (counters) {
    counters->compiles.fetch_add(1, std::memory_order_relaxed);
    counters->compile_us.fetch_add(
        static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                  std::chrono::steady_clock::now() - start)
                                  .count()),
        std::memory_order_relaxed);
  }
  auto bytes = std::make_shared<const std::vector<uint8_t>>(compiled.image.begin(), compiled.image.end());
  if (cache) {
    Status s = cache->insert(key, std::span<const uint8_t>(*bytes),
                             CacheEntryMeta{CacheEntryKind::kCubin, src.name, sm_arch(sm)});
    if (!s.ok())
      log_once(LogLevel::kWarning, "kernel-cache-insert",
               "runtime cache " + cache->path() + ": could not keep kernel " + src.name + " (" +
                   s.to_string() + "); it will be recompiled next time");
  }
  return KernelImage{std::move(bytes), compiled.is_ptx, false};
}

}  // namespace kiln::cuda
