// Damaged runtime cache files: truncation, flipped bytes, foreign or other-version headers, huge
// lengths. Each loads with a warning, keeps every intact record and never crashes.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <random>

#include "kiln/runtime_cache.h"
#include "runtime/runtime_cache_file.h"
#include "runtime/runtime_cache_impl.h"
#include "runtime/runtime_cache_test_util.h"

namespace kiln {
namespace {

using internal::CacheFileState;
using internal::CacheScan;
using testing_cache::TempDir;
using testing_cache::test_blob;
using testing_cache::test_key;
using testing_cache::test_meta;

constexpr int kRecords = 8;

struct Sample {
  std::vector<uint8_t> bytes;
  std::vector<size_t> record_start;  // kRecords + 1 entries: the last is the file's end
};

Sample make_sample() {
  Sample s;
  format::ByteWriter w;
  internal::cache_append_header(w);
  for (int i = 0; i < kRecords; ++i) {
    s.record_start.push_back(w.size());
    CacheEntryMeta m = test_meta("s", i);
    internal::cache_append_record(w, test_key("s", i), m.kind, 100 + i, i, m.name, m.arch,
                                  test_blob("s", i, 40 + 13 * i));
  }
  s.record_start.push_back(w.size());
  s.bytes = w.take();
  return s;
}

// Scans `bytes` and checks that every record found is one of the sample's, intact.
CacheScan scan_checked(std::span<const uint8_t> bytes, std::set<int>* found) {
  return internal::cache_scan(bytes, [&](const internal::CacheRecordView& r) {
    for (int i = 0; i < kRecords; ++i) {
      if (r.key != test_key("s", i)) continue;
      EXPECT_EQ(std::vector<uint8_t>(r.blob.begin(), r.blob.end()), test_blob("s", i, 40 + 13 * i));
      EXPECT_EQ(r.name, test_meta("s", i).name);
      EXPECT_EQ(r.hits, static_cast<uint64_t>(i));
      found->insert(i);
      return;
    }
    ADD_FAILURE() << "a record that was never written, at offset " << r.offset;
  });
}

TEST(RuntimeCacheCorruptionTest, IntactSampleScansClean) {
  Sample s = make_sample();
  std::set<int> found;
  CacheScan scan = scan_checked(s.bytes, &found);
  EXPECT_EQ(scan.state, CacheFileState::kOk);
  EXPECT_EQ(scan.problem_count, 0u);
  EXPECT_EQ(found.size(), static_cast<size_t>(kRecords));
}

TEST(RuntimeCacheCorruptionTest, TruncationKeepsEveryWholeRecordBeforeTheCut) {
  Sample s = make_sample();
  for (size_t cut = 0; cut <= s.bytes.size(); ++cut) {
    std::set<int> found;
    CacheScan scan = scan_checked(std::span(s.bytes).first(cut), &found);
    int whole = 0;
    while (whole < kRecords && s.record_start[whole + 1] <= cut) ++whole;
    if (cut == 0) {
      EXPECT_EQ(scan.state, CacheFileState::kEmpty);
    } else if (cut < internal::kCacheHeaderBytes) {
      EXPECT_EQ(scan.state, CacheFileState::kForeignMagic) << cut;
    } else {
      EXPECT_EQ(scan.state, CacheFileState::kOk) << cut;
      EXPECT_EQ(found.size(), static_cast<size_t>(whole)) << "cut at " << cut;
      bool at_boundary =
          cut == internal::kCacheHeaderBytes ||
          std::find(s.record_start.begin(), s.record_start.end(), cut) != s.record_start.end();
      EXPECT_EQ(scan.problem_count, at_boundary ? 0u : 1u) << "cut at " << cut;
    }
  }
}

TEST(RuntimeCacheCorruptionTest, AFlippedByteLosesOnlyItsRecord) {
  Sample s = make_sample();
  for (size_t pos = 0; pos < s.bytes.size(); ++pos) {
    for (uint8_t mask : {uint8_t{0x01}, uint8_t{0x80}, uint8_t{0xff}}) {
      std::vector<uint8_t> bad = s.bytes;
      bad[pos] ^= mask;
      std::set<int> found;
      CacheScan scan = scan_checked(bad, &found);
      if (pos < 12) {  // magic or version: the whole file is ignored
        EXPECT_NE(scan.state, CacheFileState::kOk) << pos;
        EXPECT_TRUE(found.empty());
        continue;
      }
      EXPECT_EQ(scan.state, CacheFileState::kOk);
      if (pos < internal::kCacheHeaderBytes) {  // the reserved word is not checked
        EXPECT_EQ(found.size(), static_cast<size_t>(kRecords)) << pos;
        continue;
      }
      int hit = 0;
      while (s.record_start[hit + 1] <= pos) ++hit;
      EXPECT_EQ(found.size(), static_cast<size_t>(kRecords - 1)) << "byte " << pos;
      EXPECT_FALSE(found.contains(hit)) << "byte " << pos;
      EXPECT_GE(scan.problem_count, 1u);
    }
  }
}

TEST(RuntimeCacheCorruptionTest, RandomDamageNeverYieldsAWrongRecord) {
  Sample s = make_sample();
  std::mt19937 rng(1234);
  for (int round = 0; round < 3000; ++round) {
    std::vector<uint8_t> bad = s.bytes;
    int edits = 1 + static_cast<int>(rng() % 8);
    for (int e = 0; e < edits && !bad.empty(); ++e) {
      size_t pos = rng() % bad.size();
      switch (rng() % 4) {
        case 0:
          bad[pos] = static_cast<uint8_t>(rng());
          break;
        case 1:
          bad.resize(std::max<size_t>(pos, 1));
          break;
        case 2:
          bad.insert(bad.begin() + pos, static_cast<uint8_t>(rng()));
          break;
        case 3:
          bad.erase(bad.begin() + pos);
          break;
      }
    }
    std::set<int> found;
    (void)scan_checked(bad, &found);
  }
}

// A record whose prefix (and so its length) checks out but claims more bytes than there are.
TEST(RuntimeCacheCorruptionTest, HugeLengthsAreRejectedWithoutAllocating) {
  Sample s = make_sample();
  std::vector<uint8_t> bad(s.bytes.begin(), s.bytes.begin() + s.record_start[2]);
  uint8_t prefix[16];
  uint32_t marker = internal::kCacheRecordMarker, len = 0xFFFFFFF0u, body_crc = 0;
  std::memcpy(prefix, &marker, 4);
  std::memcpy(prefix + 4, &len, 4);
  std::memcpy(prefix + 8, &body_crc, 4);
  uint32_t crc = format::crc32_of(std::span<const uint8_t>(prefix, 12));
  std::memcpy(prefix + 12, &crc, 4);
  bad.insert(bad.end(), prefix, prefix + 16);
  bad.insert(bad.end(), 100, 0);
  std::set<int> found;
  CacheScan scan = scan_checked(bad, &found);
  EXPECT_EQ(found, (std::set<int>{0, 1}));
  ASSERT_EQ(scan.problem_count, 1u);
  EXPECT_NE(scan.problems[0].reason.find("truncated: record needs 4294967296 bytes"),
            std::string::npos)
      << scan.problems[0].reason;

  // A name length beyond the record, inside a body whose checksum holds: that record is skipped.
  Sample t = make_sample();
  size_t r = t.record_start[3] + internal::kCacheRecordPrefixBytes + 52;  // the name length
  uint32_t huge = 0x7FFFFFFF;
  std::memcpy(t.bytes.data() + r, &huge, 4);
  size_t body = t.record_start[3] + 16, body_len = t.record_start[4] - body;
  uint32_t fixed = format::crc32_of(std::span<const uint8_t>(t.bytes.data() + body, body_len));
  std::memcpy(t.bytes.data() + t.record_start[3] + 8, &fixed, 4);
  crc = format::crc32_of(std::span<const uint8_t>(t.bytes.data() + t.record_start[3], 12));
  std::memcpy(t.bytes.data() + t.record_start[3] + 12, &crc, 4);
  found.clear();
  scan = scan_checked(t.bytes, &found);
  EXPECT_EQ(found.size(), static_cast<size_t>(kRecords - 1));
  EXPECT_FALSE(found.contains(3));
  ASSERT_EQ(scan.problem_count, 1u);
  EXPECT_NE(scan.problems[0].reason.find("name length"), std::string::npos);
}

TEST(RuntimeCacheCorruptionTest, AdversarialFilesScanInLinearTime) {
  // 4 MiB of record markers, and of valid prefixes whose bodies all fail their checksum.
  std::vector<uint8_t> markers(internal::kCacheHeaderBytes, 0);
  std::memcpy(markers.data(), internal::kCacheMagic, 8);
  markers[8] = static_cast<uint8_t>(kRuntimeCacheFormatVersion);
  std::vector<uint8_t> prefixes = markers;
  for (int i = 0; i < (1 << 20); ++i) {
    uint32_t m = internal::kCacheRecordMarker;
    markers.insert(markers.end(), reinterpret_cast<uint8_t*>(&m),
                   reinterpret_cast<uint8_t*>(&m) + 4);
  }
  for (int i = 0; i < (1 << 18); ++i) {
    uint8_t p[16];
    uint32_t m = internal::kCacheRecordMarker, len = 0, bcrc = 1;
    std::memcpy(p, &m, 4);
    std::memcpy(p + 4, &len, 4);
    std::memcpy(p + 8, &bcrc, 4);
    uint32_t crc = format::crc32_of(std::span<const uint8_t>(p, 12));
    std::memcpy(p + 12, &crc, 4);
    prefixes.insert(prefixes.end(), p, p + 16);
  }
  for (const auto* file : {&markers, &prefixes}) {
    auto start = std::chrono::steady_clock::now();
    std::set<int> found;
    CacheScan scan = scan_checked(*file, &found);
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_TRUE(found.empty());
    EXPECT_GE(scan.problem_count, 1u);
    EXPECT_LE(scan.problems.size(), internal::kCacheMaxReportedProblems);
    EXPECT_LT(s, 5.0);  // quadratic work would take hours
  }
}

// Through the handle: a damaged file loads with a warning, the damaged entry is a miss (its kernel
// recompiles), and the next save rewrites a clean file.
TEST(RuntimeCacheCorruptionTest, DamagedFileLoadsWithWarningAndIsRepairedBySave) {
  TempDir dir;
  std::string path = dir.file("damaged.kcache");
  Sample s = make_sample();
  s.bytes[s.record_start[5] + 40] ^= 0x55;  // inside record 5's body
  ASSERT_TRUE(platform::write_file_atomic(path, s.bytes).ok());

  ::testing::internal::CaptureStderr();
  Result<std::shared_ptr<RuntimeCache>> cache = RuntimeCache::open(path);
  std::string err = ::testing::internal::GetCapturedStderr();
  ASSERT_TRUE(cache.ok()) << cache.status().to_string();
  EXPECT_NE(err.find("skipped 1 corrupt or truncated record"), std::string::npos) << err;
  EXPECT_NE(err.find(path), std::string::npos) << err;
  EXPECT_EQ((*cache)->stats().entries, static_cast<uint64_t>(kRecords - 1));
  EXPECT_EQ((*cache)->stats().skipped_records, 1u);
  EXPECT_FALSE((*cache)->lookup(test_key("s", 5)).has_value());
  EXPECT_TRUE((*cache)->lookup(test_key("s", 6)).has_value());
  Result<CacheVerifyReport> before = RuntimeCache::verify_file(path);
  ASSERT_TRUE(before.ok());
  EXPECT_FALSE(before->ok());
  ASSERT_EQ(before->problems.size(), 1u);
  EXPECT_EQ(before->problems[0].offset, s.record_start[5]);
  EXPECT_EQ(before->problems[0].reason, "checksum mismatch");

  cache->reset();  // the destructor saves: the file was damaged
  Result<CacheVerifyReport> after = RuntimeCache::verify_file(path);
  ASSERT_TRUE(after.ok());
  EXPECT_TRUE(after->ok());
  EXPECT_EQ(after->valid_records, static_cast<uint64_t>(kRecords - 1));
}

TEST(RuntimeCacheCorruptionTest, ForeignOrOtherVersionFileIsIgnoredThenReplaced) {
  for (int variant = 0; variant < 3; ++variant) {
    TempDir dir;
    std::string path = dir.file("c.kcache");
    Sample s = make_sample();
    std::vector<uint8_t> bytes = s.bytes;
    if (variant == 0) std::memcpy(bytes.data(), "GGUF\0\0\0\0", 8);  // foreign magic
    if (variant == 1) bytes[8] = kRuntimeCacheFormatVersion + 1;     // a newer kiln's file
    if (variant == 2) bytes.assign({'K', 'I', 'L', 'N', 'K'});       // a header cut short
    ASSERT_TRUE(platform::write_file_atomic(path, bytes).ok());

    Result<CacheVerifyReport> report = RuntimeCache::verify_file(path);
    ASSERT_TRUE(report.ok());
    EXPECT_FALSE(report->compatible) << variant;
    EXPECT_FALSE(report->ok());

    ::testing::internal::CaptureStderr();
    Result<std::shared_ptr<RuntimeCache>> cache = RuntimeCache::open(path);
    std::string err = ::testing::internal::GetCapturedStderr();
    ASSERT_TRUE(cache.ok());
    EXPECT_NE(err.find("it will be replaced on the next save"), std::string::npos) << err;
    EXPECT_EQ((*cache)->stats().entries, 0u);
    ASSERT_TRUE((*cache)->insert(test_key("n", 0), test_blob("n", 0, 9), test_meta("n", 0)).ok());
    ASSERT_TRUE((*cache)->save().ok());
    testing_cache::FileContent f = testing_cache::read_cache_file(path);
    EXPECT_EQ(f.scan.state, CacheFileState::kOk);
    EXPECT_EQ(f.scan.problem_count, 0u);
    EXPECT_EQ(f.blobs.size(), 1u);
  }
}

TEST(RuntimeCacheCorruptionTest, LoadingALargeFileKeepsMemoryWithinTheBound) {
  TempDir dir;
  std::string path = dir.file("big.kcache");
  format::ByteWriter w;
  internal::cache_append_header(w);
  for (int i = 0; i < 400; ++i) {
    CacheEntryMeta m = test_meta("b", i);
    internal::cache_append_record(w, test_key("b", i), m.kind, 1 + i, 0, m.name, m.arch,
                                  test_blob("b", i, 1000));
  }
  ASSERT_TRUE(platform::write_file_atomic(path, w.buffer()).ok());
  // The bound is checked as records stream in (at most twice the bound is ever held).
  uint64_t bound = 20 * internal::cache_record_size(8, 5, 1000);
  Result<internal::CacheLoad> load = internal::cache_load(path, bound, nullptr);
  ASSERT_TRUE(load.ok());
  uint64_t total = 0;
  for (const auto& [k, e] : load->entries) total += e.encoded_size();
  EXPECT_LE(total, bound);
  EXPECT_EQ(load->entries.size() + load->evictions, 400u);
  EXPECT_TRUE(load->entries.contains(test_key("b", 399)));  // the most recent survive
  EXPECT_FALSE(load->entries.contains(test_key("b", 0)));
}

}  // namespace
}  // namespace kiln
