// One RuntimeCache per canonical path, saved when dropped and at process exit.
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <unordered_map>

#include "core/logging.h"
#include "runtime/runtime_cache_impl.h"

namespace kiln {
namespace {

struct Registry {
  struct Slot {
    std::weak_ptr<RuntimeCache> handle;
    const RuntimeCache* raw = nullptr;  // tells a stale slot from its replacement
  };
  std::mutex mu;
  std::unordered_map<std::string, Slot> by_path;
  bool exit_hook_installed = false;
};

// Leaked on purpose: the exit hook and late destructors use it after static destruction began.
Registry& registry() {
  static Registry* r = new Registry();
  return *r;
}

Result<std::string> canonical_path(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path abs = fs::absolute(fs::path(path), ec);
  if (!ec) abs = fs::weakly_canonical(abs, ec);
  if (ec) {
    return io_error("cannot resolve the runtime cache path '" + path + "': " + ec.message());
  }
  return abs.string();
}

void log_save_failure(const std::string& path, const Status& s) {
  log(LogLevel::kWarning, "could not save the runtime cache '" + path + "' (" + s.message() +
                              "); kernels compiled in this process will be compiled again");
}

}  // namespace

RuntimeCache::RuntimeCache(std::string path, CacheOptions options)
    : path_(std::move(path)), impl_(std::make_unique<Impl>()) {
  impl_->max_bytes.store(options.max_bytes);
  impl_->read_only = options.read_only;
}

RuntimeCache::~RuntimeCache() {
  if (Status s = impl_->save(path_, /*only_if_dirty=*/true); !s.ok()) log_save_failure(path_, s);
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  auto it = r.by_path.find(path_);
  if (it != r.by_path.end() && it->second.raw == this) r.by_path.erase(it);
}

Result<std::shared_ptr<RuntimeCache>> RuntimeCache::open(const std::string& path,
                                                         CacheOptions options) {
  if (path.empty()) {
    return invalid_argument(
        "invalid runtime cache path ''; expected a file path (or the "
        "runtime_cache setting none)");
  }
  if (options.max_bytes == 0) {
    return invalid_argument("invalid runtime cache max_bytes 0 for '" + path +
                            "'; expected a positive size (the default is 1 GiB)");
  }
  KILN_ASSIGN_OR_RETURN(std::string canonical, canonical_path(path));

  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  if (!r.exit_hook_installed) {
    r.exit_hook_installed = true;
    // Saves every live handle that changed. Registered at the first open, so it runs before the
    // destructors of statics constructed earlier (such as the logger's).
    std::atexit([] {
      std::vector<std::shared_ptr<RuntimeCache>> live;
      {
        Registry& reg = registry();
        std::lock_guard<std::mutex> l(reg.mu);
        for (auto& [p, slot] : reg.by_path) {
          if (auto h = slot.handle.lock()) live.push_back(std::move(h));
        }
      }
      for (const auto& h : live) {
        if (Status s = h->impl_->save(h->path_, true); !s.ok()) log_save_failure(h->path_, s);
      }
    });
  }
  if (auto it = r.by_path.find(canonical); it != r.by_path.end()) {
    if (std::shared_ptr<RuntimeCache> live = it->second.handle.lock()) return live;
  }
  KILN_ASSIGN_OR_RETURN(internal::CacheLoad loaded,
                        internal::cache_load(canonical, options.max_bytes, nullptr));
  std::shared_ptr<RuntimeCache> cache(new RuntimeCache(canonical, options));
  {
    std::unique_lock<std::shared_mutex> l(cache->impl_->mu);
    cache->impl_->adopt_locked(std::move(loaded.entries));
  }
  cache->impl_->evictions.store(loaded.evictions);
  cache->impl_->skipped_records.store(loaded.skipped_records);
  // A damaged or over-long file is rewritten by the next automatic save.
  cache->impl_->dirty.store(loaded.skipped_records > 0 || loaded.evictions > 0);
  r.by_path[canonical] = {cache, cache.get()};
  return cache;
}

Result<std::shared_ptr<RuntimeCache>> RuntimeCache::for_setting(const ResolvedSettings& settings) {
  const RuntimeCacheSetting& s = settings.runtime_cache;
  switch (s.kind()) {
    case RuntimeCacheSetting::Kind::kPath:
      return open(s.path());
    case RuntimeCacheSetting::Kind::kHandle:
      return s.handle();
    case RuntimeCacheSetting::Kind::kNone:
    case RuntimeCacheSetting::Kind::kUnset:
      break;
  }
  return std::shared_ptr<RuntimeCache>();
}

Status RuntimeCache::save() { return impl_->save(path_, /*only_if_dirty=*/false); }

Status RuntimeCache::clear() { return impl_->clear(path_); }

Result<CacheVerifyReport> RuntimeCache::verify() const { return verify_file(path_); }

}  // namespace kiln
