// RuntimeCache: the persistent cache of JIT-compiled kernels (cubins) and tuning decisions
// (cuBLASLt algorithm choices), shared by every engine and process that uses the same file.
//
// Keys are SHA-256 digests of everything that determines the machine code (make_cache_key), so
// equal keys mean interchangeable values and a value is never "stale", only unused. A value is a
// byte blob plus metadata: its kind, a name for humans, the target arch, its last-use time and how
// often it was hit.
//
// The file (docs/runtime_modes.md, "Runtime cache", has the layout) is a magic, a format version,
// then self-checking records. Loading never fails because of the file's content: a corrupt or
// truncated record is skipped, and a file with a foreign magic or another format version is
// ignored, each with a warning (logged once); the affected entries are simply missing (their
// kernels recompile) and the next save rewrites the file. Loading maps the file and keeps at most
// max_bytes of entries (twice that while reading), so no file can make kiln allocate without bound.
//
// save() merges under an exclusive lock on the sidecar file PATH.lock: it re-reads the file, takes
// the union by key with this handle's entries (the newer last use wins; hit counts add up),
// evicts least-recently-used entries down to max_bytes and replaces the file atomically (temp
// file, fsync, rename). Processes saving at the same time never lose each other's entries, and a
// process killed mid-save leaves the previous file intact.
//
// There is one handle per canonical path in a process (open() returns the same object while it is
// alive). A handle saves when it is destroyed and at process exit (std::atexit) if it changed
// since its last save; errors there are logged, not returned. A child made by fork() shares the
// parent's handles: it should _exit() or save() explicitly.
//
// All methods are thread-safe.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/runtime.h"
#include "kiln/status.h"

namespace kiln {

// Bump when the file layout or the key derivation changes: old files are then ignored (with a
// warning) and replaced on the next save, and old keys never match.
inline constexpr uint32_t kRuntimeCacheFormatVersion = 1;
// The default size bound of a cache file: 1 GiB.
inline constexpr uint64_t kRuntimeCacheDefaultMaxBytes = uint64_t{1} << 30;

// A 256-bit cache key. Value type; ordered and hashable.
struct CacheKey {
  std::array<uint8_t, 32> bytes{};

  // 64 lowercase hex digits.
  std::string to_hex() const;
  // Parses 64 hex digits (either case). Errors: kInvalidArgument.
  static Result<CacheKey> from_hex(std::string_view hex);

  auto operator<=>(const CacheKey&) const = default;
};

// The key of a compiled kernel: SHA-256 of (kernel source, compile options, NVRTC version, target
// arch such as "sm_90", kRuntimeCacheFormatVersion), each field length-prefixed so no two field
// lists collide. `options` is the compile options as one string (join them with a separator that
// cannot occur inside an option, e.g. '\n').
CacheKey make_cache_key(std::string_view source, std::string_view options, int nvrtc_version,
                        std::string_view arch);
// The key of a tuning decision (e.g. the cuBLASLt algorithm for one GEMM problem): SHA-256 of
// (`problem`, a complete description of the problem such as layouts, dtypes, m/n/k and epilogue;
// the library's version; the arch; kRuntimeCacheFormatVersion). Never equal to a kernel key.
CacheKey make_tuning_key(std::string_view problem, int library_version, std::string_view arch);

// Does the one-time set-up of the digest behind the keys (OpenSSL loading its provider, about a
// millisecond) now, so that a later make_cache_key on a start-up's critical path does not; a
// helper thread may call it while the caller does other work. Thread-safe.
void prepare_cache_keys();

enum class CacheEntryKind : uint8_t {
  kCubin = 1,   // "cubin": machine code (or PTX) from NVRTC
  kTuning = 2,  // "tuning": a tuning decision, an opaque string the backend understands
};
std::string_view to_string(CacheEntryKind kind);

// What an entry is, for humans and `kiln cache info`; never part of the key.
struct CacheEntryMeta {
  CacheEntryKind kind = CacheEntryKind::kCubin;
  std::string name;  // e.g. the kernel name; at most 4096 bytes
  std::string arch;  // e.g. "sm_90"; at most 64 bytes
};

// A value found in the cache. `bytes` is shared and immutable: holding it costs no copy and stays
// valid after the entry is evicted or the cache destroyed.
struct CacheValue {
  CacheEntryMeta meta;
  std::shared_ptr<const std::vector<uint8_t>> bytes;  // never null

