// RuntimeCache in memory: lookups, inserts, statistics and the LRU size bound.
#include <algorithm>
#include <chrono>

#include "runtime/runtime_cache_file.h"
#include "runtime/runtime_cache_impl.h"

namespace kiln {
namespace internal {

uint64_t cache_now_us() {
  static std::atomic<uint64_t> last{0};
  uint64_t now = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                           std::chrono::system_clock::now().time_since_epoch())
                                           .count());
  uint64_t prev = last.load(std::memory_order_relaxed);
  for (;;) {
    uint64_t next = std::max(now, prev + 1);
    if (last.compare_exchange_weak(prev, next, std::memory_order_relaxed)) return next;
  }
}

uint64_t CacheEntry::encoded_size() const {
  return cache_record_size(meta.name.size(), meta.arch.size(), bytes->size());
}

uint64_t CacheFileEntry::encoded_size() const {
  return cache_record_size(meta.name.size(), meta.arch.size(), blob_size);
}

uint64_t cache_evict_lru(CacheFileMap& entries, uint64_t max_bytes) {
  uint64_t total = 0;
  for (const auto& [key, e] : entries) total += e.encoded_size();
  if (total <= max_bytes) return 0;
  std::vector<std::pair<uint64_t, CacheKey>> order;
  order.reserve(entries.size());
  for (const auto& [key, e] : entries) order.emplace_back(e.last_use_us, key);
  std::sort(order.begin(), order.end());
  uint64_t dropped = 0;
  for (const auto& [last_use, key] : order) {
    if (total <= max_bytes) break;
    auto it = entries.find(key);
    total -= it->second.encoded_size();
    entries.erase(it);
    ++dropped;
  }
  return dropped;
}

}  // namespace internal

using internal::CacheEntry;

void RuntimeCache::Impl::evict_locked() {
  uint64_t limit = max_bytes.load();
  if (bytes <= limit) return;
  std::vector<std::pair<uint64_t, CacheKey>> order;
  order.reserve(map.size());
  for (const auto& [key, e] : map) order.emplace_back(e->last_use_us.load(), key);
  std::sort(order.begin(), order.end());
  for (const auto& [last_use, key] : order) {
    if (bytes <= limit) break;
    auto it = map.find(key);
    bytes -= it->second->encoded_size();
    map.erase(it);
    evictions.fetch_add(1);
  }
  dirty.store(true);
}

void RuntimeCache::Impl::adopt_locked(internal::CacheFileMap&& loaded) {
  map.clear();
  bytes = 0;
  for (auto& [key, f] : loaded) {
    auto e = std::make_shared<CacheEntry>();
    e->meta = std::move(f.meta);
    e->bytes = std::move(f.bytes);
    e->hits_base = f.hits;
    e->last_use_us.store(f.last_use_us);
    bytes += e->encoded_size();
    map.emplace(key, std::move(e));
  }
}

std::optional<CacheValue> RuntimeCache::lookup(const CacheKey& key) {
  std::shared_lock<std::shared_mutex> lock(impl_->mu);
  auto it = impl_->map.find(key);
  if (it == impl_->map.end()) {
    impl_->misses.fetch_add(1, std::memory_order_relaxed);
    return std::nullopt;
  }
  CacheEntry& e = *it->second;
  impl_->hits.fetch_add(1, std::memory_order_relaxed);
  e.hits_new.fetch_add(1, std::memory_order_relaxed);
  e.last_use_us.store(internal::cache_now_us(), std::memory_order_relaxed);
  impl_->dirty.store(true, std::memory_order_relaxed);
  return CacheValue{e.meta, e.bytes};
}

