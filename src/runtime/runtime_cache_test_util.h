// Helpers for the runtime cache tests: a temp folder, deterministic entries, and reading a cache
// file's keys without opening a handle.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "kiln/runtime_cache.h"
#include "platform/file.h"
#include "runtime/runtime_cache_file.h"

namespace kiln::testing_cache {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = std::filesystem::temp_directory_path().string() + "/kiln_cache_XXXXXX";
    char* p = ::mkdtemp(tmpl.data());
    if (p != nullptr) path_ = p;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// The key and bytes of test entry `i` of family `tag`: the bytes depend on both, so a wrong
// value under a key is detected.
inline CacheKey test_key(const std::string& tag, int i) {
  return make_cache_key("kernel " + tag + " " + std::to_string(i), "--opt", 12080, "sm_90");
}
inline std::vector<uint8_t> test_blob(const std::string& tag, int i, size_t size) {
  std::vector<uint8_t> b(size);
  uint32_t x = static_cast<uint32_t>(std::hash<std::string>()(tag)) * 2654435761u + i;
  for (size_t k = 0; k < size; ++k) {
    x = x * 1664525u + 1013904223u;
    b[k] = static_cast<uint8_t>(x >> 24);
  }
  return b;
}
inline CacheEntryMeta test_meta(const std::string& tag, int i, const std::string& arch = "sm_90") {
  return {CacheEntryKind::kCubin, "k_" + tag + "_" + std::to_string(i), arch};
}

// The valid records of the file at `path` (key -> blob), read with the scanner.
struct FileContent {
  std::map<CacheKey, std::vector<uint8_t>> blobs;
  std::map<CacheKey, uint64_t> hits;
  internal::CacheScan scan;
};
inline FileContent read_cache_file(const std::string& path) {
  FileContent out;
  Result<std::vector<uint8_t>> bytes = platform::read_file(path);
  if (!bytes.ok()) return out;
  out.scan = internal::cache_scan(*bytes, [&](const internal::CacheRecordView& r) {
    out.blobs[r.key].assign(r.blob.begin(), r.blob.end());
    out.hits[r.key] = r.hits;
  });
  return out;
}

}  // namespace kiln::testing_cache
