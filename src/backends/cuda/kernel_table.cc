#include "backends/cuda/kernel_table.h"

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string_view>
#include <unordered_map>

#include "backends/cuda/device.h"

namespace kiln::cuda {

namespace {

struct Entry {
  std::mutex mu;  // held while compiling, so concurrent requests compile once
  std::atomic<bool> done{false};  // set (release) after status and kernel are final
  Status status;
  cudaKernel_t kernel = nullptr;
};

}  // namespace

// A variant's place in the table: (target SM, variant key). Lookups pass a string_view of the key
// (heterogeneous lookup): no key text is copied or concatenated per launch.
struct VariantId {
  int sm;
  std::string key;
};
struct VariantView {
  int sm;
  std::string_view key;
};
struct VariantHash {
  using is_transparent = void;
  size_t operator()(const VariantView& v) const {
    return std::hash<std::string_view>{}(v.key) ^ (static_cast<size_t>(v.sm) * 0x9e3779b97f4a7c15ull);
  }
  size_t operator()(const VariantId& v) const { return (*this)(VariantView{v.sm, v.key}); }
};
struct VariantEq {
  using is_transparent = void;
  static VariantView view(const VariantId& v) { return {v.sm, v.key}; }
  static VariantView view(const VariantView& v) { return v; }
  template <typename A, typename B>
  bool operator()(const A& a, const B& b) const {
    const VariantView x = view(a), y = view(b);
    return x.sm == y.sm && x.key == y.key;
  }
};

struct KernelTable::Impl {
  std::shared_mutex mu;
  std::unordered_map<VariantId, std::shared_ptr<Entry>, VariantHash, VariantEq> by_variant;
  std::mutex cache_mu;
  std::map<CacheKey, cudaKernel_t> by_cache_key;  // identical sources load once
  std::atomic<uint64_t> compiles{0}, hits{0}, loads{0};
  std::atomic<uint64_t> source_ns{0}, image_ns{0}, load_ns{0};
};

namespace {
uint64_t steady_ns() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
}
}  // namespace

KernelTable::KernelTable() : impl_(new Impl()) {}

KernelTable& KernelTable::global() {
  static KernelTable* table = new KernelTable();  // never destroyed: kernels live for the process
  return *table;
}

std::optional<cudaKernel_t> KernelTable::find(std::string_view variant_key, int sm) const {
  std::shared_lock<std::shared_mutex> lock(impl_->mu);
  auto it = impl_->by_variant.find(VariantView{sm, variant_key});
  if (it == impl_->by_variant.end() || !it->second->done.load(std::memory_order_acquire) ||
      !it->second->status.ok())
    return std::nullopt;
  return it->second->kernel;
}

Result<cudaKernel_t> KernelTable::get(std::string_view variant_key, int sm, const Builder& build,
                                      RuntimeCache* cache, JitCounters* counters) {
  return lookup_or_build(variant_key, sm, build, cache, counters, true);
}

Result<cudaKernel_t> KernelTable::get_cached(std::string_view variant_key, int sm, const Builder& build,
                                             RuntimeCache* cache, JitCounters* counters) {
  return lookup_or_build(variant_key, sm, build, cache, counters, false);
}

Result<cudaKernel_t> KernelTable::lookup_or_build(std::string_view variant_key, int sm, const Builder& build,
                                                  RuntimeCache* cache, JitCounters* counters, bool compile) {
  std::shared_ptr<Entry> e;
  {
    std::shared_lock<std::shared_mutex> lock(impl_->mu);
    auto it = impl_->by_variant.find(VariantView{sm, variant_key});
    if (it != impl_->by_variant.end()) e = it->second;
  }
  if (e && e->done.load(std::memory_order_acquire)) {
    impl_->hits.fetch_add(1, std::memory_order_relaxed);
    if (!e->status.ok()) return e->status;
    return e->kernel;
  }
  if (!e) {
    std::unique_lock<std::shared_mutex> lock(impl_->mu);
    auto it = impl_->by_variant.find(VariantView{sm, variant_key});
    if (it == impl_->by_variant.end())
      it = impl_->by_variant.emplace(VariantId{sm, std::string(variant_key)}, std::make_shared<Entry>()).first;
    e = it->second;
  }
  std::lock_guard<std::mutex> lock(e->mu);
  if (e->done) {
    impl_->hits.fetch_add(1, std::memory_order_relaxed);
    if (!e->status.ok()) return e->status;
    return e->kernel;
  }
  auto fail = [&](Status s) -> Result<cudaKernel_t> {
    e->status = s;
    e->done.store(true, std::memory_order_release);
    return s;
  };
  const uint64_t t0 = steady_ns();
  Result<KernelSource> src = build();
  if (!src.ok()) return fail(src.status());
  const CacheKey cache_key = kernel_key(src->source, sm);
  const uint64_t t1 = steady_ns();
  impl_->source_ns.fetch_add(t1 - t0, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> cl(impl_->cache_mu);
    auto it = impl_->by_cache_key.find(cache_key);
    if (it != impl_->by_cache_key.end()) {
      e->kernel = it->second;
      e->done.store(true, std::memory_order_release);
      impl_->hits.fetch_add(1, std::memory_order_relaxed);
      return e->kernel;
    }
  }
  Result<KernelImage> image = kernel_image(*src, sm, cache, counters, compile);
  if (!image.ok() && !compile && image.status().code() == StatusCode::kNotFound) return image.status();  // not done
  if (!image.ok()) return fail(image.status());
  const uint64_t t2 = steady_ns();
  impl_->image_ns.fetch_add(t2 - t1, std::memory_order_relaxed);
  if (!image->from_cache) impl_->compiles.fetch_add(1, std::memory_order_relaxed);
  cudaLibrary_t lib = nullptr;
  impl_->loads.fetch_add(1, std::memory_order_relaxed);
  Status s = cuda_status(cudaLibraryLoadData(&lib, image->bytes->data(), nullptr, nullptr, 0, nullptr,
                                             nullptr, 0),
                         "cudaLibraryLoadData (kernel " + src->name + ")");
  if (!s.ok() && image->from_cache) {
    // The driver refused cached code (e.g. PTX newer than it): compile afresh, bypassing the cache.
    image = kernel_image(*src, sm, nullptr, counters);
    if (!image.ok()) return fail(image.status());
    impl_->compiles.fetch_add(1, std::memory_order_relaxed);
    s = cuda_status(cudaLibraryLoadData(&lib, image->bytes->data(), nullptr, nullptr, 0, nullptr,
                                        nullptr, 0),
                    "cudaLibraryLoadData (kernel " + src->name + ")");
  }
  if (!s.ok()) return fail(s);
  cudaKernel_t k = nullptr;
  s = cuda_status(cudaLibraryGetKernel(&k, lib, src->name.c_str()),
                  "cudaLibraryGetKernel (kernel " + src->name + ")");
  if (!s.ok()) return fail(s);
  impl_->load_ns.fetch_add(steady_ns() - t2, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> cl(impl_->cache_mu);
    impl_->by_cache_key.emplace(cache_key, k);
  }
  e->kernel = k;
  e->done.store(true, std::memory_order_release);
  return k;
}

KernelTableStats KernelTable::stats() const {
  KernelTableStats s;
  s.compiles = impl_->compiles.load();
  s.hits = impl_->hits.load();
  s.loads = impl_->loads.load();
  s.source_ns = impl_->source_ns.load();
  s.image_ns = impl_->image_ns.load();
  s.load_ns = impl_->load_ns.load();
  return s;
}

}  // namespace kiln::cuda