  std::span<const uint8_t> span() const { return {bytes->data(), bytes->size()}; }
  std::string_view text() const {
    return {reinterpret_cast<const char*>(bytes->data()), bytes->size()};
  }
};

struct CacheOptions {
  // The size bound of the file and of the handle's memory: entries' encoded size in bytes. Least
  // recently used entries are evicted beyond it. Only the first open() of a path uses the options;
  // set_max_bytes() changes the bound later.
  uint64_t max_bytes = kRuntimeCacheDefaultMaxBytes;
  // Never write the file (for tools that only look): no automatic saves, and save() and clear()
  // fail with kInvalidArgument. Lookups and inserts work in memory.
  bool read_only = false;
};

struct CacheStats {
  uint64_t entries = 0;
  uint64_t bytes = 0;            // encoded size of all entries (about the file size)
  uint64_t hits = 0;             // lookups that found an entry, by this handle
  uint64_t misses = 0;           // lookups that did not
  uint64_t inserts = 0;          // insert() calls that added or replaced an entry
  uint64_t evictions = 0;        // entries evicted by the size bound, by this handle
  uint64_t saves = 0;            // files written by this handle
  uint64_t recorded_hits = 0;    // the entries' hit counts summed (persisted across processes)
  uint64_t skipped_records = 0;  // corrupt or truncated records skipped by this handle's loads
                                 // (an ignored foreign or other-version file counts as one)
  std::map<std::string, uint64_t> archs;  // entries per arch
  std::map<std::string, uint64_t> kinds;  // entries per kind ("cubin", "tuning")
};

// One entry as listed by entries(): metadata and counters, no bytes.
struct CacheEntryInfo {
  CacheKey key;
  CacheEntryMeta meta;
  uint64_t size = 0;         // blob bytes
  uint64_t last_use_us = 0;  // unix time of the last use, microseconds
  uint64_t hits = 0;         // recorded hits, including this process's
};

// What verify() found in a cache file.
struct CacheVerifyReport {
  struct Problem {
    uint64_t offset = 0;  // file offset of the bad record (or 0 for the file header)
    std::string reason;  // e.g. "checksum mismatch", "truncated: record needs 4096 bytes, 100 left"
  };
  bool exists = false;     // false: there is no file (which is a valid, empty cache)
  bool compatible = true;  // false: foreign magic or another format version (see problems)
  uint64_t file_bytes = 0;
  uint64_t valid_records = 0;
  std::vector<Problem> problems;  // empty when the file is intact; the first 1000 only
  uint64_t problem_count = 0;     // all of them

  bool ok() const { return compatible && problem_count == 0; }
};

class RuntimeCache {
 public:
  // The one handle for the canonical form of `path` (std::filesystem::weakly_canonical of its
  // absolute form), loading the file on the first open. A missing file is an empty cache; its
  // folder is created on the first save. Errors: kInvalidArgument for an empty path or a bad
  // option; kIoError when the file exists but cannot be read (permissions, a directory).
  static Result<std::shared_ptr<RuntimeCache>> open(const std::string& path,
                                                    CacheOptions options = {});
  // The handle a resolved runtime_cache setting names: a path -> open(path), a handle -> that
  // handle, none -> null. The backends' one call.
  static Result<std::shared_ptr<RuntimeCache>> for_setting(const ResolvedSettings& settings);
  // Reads and checks the file at `path` without opening a handle (what `kiln cache verify` does).
  // Errors: kIoError when the file exists but cannot be read.
  static Result<CacheVerifyReport> verify_file(const std::string& path);

  RuntimeCache(const RuntimeCache&) = delete;
  RuntimeCache& operator=(const RuntimeCache&) = delete;
  // Saves if anything changed since the last save (errors are logged).
  ~RuntimeCache();

  // The canonical path of the file.
  const std::string& path() const { return path_; }

  // The value under `key`, counting a hit (and refreshing the entry's last use) or a miss.
  std::optional<CacheValue> lookup(const CacheKey& key);
  // Adds or replaces the value under `key`, then evicts least-recently-used entries while the
  // handle holds more than max_bytes. Errors: kInvalidArgument for a name or arch over its limit,
  // kResourceExhausted for a value larger than max_bytes by itself.
  Status insert(const CacheKey& key, std::span<const uint8_t> bytes, const CacheEntryMeta& meta);
  Status insert(const CacheKey& key, std::string_view text, const CacheEntryMeta& meta);
  // lookup(), and on a miss calls `produce` (e.g. an NVRTC compile), inserts what it returns and
  // returns that. Concurrent callers for the same key may each produce (de-duplication is the
  // caller's job, e.g. the kernel table's). Errors: `produce`'s, or insert()'s.
  Result<CacheValue> get_or_produce(const CacheKey& key, const CacheEntryMeta& meta,
                                    const std::function<Result<std::vector<uint8_t>>()>& produce);

  // Merges this handle into the file and rewrites it (see the top of this header); afterwards the
  // handle also holds the entries other processes saved. Errors: kIoError (folder cannot be
  // created, lock or write refused, disk full); the file is then unchanged.
  Status save();
  // Removes every entry from this handle and from the file (which becomes an empty cache), under
  // the lock. Other live processes may add their entries back on their next save.
  Status clear();
  // Checks this handle's file as verify_file() does.
  Result<CacheVerifyReport> verify() const;

  CacheStats stats() const;
  // Every entry's metadata, most recently used first.
  std::vector<CacheEntryInfo> entries() const;
  uint64_t max_bytes() const;
  // Changes the size bound; evicts at once if the handle holds more.
  void set_max_bytes(uint64_t max_bytes);

 private:
  struct Impl;
  RuntimeCache(std::string path, CacheOptions options);

  std::string path_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln
