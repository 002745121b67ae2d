#include "runtime/runtime_cache_file.h"

#include <cstring>
#include <string>

namespace kiln::internal {
namespace {

uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
uint64_t load_u64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

// A record prefix at `p` (16 bytes available) whose marker and prefix checksum hold.
bool prefix_valid(const uint8_t* p) {
  return load_u32(p) == kCacheRecordMarker &&
         load_u32(p + 12) == format::crc32_of(std::span<const uint8_t>(p, 12));
}

class ProblemList {
 public:
  explicit ProblemList(CacheScan* scan) : scan_(scan) {}
  void add(uint64_t offset, std::string reason) {
    ++scan_->problem_count;
    if (scan_->problems.size() < kCacheMaxReportedProblems) {
      scan_->problems.push_back({offset, std::move(reason)});
    }
  }

 private:
  CacheScan* scan_;
};

// Decodes a body whose checksum held. Returns an empty string on success, else the reason.
std::string decode_body(std::span<const uint8_t> body, CacheRecordView* r) {
  if (body.size() < kCacheRecordFixedBodyBytes) {
    return "body of " + std::to_string(body.size()) + " bytes is shorter than the " +
           std::to_string(kCacheRecordFixedBodyBytes) + "-byte minimum";
  }
  const uint8_t* p = body.data();
  std::memcpy(r->key.bytes.data(), p, 32);
  uint8_t kind = p[32];
  if (kind != static_cast<uint8_t>(CacheEntryKind::kCubin) &&
      kind != static_cast<uint8_t>(CacheEntryKind::kTuning)) {
    return "unknown entry kind " + std::to_string(kind);
  }
  r->kind = static_cast<CacheEntryKind>(kind);
  r->last_use_us = load_u64(p + 36);
  r->hits = load_u64(p + 44);
  size_t pos = 52;
  size_t left = body.size() - pos;
  auto string_field = [&](size_t limit, const char* what, std::string_view* out) -> std::string {
    if (left < 4) return std::string(what) + " length is cut off";
    uint32_t n = load_u32(p + pos);
    pos += 4;
    left -= 4;
    if (n > limit) {
      return std::string(what) + " length " + std::to_string(n) + " exceeds the limit of " +
             std::to_string(limit);
    }
    if (n > left) {
      return std::string(what) + " length " + std::to_string(n) + " exceeds the " +
             std::to_string(left) + " bytes left in the record";
    }
    *out = std::string_view(reinterpret_cast<const char*>(p + pos), n);
    pos += n;
    left -= n;
    return "";
  };
  if (std::string e = string_field(kCacheMaxNameBytes, "name", &r->name); !e.empty()) return e;
  if (std::string e = string_field(kCacheMaxArchBytes, "arch", &r->arch); !e.empty()) return e;
  r->blob = body.subspan(pos);
  return "";
}

}  // namespace

CacheScan cache_scan(std::span<const uint8_t> file,
                     const std::function<void(const CacheRecordView&)>& on_record) {
  CacheScan scan;
  ProblemList problems(&scan);
  if (file.empty()) return scan;
  if (file.size() < kCacheHeaderBytes ||
      std::memcmp(file.data(), kCacheMagic, sizeof(kCacheMagic)) != 0) {
    scan.state = CacheFileState::kForeignMagic;
    problems.add(0, file.size() < kCacheHeaderBytes && file.size() >= 8 &&
                            std::memcmp(file.data(), kCacheMagic, 8) == 0
                        ? "the file header is cut short"
                        : "not a kiln runtime cache (unknown magic)");
    return scan;
  }
  scan.version = load_u32(file.data() + 8);
  if (scan.version != kRuntimeCacheFormatVersion) {
    scan.state = CacheFileState::kOtherVersion;
    problems.add(8, "format version " + std::to_string(scan.version) + ", this kiln reads " +
                        std::to_string(kRuntimeCacheFormatVersion));
    return scan;
  }
  scan.state = CacheFileState::kOk;

  const uint8_t* base = file.data();
  const size_t size = file.size();
  size_t pos = kCacheHeaderBytes;
  while (pos < size) {
    size_t left = size - pos;
    if (left < kCacheRecordPrefixBytes) {
      problems.add(pos, "truncated: " + std::to_string(left) + " trailing bytes");
      break;
    }
    if (!prefix_valid(base + pos)) {
      // The length cannot be trusted: resynchronise on the next valid prefix.
      size_t next = pos + 1;
      while (next + kCacheRecordPrefixBytes <= size && !prefix_valid(base + next)) ++next;
      if (next + kCacheRecordPrefixBytes > size) next = size;
      problems.add(pos, "bad record header; skipped " + std::to_string(next - pos) + " bytes");
      pos = next;
      continue;
    }
    uint64_t body_len = load_u32(base + pos + 4);
    if (body_len > left - kCacheRecordPrefixBytes) {
      problems.add(pos, "truncated: record needs " +
                            std::to_string(kCacheRecordPrefixBytes + body_len) + " bytes, " +
                            std::to_string(left) + " left");
      break;
    }
    std::span<const uint8_t> body(base + pos + kCacheRecordPrefixBytes, body_len);
    size_t record_end = pos + kCacheRecordPrefixBytes + body_len;
    if (format::crc32_of(body) != load_u32(base + pos + 8)) {
      problems.add(pos, "checksum mismatch");
      pos = record_end;
      continue;
    }
    CacheRecordView r;
    r.offset = pos;
    if (std::string reason = decode_body(body, &r); !reason.empty()) {
      problems.add(pos, "malformed record: " + reason);
      pos = record_end;
      continue;
    }
    ++scan.valid_records;
    on_record(r);
    pos = record_end;
  }
  return scan;
}

void cache_append_header(format::ByteWriter& out) {
  out.bytes(kCacheMagic, sizeof(kCacheMagic));
  out.u32(kRuntimeCacheFormatVersion);
  out.u32(0);
}

void cache_append_record(format::ByteWriter& out, const CacheKey& key, CacheEntryKind kind,
                         uint64_t last_use_us, uint64_t hits, std::string_view name,
                         std::string_view arch, std::span<const uint8_t> blob) {
  std::vector<uint8_t>& buf = out.buffer();
  size_t start = buf.size();
  uint64_t body_len =
      cache_record_size(name.size(), arch.size(), blob.size()) - kCacheRecordPrefixBytes;
  out.u32(kCacheRecordMarker);
  out.u32(static_cast<uint32_t>(body_len));
  out.u32(0);  // body crc, patched below
  out.u32(0);  // prefix crc, patched below
  size_t body_start = buf.size();
  out.bytes(key.bytes.data(), key.bytes.size());
  out.u8(static_cast<uint8_t>(kind));
  out.u8(0);
  out.u8(0);
  out.u8(0);
  out.u64(last_use_us);
  out.u64(hits);
  out.str(name);
  out.str(arch);
  out.bytes(blob.data(), blob.size());
  auto patch = [&](size_t at, uint32_t v) { std::memcpy(buf.data() + at, &v, 4); };
  patch(start + 8, format::crc32_of(std::span<const uint8_t>(buf).subspan(body_start)));
  patch(start + 12, format::crc32_of(std::span<const uint8_t>(buf.data() + start, 12)));
}

}  // namespace kiln::internal
