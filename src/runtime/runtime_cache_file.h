// The runtime cache file's byte layout: encoding, and a scanner for untrusted bytes.
// docs/runtime_modes.md ("Runtime cache") documents the layout for users.
//
//   header  16 bytes: magic "KILNKCH\0", u32 format version, u32 reserved (0)
//   record  prefix 16 bytes: u32 marker "KREC", u32 body length, u32 crc32(body),
//                            u32 crc32(the prefix's first 12 bytes)
//           body: key[32], u8 kind, 3 reserved bytes, u64 last use (unix us), u64 hits,
//                 u32 name length, name, u32 arch length, arch, blob (the rest of the body)
// All integers little-endian. The prefix checksum makes a corrupt length detectable before it is
// used, so the scanner can skip a bad body by its (checked) length, and resynchronise on the next
// valid prefix after a bad one, without ever doing more than linear work.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string_view>
#include <vector>

#include "format/byte_io.h"
#include "kiln/runtime_cache.h"

namespace kiln::internal {

inline constexpr char kCacheMagic[8] = {'K', 'I', 'L', 'N', 'K', 'C', 'H', '\0'};
inline constexpr size_t kCacheHeaderBytes = 16;
inline constexpr uint32_t kCacheRecordMarker = 0x4345524B;  // "KREC" little-endian
inline constexpr size_t kCacheRecordPrefixBytes = 16;
inline constexpr size_t kCacheRecordFixedBodyBytes = 32 + 4 + 8 + 8 + 4 + 4;
inline constexpr size_t kCacheMaxNameBytes = 4096;
inline constexpr size_t kCacheMaxArchBytes = 64;
// Records are at most this long (the body length is a u32).
inline constexpr uint64_t kCacheMaxRecordBytes = kCacheRecordPrefixBytes + UINT32_MAX;
// verify reports keep at most this many problems (and count the rest).
inline constexpr size_t kCacheMaxReportedProblems = 1000;

// One valid record, viewing the scanned bytes (copy what you keep).
struct CacheRecordView {
  CacheKey key;
  CacheEntryKind kind = CacheEntryKind::kCubin;
  uint64_t last_use_us = 0;
  uint64_t hits = 0;
  std::string_view name;
  std::string_view arch;
  std::span<const uint8_t> blob;
  uint64_t offset = 0;  // of the record's prefix in the file
};

// The encoded size of a record: what the size bound counts.
inline uint64_t cache_record_size(size_t name_bytes, size_t arch_bytes, size_t blob_bytes) {
  return kCacheRecordPrefixBytes + kCacheRecordFixedBodyBytes + name_bytes + arch_bytes +
         blob_bytes;
}

enum class CacheFileState : uint8_t {
  kEmpty,         // zero bytes (or no file): an empty cache
  kOk,            // our magic and version; records were scanned
  kForeignMagic,  // not a kiln runtime cache (or a header cut short)
  kOtherVersion,  // a kiln runtime cache of another format version
};

struct CacheScan {
  CacheFileState state = CacheFileState::kEmpty;
  uint32_t version = 0;  // when kOk or kOtherVersion
  uint64_t valid_records = 0;
  std::vector<CacheVerifyReport::Problem> problems;  // first kCacheMaxReportedProblems
  uint64_t problem_count = 0;
};

// Scans `file`, calling `on_record` for each valid record in file order. Never reads outside
// `file`, allocates only for the problem list (bounded), and does linear work in file.size().
CacheScan cache_scan(std::span<const uint8_t> file,
                     const std::function<void(const CacheRecordView&)>& on_record);

// Appends the file header.
void cache_append_header(format::ByteWriter& out);
// Appends one record. The caller keeps name <= kCacheMaxNameBytes, arch <= kCacheMaxArchBytes and
// the body under 4 GiB (insert() enforces it).
void cache_append_record(format::ByteWriter& out, const CacheKey& key, CacheEntryKind kind,
                         uint64_t last_use_us, uint64_t hits, std::string_view name,
                         std::string_view arch, std::span<const uint8_t> blob);

}  // namespace kiln::internal
