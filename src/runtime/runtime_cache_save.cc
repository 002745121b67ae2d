// RuntimeCache and its file: load, merge-on-save under the sidecar lock, clear, verify.
#include <algorithm>
#include <filesystem>
#include <unordered_map>

#include "core/logging.h"
#include "platform/file.h"
#include "platform/file_lock.h"
#include "runtime/runtime_cache_file.h"
#include "runtime/runtime_cache_impl.h"

namespace kiln {
namespace internal {
namespace {

namespace fs = std::filesystem;

std::mutex g_hook_mu;
std::function<void(std::string_view)>* g_hook = nullptr;

void warn_about(const std::string& path, const CacheScan& scan) {
  if (scan.problem_count == 0) return;
  const CacheVerifyReport::Problem& first = scan.problems.front();
  std::string m = "runtime cache '" + path + "': ";
  std::string category;
  if (scan.state == CacheFileState::kOk) {
    category = "corrupt";
    m += "skipped " + std::to_string(scan.problem_count) + " corrupt or truncated record(s) " +
         "(first at file offset " + std::to_string(first.offset) + ": " + first.reason +
         "); their kernels will be recompiled and the file rewritten on the next save";
  } else {
    category = scan.state == CacheFileState::kOtherVersion ? "version" : "foreign";
    m += first.reason + "; ignoring the file, it will be replaced on the next save";
  }
  log_once(LogLevel::kWarning, "runtime_cache|" + category + "|" + path, m);
}

// Temp files of saves that died (write_file_atomic names them PATH.tmp.<pid>.<n>). Called with
// the lock held, when no other save of this file can be in flight.
void remove_stale_temps(const std::string& path) {
  fs::path p(path);
  std::string prefix = p.filename().string() + ".tmp.";
  std::error_code ec;
  fs::directory_iterator it(p.parent_path().empty() ? fs::path(".") : p.parent_path(), ec);
  for (; !ec && it != fs::directory_iterator(); it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (name.compare(0, prefix.size(), prefix) == 0) {
      std::error_code rm_ec;
      fs::remove(it->path(), rm_ec);
    }
  }
}

Status create_folder_of(const std::string& path) {
  fs::path parent = fs::path(path).parent_path();
  if (parent.empty()) return Status();
  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec) {
    return io_error("cannot create the runtime cache folder '" + parent.string() +
                    "': " + ec.message());
  }
  return Status();
}

}  // namespace

void set_cache_save_hook_for_testing(std::function<void(std::string_view stage)> hook) {
  std::lock_guard<std::mutex> lock(g_hook_mu);
  delete g_hook;
  g_hook = hook ? new std::function<void(std::string_view)>(std::move(hook)) : nullptr;
}

void cache_save_hook(std::string_view stage) {
  std::function<void(std::string_view)> hook;
  {
    std::lock_guard<std::mutex> lock(g_hook_mu);
    if (g_hook == nullptr) return;
    hook = *g_hook;
  }
  hook(stage);
}

Result<CacheLoad> cache_load(const std::string& path, uint64_t max_bytes,
                             const std::function<bool(const CacheKey&)>& want_blob) {
  CacheLoad out;
  Result<std::shared_ptr<platform::MappedFile>> mapped = platform::MappedFile::open(path);
  if (!mapped.ok()) {
    if (mapped.status().code() == StatusCode::kNotFound) return out;
    return mapped.status().with_context("cannot read the runtime cache");
  }
  out.exists = true;
  uint64_t total = 0;
  CacheScan scan = cache_scan((*mapped)->bytes(), [&](const CacheRecordView& r) {
    auto it = out.entries.find(r.key);
    if (it != out.entries.end()) {
      if (r.last_use_us <= it->second.last_use_us) return;
      total -= it->second.encoded_size();
    }
    CacheFileEntry f;
    f.meta = {r.kind, std::string(r.name), std::string(r.arch)};
    f.blob_size = r.blob.size();
    f.last_use_us = r.last_use_us;
    f.hits = r.hits;
    if (!want_blob || want_blob(r.key)) {
      f.bytes = std::make_shared<const std::vector<uint8_t>>(r.blob.begin(), r.blob.end());
    }
    total += f.encoded_size();
    out.entries.insert_or_assign(r.key, std::move(f));
    // Keep memory within twice the bound while reading a file larger than it.
    if (total - std::min(total, max_bytes) > max_bytes) {
      out.evictions += cache_evict_lru(out.entries, max_bytes);
      total = 0;
      for (const auto& [key, e] : out.entries) total += e.encoded_size();
    }
  });
  out.evictions += cache_evict_lru(out.entries, max_bytes);
  if (scan.state == CacheFileState::kOk) {
    out.skipped_records = scan.problem_count;
  } else if (scan.state != CacheFileState::kEmpty) {
    out.skipped_records = 1;
  }
  warn_about(path, scan);
  return out;
}

}  // namespace internal

using internal::CacheEntry;
using internal::CacheFileEntry;
using internal::CacheFileMap;

