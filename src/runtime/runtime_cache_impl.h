// RuntimeCache's state, shared by runtime_cache.cc (lookups, inserts, eviction),
// runtime_cache_save.cc (load, save, clear, verify) and runtime_cache_registry.cc (open, exit).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "kiln/runtime_cache.h"

namespace kiln::internal {

struct CacheKeyHash {
  size_t operator()(const CacheKey& k) const noexcept {
    size_t h;
    static_assert(sizeof(h) <= sizeof(k.bytes));
    __builtin_memcpy(&h, k.bytes.data(), sizeof(h));  // already a uniform hash
    return h;
  }
};

// One entry in memory.
struct CacheEntry {
  CacheEntryMeta meta;
  std::shared_ptr<const std::vector<uint8_t>> bytes;
  uint64_t hits_base = 0;             // recorded hits as of the last load or save (under mu)
  std::atomic<uint64_t> hits_new{0};  // hits since then
  std::atomic<uint64_t> last_use_us{0};
  uint64_t seq = 0;  // insert sequence number; 0 when loaded from a file

  uint64_t encoded_size() const;
};

// The unix time in microseconds, strictly increasing across calls in this process (so the LRU
// order of uses within one process is exact even when the clock is coarse or steps back).
uint64_t cache_now_us();

// An entry as read from a file, or about to be written.
struct CacheFileEntry {
  CacheEntryMeta meta;
  std::shared_ptr<const std::vector<uint8_t>> bytes;  // null when the caller did not want it
  uint64_t blob_size = 0;
  uint64_t last_use_us = 0;
  uint64_t hits = 0;
  uint64_t encoded_size() const;
};
using CacheFileMap = std::unordered_map<CacheKey, CacheFileEntry, CacheKeyHash>;

struct CacheLoad {
  CacheFileMap entries;
  bool exists = false;
  uint64_t skipped_records = 0;  // corrupt or truncated records, or the whole file ignored
  uint64_t evictions = 0;        // valid entries dropped to keep within max_bytes
};

// Reads the cache file at `path`, keeping at most `max_bytes` of entries (least recently used
// dropped first) and copying a blob only when `want_blob(key)` (null: always). Problems are
// logged once per distinct message. Errors: kIoError when the file exists but cannot be read.
Result<CacheLoad> cache_load(const std::string& path, uint64_t max_bytes,
                             const std::function<bool(const CacheKey&)>& want_blob);

// Drops the least recently used entries of `entries` until their encoded size is at most
// `max_bytes`; returns how many were dropped.
uint64_t cache_evict_lru(CacheFileMap& entries, uint64_t max_bytes);

// For tests: called during save() while the file lock is held, with "locked" after the lock is
// taken and "written" after the new file is in place (before the lock is released). A test makes
// it sleep so that a SIGKILL lands in the middle of a save. Null by default.
void set_cache_save_hook_for_testing(std::function<void(std::string_view stage)> hook);
void cache_save_hook(std::string_view stage);

}  // namespace kiln::internal

namespace kiln {

struct RuntimeCache::Impl {
  using Map =
      std::unordered_map<CacheKey, std::shared_ptr<internal::CacheEntry>, internal::CacheKeyHash>;

  mutable std::shared_mutex mu;  // guards map, bytes, next_seq and entries' non-atomic fields
  Map map;
  uint64_t bytes = 0;
  uint64_t next_seq = 1;
  std::atomic<uint64_t> max_bytes{kRuntimeCacheDefaultMaxBytes};
  bool read_only = false;  // set before the handle is shared

  std::mutex save_mu;              // one save() or clear() at a time
  std::atomic<bool> dirty{false};  // changed since the last save

  std::atomic<uint64_t> hits{0}, misses{0}, inserts{0}, evictions{0}, saves{0}, skipped_records{0};

  // Under mu (exclusive): evicts least recently used entries until bytes <= max_bytes.
  void evict_locked();
  // Under mu (exclusive): replaces the map's content with `loaded` (the first load).
  void adopt_locked(internal::CacheFileMap&& loaded);

  // save() and the automatic saves (only_if_dirty); see runtime_cache_save.cc.
  Status save(const std::string& path, bool only_if_dirty);
  Status clear(const std::string& path);
};

}  // namespace kiln
