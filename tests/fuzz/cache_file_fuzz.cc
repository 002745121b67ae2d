// libFuzzer target for the runtime cache file scanner; built by tools/fuzz.sh (CMake option
// KILN_FUZZ).
//
// Each input is scanned as is, then again with every record checksum recomputed (wherever a
// record marker sits), so that mutations get past the crc checks and reach the body decoder.
// Every record the scanner accepts must lie inside the input and within the field limits, and
// must re-encode into a file that scans back to the same records with no problems.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "format/byte_io.h"
#include "runtime/runtime_cache_file.h"

namespace {

using kiln::internal::CacheRecordView;

struct Record {
  kiln::CacheKey key;
  kiln::CacheEntryKind kind;
  uint64_t last_use_us, hits;
  std::string name, arch;
  std::vector<uint8_t> blob;
  bool operator==(const Record&) const = default;
};

void check(bool ok) {
  if (!ok) std::abort();
}

std::vector<Record> scan(std::span<const uint8_t> file) {
  std::vector<Record> out;
  uint64_t covered = 0;
  kiln::internal::CacheScan s = kiln::internal::cache_scan(file, [&](const CacheRecordView& r) {
    check(r.name.size() <= kiln::internal::kCacheMaxNameBytes);
    check(r.arch.size() <= kiln::internal::kCacheMaxArchBytes);
    const uint8_t* b = reinterpret_cast<const uint8_t*>(r.name.data());
    check(b >= file.data() && b + r.name.size() <= file.data() + file.size());
    check(r.blob.empty() || (r.blob.data() >= file.data() &&
                             r.blob.data() + r.blob.size() <= file.data() + file.size()));
    covered += kiln::internal::cache_record_size(r.name.size(), r.arch.size(), r.blob.size());
    out.push_back({r.key, r.kind, r.last_use_us, r.hits, std::string(r.name), std::string(r.arch),
                   std::vector<uint8_t>(r.blob.begin(), r.blob.end())});
  });
  check(covered <= file.size());
  check(s.problems.size() <= kiln::internal::kCacheMaxReportedProblems);
  check(s.problems.size() <= s.problem_count);
  return out;
}

void put_u32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }

// Recomputes the checksums of every record prefix that has a marker, clamping its length.
void repair(std::vector<uint8_t>& f) {
  using namespace kiln::internal;
  size_t pos = kCacheHeaderBytes;
  while (pos + kCacheRecordPrefixBytes <= f.size()) {
    uint32_t marker;
    std::memcpy(&marker, &f[pos], 4);
    if (marker != kCacheRecordMarker) {
      ++pos;
      continue;
    }
    uint32_t len;
    std::memcpy(&len, &f[pos + 4], 4);
    size_t left = f.size() - pos - kCacheRecordPrefixBytes;
    if (len > left) len = static_cast<uint32_t>(left);
    put_u32(&f[pos + 4], len);
    put_u32(&f[pos + 8], kiln::format::crc32_of(std::span<const uint8_t>(&f[pos + 16], len)));
    put_u32(&f[pos + 12], kiln::format::crc32_of(std::span<const uint8_t>(&f[pos], 12)));
    pos += kCacheRecordPrefixBytes + len;
  }
}

void round_trip(const std::vector<Record>& records) {
  kiln::format::ByteWriter w;
  kiln::internal::cache_append_header(w);
  for (const Record& r : records) {
    kiln::internal::cache_append_record(w, r.key, r.kind, r.last_use_us, r.hits, r.name, r.arch,
                                        r.blob);
  }
  std::vector<uint8_t> bytes = w.take();
  kiln::internal::CacheScan s = kiln::internal::cache_scan(bytes, [](const CacheRecordView&) {});
  check(s.problem_count == 0);
  check(scan(bytes) == records);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> input(data, size);
  round_trip(scan(input));
  std::vector<uint8_t> repaired(data, data + size);
  repair(repaired);
  round_trip(scan(repaired));
  return 0;
}