Status RuntimeCache::Impl::save(const std::string& path, bool only_if_dirty) {
  if (read_only) {
    if (only_if_dirty) return Status();
    return invalid_argument("cannot save the runtime cache '" + path +
                            "': it was opened read-only");
  }
  std::lock_guard<std::mutex> save_lock(save_mu);
  if (only_if_dirty && !dirty.load()) return Status();
  dirty.store(false);  // changes from here on make it dirty again

  // A snapshot of this handle; lookups and inserts go on while the file is merged.
  CacheFileMap mine;
  std::unordered_map<CacheKey, uint64_t, internal::CacheKeyHash> hits_new;
  uint64_t snap_seq;
  {
    std::shared_lock<std::shared_mutex> lock(mu);
    snap_seq = next_seq;
    for (const auto& [key, e] : map) {
      uint64_t h = e->hits_new.load();
      hits_new.emplace(key, h);
      mine.emplace(key, CacheFileEntry{e->meta, e->bytes, e->bytes->size(), e->last_use_us.load(),
                                       e->hits_base + h});
    }
  }
  const uint64_t limit = max_bytes.load();

  auto merge_and_write = [&]() -> Result<CacheFileMap> {
    KILN_RETURN_IF_ERROR(internal::create_folder_of(path));
    KILN_ASSIGN_OR_RETURN(platform::FileLock lock,
                          platform::FileLock::acquire(platform::sidecar_lock_path(path)));
    internal::cache_save_hook("locked");
    internal::remove_stale_temps(path);
    KILN_ASSIGN_OR_RETURN(
        internal::CacheLoad disk,
        internal::cache_load(path, limit, [&](const CacheKey& k) { return !mine.contains(k); }));
    skipped_records.fetch_add(disk.skipped_records);
    CacheFileMap merged = std::move(disk.entries);
    for (auto& [key, m] : mine) {
      auto it = merged.find(key);
      if (it == merged.end()) {
        merged.emplace(key, m);
        continue;
      }
      // Equal keys hold interchangeable values: the newer use wins, the hits add up.
      CacheFileEntry& d = it->second;
      uint64_t hits = d.hits + hits_new[key];
      if (m.last_use_us >= d.last_use_us) {
        d = m;
      } else {
        d.bytes = m.bytes;  // not copied from the file: we have it
        d.blob_size = m.blob_size;
      }
      d.hits = hits;
    }
    evictions.fetch_add(internal::cache_evict_lru(merged, limit));

    std::vector<const std::pair<const CacheKey, CacheFileEntry>*> order;
    order.reserve(merged.size());
    for (const auto& kv : merged) order.push_back(&kv);
    std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->first < b->first; });
    format::ByteWriter w;
    internal::cache_append_header(w);
    for (const auto* kv : order) {
      const CacheFileEntry& e = kv->second;
      internal::cache_append_record(w, kv->first, e.meta.kind, e.last_use_us, e.hits, e.meta.name,
                                    e.meta.arch, *e.bytes);
    }
    KILN_RETURN_IF_ERROR(platform::write_file_atomic(path, w.buffer()));
    internal::cache_save_hook("written");
    return merged;
  };
  Result<CacheFileMap> merged = merge_and_write();
  if (!merged.ok()) {
    dirty.store(true);
    return merged.status().with_context("cannot save the runtime cache '" + path + "'");
  }

  // The handle now mirrors the file, plus whatever was inserted while it was written.
  std::unique_lock<std::shared_mutex> lock(mu);
  Map next;
  next.reserve(merged->size());
  for (auto& [key, f] : *merged) {
    auto it = map.find(key);
    if (it != map.end()) {
      CacheEntry& e = *it->second;
      auto h = hits_new.find(key);
      if (h != hits_new.end()) e.hits_new.fetch_sub(std::min(h->second, e.hits_new.load()));
      e.hits_base = f.hits;
      e.last_use_us.store(std::max(e.last_use_us.load(), f.last_use_us));
      next.emplace(key, it->second);
      continue;
    }
    auto e = std::make_shared<CacheEntry>();
    e->meta = std::move(f.meta);
    e->bytes = std::move(f.bytes);
    e->hits_base = f.hits;
    e->last_use_us.store(f.last_use_us);
    next.emplace(key, std::move(e));
  }
  for (auto& [key, e] : map) {
    if (e->seq >= snap_seq && !next.contains(key)) next.emplace(key, e);
  }
  map.swap(next);
  bytes = 0;
  for (const auto& [key, e] : map) bytes += e->encoded_size();
  evict_locked();
  saves.fetch_add(1);
  return Status();
}

Status RuntimeCache::Impl::clear(const std::string& path) {
  if (read_only) {
    return invalid_argument("cannot clear the runtime cache '" + path +
                            "': it was opened read-only");
  }
  std::lock_guard<std::mutex> save_lock(save_mu);
  std::error_code ec;
  if (std::filesystem::exists(std::filesystem::path(path), ec)) {
    auto write_empty = [&]() -> Status {
      KILN_ASSIGN_OR_RETURN(platform::FileLock lock,
                            platform::FileLock::acquire(platform::sidecar_lock_path(path)));
      internal::remove_stale_temps(path);
      format::ByteWriter w;
      internal::cache_append_header(w);
      return platform::write_file_atomic(path, w.buffer());
    };
    KILN_RETURN_IF_ERROR(
        write_empty().with_context("cannot clear the runtime cache '" + path + "'"));
  }
  std::unique_lock<std::shared_mutex> lock(mu);
  map.clear();
  bytes = 0;
  dirty.store(false);
  return Status();
}

Result<CacheVerifyReport> RuntimeCache::verify_file(const std::string& path) {
  CacheVerifyReport report;
  Result<std::shared_ptr<platform::MappedFile>> mapped = platform::MappedFile::open(path);
  if (!mapped.ok()) {
    if (mapped.status().code() == StatusCode::kNotFound) return report;
    return mapped.status().with_context("cannot read the runtime cache");
  }
  report.exists = true;
  report.file_bytes = (*mapped)->size();
  internal::CacheScan scan =
      internal::cache_scan((*mapped)->bytes(), [](const internal::CacheRecordView&) {});
  report.compatible =
      scan.state == internal::CacheFileState::kOk || scan.state == internal::CacheFileState::kEmpty;
  report.valid_records = scan.valid_records;
  report.problems = std::move(scan.problems);
  report.problem_count = scan.problem_count;
  return report;
}

}  // namespace kiln