Status RuntimeCache::insert(const CacheKey& key, std::span<const uint8_t> bytes,
                            const CacheEntryMeta& meta) {
  if (meta.name.size() > internal::kCacheMaxNameBytes) {
    return invalid_argument("runtime cache entry name of " + std::to_string(meta.name.size()) +
                            " bytes exceeds the limit of " +
                            std::to_string(internal::kCacheMaxNameBytes));
  }
  if (meta.arch.size() > internal::kCacheMaxArchBytes) {
    return invalid_argument("runtime cache entry arch '" + meta.arch.substr(0, 80) +
                            "' exceeds the limit of " +
                            std::to_string(internal::kCacheMaxArchBytes) + " bytes");
  }
  if (meta.kind != CacheEntryKind::kCubin && meta.kind != CacheEntryKind::kTuning) {
    return invalid_argument("runtime cache entry '" + meta.name + "' has an unknown kind");
  }
  uint64_t size = internal::cache_record_size(meta.name.size(), meta.arch.size(), bytes.size());
  uint64_t limit = impl_->max_bytes.load();
  if (size > limit || size > internal::kCacheMaxRecordBytes) {
    return resource_exhausted("runtime cache entry '" + meta.name + "' needs " +
                              std::to_string(size) + " bytes, more than the cache's bound of " +
                              std::to_string(std::min(limit, internal::kCacheMaxRecordBytes)) +
                              "; raise CacheOptions::max_bytes");
  }
  auto e = std::make_shared<CacheEntry>();
  e->meta = meta;
  e->bytes = std::make_shared<const std::vector<uint8_t>>(bytes.begin(), bytes.end());
  e->last_use_us.store(internal::cache_now_us());

  std::unique_lock<std::shared_mutex> lock(impl_->mu);
  e->seq = impl_->next_seq++;
  auto [it, added] = impl_->map.try_emplace(key, e);
  if (!added) {
    // Keep the recorded hits of the entry being replaced (same key: same computation).
    CacheEntry& old = *it->second;
    e->hits_base = old.hits_base;
    e->hits_new.store(old.hits_new.load());
    impl_->bytes -= old.encoded_size();
    it->second = e;
  }
  impl_->bytes += size;
  impl_->inserts.fetch_add(1);
  impl_->dirty.store(true);
  impl_->evict_locked();
  return Status();
}

Status RuntimeCache::insert(const CacheKey& key, std::string_view text,
                            const CacheEntryMeta& meta) {
  return insert(
      key, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size()),
      meta);
}

Result<CacheValue> RuntimeCache::get_or_produce(
    const CacheKey& key, const CacheEntryMeta& meta,
    const std::function<Result<std::vector<uint8_t>>()>& produce) {
  if (std::optional<CacheValue> hit = lookup(key)) return std::move(*hit);
  KILN_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, produce());
  KILN_RETURN_IF_ERROR(insert(key, bytes, meta));
  return CacheValue{meta, std::make_shared<const std::vector<uint8_t>>(std::move(bytes))};
}

CacheStats RuntimeCache::stats() const {
  CacheStats s;
  {
    std::shared_lock<std::shared_mutex> lock(impl_->mu);
    s.entries = impl_->map.size();
    s.bytes = impl_->bytes;
    for (const auto& [key, e] : impl_->map) {
      s.recorded_hits += e->hits_base + e->hits_new.load(std::memory_order_relaxed);
      ++s.archs[e->meta.arch];
      ++s.kinds[std::string(to_string(e->meta.kind))];
    }
  }
  s.hits = impl_->hits.load();
  s.misses = impl_->misses.load();
  s.inserts = impl_->inserts.load();
  s.evictions = impl_->evictions.load();
  s.saves = impl_->saves.load();
  s.skipped_records = impl_->skipped_records.load();
  return s;
}

std::vector<CacheEntryInfo> RuntimeCache::entries() const {
  std::vector<CacheEntryInfo> out;
  {
    std::shared_lock<std::shared_mutex> lock(impl_->mu);
    out.reserve(impl_->map.size());
    for (const auto& [key, e] : impl_->map) {
      out.push_back({key, e->meta, e->bytes->size(), e->last_use_us.load(),
                     e->hits_base + e->hits_new.load()});
    }
  }
  std::sort(out.begin(), out.end(), [](const CacheEntryInfo& a, const CacheEntryInfo& b) {
    return a.last_use_us != b.last_use_us ? a.last_use_us > b.last_use_us : a.key < b.key;
  });
  return out;
}

uint64_t RuntimeCache::max_bytes() const { return impl_->max_bytes.load(); }

void RuntimeCache::set_max_bytes(uint64_t max_bytes) {
  std::unique_lock<std::shared_mutex> lock(impl_->mu);
  impl_->max_bytes.store(max_bytes);
  impl_->evict_locked();
}

}  // namespace kiln
