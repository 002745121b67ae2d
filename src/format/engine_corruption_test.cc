// The reader against damaged and forged files: it must return a clear error and never crash,
// read out of bounds or allocate in proportion to a forged size field.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>
#include <random>

#include "format/engine_file.h"
#include "format/engine_test_util.h"

// GCC flags free() in a replaced operator delete as mismatched with the inlined operator new it
// cannot see is replaced too; both sides use malloc/free here.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

// Tracks the largest single heap request so a test can assert that a forged count did not turn
// into a huge allocation. Replaces the global operator new for this test binary only.
static std::atomic<size_t> g_largest_alloc{0};
void* operator new(size_t n) {
  size_t prev = g_largest_alloc.load(std::memory_order_relaxed);
  while (n > prev && !g_largest_alloc.compare_exchange_weak(prev, n)) {
  }
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t n) { return operator new(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }

namespace kiln::format {
namespace {

using namespace kiln::format::testing;

std::vector<uint8_t> sample_bytes() {
  auto bytes = engine_serialize(sample_model());
  EXPECT_TRUE(bytes.ok()) << bytes.status().to_string();
  return *bytes;
}

void expect_invalid(const Result<EngineModel>& r, const std::string& needle,
                    const std::string& ctx) {
  ASSERT_FALSE(r.ok()) << ctx;
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidData) << ctx << ": " << r.status().message();
  EXPECT_NE(r.status().message().find(needle), std::string::npos)
      << ctx << ": '" << r.status().message() << "' lacks '" << needle << "'";
}

TEST(EngineCorruptionTest, TruncationAtEverySectionBoundaryIsRejected) {
  std::vector<uint8_t> f = sample_bytes();
  std::vector<size_t> cuts = {0, 1, 7, 8, 39, 40, 41, 40 + 32 * 6 - 1, 40 + 32 * 6};
  for (const RawSection& s : split(f))
    for (int64_t d : {-1, 0, 1})
      for (uint64_t edge : {s.offset, s.offset + s.bytes.size()})
        if (static_cast<int64_t>(edge) + d >= 0 && edge + d < f.size()) cuts.push_back(edge + d);
  std::mt19937 rng(1234);
  for (int i = 0; i < 300; ++i) cuts.push_back(rng() % f.size());
  for (size_t len : cuts) {
    std::vector<uint8_t> cut(f.begin(), f.begin() + len);
    auto r = parse(cut);
    std::string needle = len == 0 ? "empty" : "truncated";
    expect_invalid(r, needle, "cut at " + std::to_string(len));
  }
}

// Shrinking a section (with its checksum made valid again) sends its decoder off the end of the
// data: every shorter length must be refused, naming the section and a file offset.
TEST(EngineCorruptionTest, EveryPrefixOfEverySectionIsRejected) {
  std::vector<uint8_t> f = sample_bytes();
  for (const RawSection& orig : split(f)) {
    if (orig.id == kSectionWeights) continue;  // raw bytes: covered by the next test
    for (size_t len = 0; len < orig.bytes.size(); ++len) {
      auto sections = split(f);
      find(sections, orig.id)->bytes.resize(len);
      auto r = parse(assemble(sections));
      std::string ctx = section_name(orig.id) + " cut to " + std::to_string(len);
      ASSERT_FALSE(r.ok()) << ctx;
      EXPECT_EQ(r.status().code(), StatusCode::kInvalidData) << ctx;
      EXPECT_NE(r.status().message().find("engine " + section_name(orig.id) +
                                          " section at file "
                                          "offset"),
                std::string::npos)
          << ctx << ": " << r.status().message();
    }
  }
}

TEST(EngineCorruptionTest, ShortWeightsSectionIsRejected) {
  std::vector<uint8_t> f = sample_bytes();
  auto sections = split(f);
  RawSection* w = find(sections, kSectionWeights);
  ASSERT_GT(w->bytes.size(), 1u);
  w->bytes.resize(w->bytes.size() - 1);
  expect_invalid(parse(assemble(sections)), "beyond the weights section", "short weights");
}

TEST(EngineCorruptionTest, FlippedBytesAreCaughtByChecksums) {
  std::vector<uint8_t> f = sample_bytes();
  std::vector<std::pair<uint64_t, uint64_t>> ranges = {{0, 40 + 32 * 6}};
  for (const RawSection& s : split(f)) ranges.push_back({s.offset, s.offset + s.bytes.size()});
  size_t flipped = 0;
  for (auto [lo, hi] : ranges) {
    for (uint64_t i = lo; i < hi; ++i) {
      for (uint8_t mask : {0x01, 0x80}) {
        std::vector<uint8_t> g = f;
        g[i] ^= mask;
        auto r = parse(g);
        ASSERT_FALSE(r.ok()) << "flip at " << i;
        ++flipped;
        if (i >= 40 + 32 * 6) {  // inside a section: its checksum names it
          EXPECT_NE(r.status().message().find("checksum mismatch in engine"), std::string::npos)
              << i << ": " << r.status().message();
        }
      }
    }
  }
  EXPECT_GT(flipped, 2000u);
}

// Random damage with the checksums repaired: the decoders themselves must hold up.
TEST(EngineCorruptionTest, RandomMutationsWithValidChecksumsNeverCrash) {
  std::vector<uint8_t> f = sample_bytes();
  auto sections = split(f);
  std::mt19937 rng(42);
  int ok = 0, failed = 0;
  for (int iter = 0; iter < 4000; ++iter) {
    auto s = sections;
    RawSection& victim = s[rng() % s.size()];
    if (victim.bytes.empty()) continue;
    int edits = 1 + rng() % 4;
    for (int e = 0; e < edits; ++e) {
      size_t at = rng() % victim.bytes.size();
      switch (rng() % 4) {
        case 0:
          victim.bytes[at] ^= static_cast<uint8_t>(1u << (rng() % 8));
          break;
        case 1:
          victim.bytes[at] = 0xff;
          break;
        case 2:
          victim.bytes[at] = 0;
          break;
        default:
          victim.bytes.erase(victim.bytes.begin() + at);
          break;
      }
    }
    auto r = parse(assemble(s));
    if (r.ok()) {
      ++ok;
      EXPECT_TRUE(r->graph.validate().ok());
    } else {
      ++failed;
      EXPECT_FALSE(r.status().message().empty());
    }
  }
  EXPECT_GT(failed, 1000);
}

struct Forgery {
  const char* what;
  uint32_t section;  // 0: the fixed header / table
  size_t offset;     // within the section (or file)
  int width;
  uint64_t value;
  const char* needle;
};

TEST(EngineCorruptionTest, HugeCountsAndSizesDoNotAllocate) {
  std::vector<uint8_t> f = sample_bytes();
  const Forgery forgeries[] = {
      {"section count", 0, 12, 4, 0xffffffff, "section table"},
      {"table offset", 0, 16, 8, ~uint64_t{0}, "section table"},
      {"section size", 0, 40 + 16, 8, ~uint64_t{0} - 7, "outside the file"},
      {"section offset", 0, 40 + 8, 8, ~uint64_t{0} - 7, "outside the file"},
      {"engine name length", kSectionHeader, 0, 4, 0xfffffff0, "truncated"},
      {"input binding count", kSectionBindings, 0, 4, 0xffffffff, "count of input bindings"},
      {"value count", kSectionGraph, 0, 4, 0xffffffff, "count of values"},
      {"first value name length", kSectionGraph, 4, 4, 0x7fffffff, "truncated"},
      // Bindings: u32 count, then "x": u32 len + 1 byte, i32 value, u8 dtype, u8 rank_known,
      // u32 rank at offset 15.
      {"input shape rank", kSectionBindings, 15, 4, 0xffffffff, "count of shape dims"},
      {"kernel count", kSectionKernels, 0, 4, 0xffffffff, "count of kernels"},
      {"metadata count", kSectionMetadata, 0, 4, 0xffffffff, "count of metadata"},
  };
  for (const Forgery& fg : forgeries) {
    std::vector<uint8_t> g = f;
    uint64_t base = 0;
    if (fg.section != 0)
      for (const RawSection& s : split(f))
        if (s.id == fg.section) base = s.offset;
    put_le(&g[base + fg.offset], fg.value, fg.width);
    fix_checksums(g);
    g_largest_alloc = 0;
    auto r = parse(g);
    size_t largest = g_largest_alloc.load();
    EXPECT_LT(largest, size_t{1} << 20) << fg.what;
    ASSERT_FALSE(r.ok()) << fg.what;
    EXPECT_NE(r.status().message().find(fg.needle), std::string::npos)
        << fg.what << ": " << r.status().message();
  }
}

// Every 4- and 8-byte window of every section overwritten with all ones (a huge count, length,
// size or offset wherever one sits), checksums repaired: no parse may allocate more than a small
// multiple of the file.
TEST(EngineCorruptionTest, AllOnesAtEveryPositionDoesNotAllocate) {
  std::vector<uint8_t> f = sample_bytes();
  int rejected = 0;
  for (const RawSection& s : split(f)) {
    for (int width : {4, 8}) {
      for (size_t at = 0; at + width <= s.bytes.size(); ++at) {
        std::vector<uint8_t> g = f;
        std::memset(&g[s.offset + at], 0xff, width);
        fix_checksums(g);
        g_largest_alloc = 0;
        auto r = parse(g);
        ASSERT_LT(g_largest_alloc.load(), size_t{1} << 20)
            << section_name(s.id) << " +" << at << " width " << width;
        if (!r.ok()) ++rejected;
      }
    }
  }
  EXPECT_GT(rejected, 1000);
}

// Graph-level forgeries the checksum cannot catch: the decoded graph must still validate.
TEST(EngineCorruptionTest, InconsistentGraphIsRejectedAfterDecoding) {
  EngineModel m = sample_model();
  auto bytes = engine_serialize(m);
  ASSERT_TRUE(bytes.ok());
  auto sections = split(*bytes);
  // The graph section ends with the graph outputs: u32 count, then i32 ids. Point the last one
  // out of range.
  RawSection* g = find(sections, kSectionGraph);
  put_le(&g->bytes[g->bytes.size() - 4], 5000, 4);
  auto r = parse(assemble(sections));
  expect_invalid(r, "engine graph is invalid", "graph output id");
}

TEST(EngineCorruptionTest, MisalignedConstantIsRejected) {
  // A hand-built graph section: no values, one f32 constant of 4 bytes at weights offset 4.
  ByteWriter gw;
  gw.u32(0);  // values
  gw.u32(1);  // constants
  gw.u8(1);   // f32
  gw.u32(1);  // rank 1
  gw.i64(1);  // dim 1
  gw.u64(4);  // offset (not 64-aligned)
  gw.u64(4);  // size
  gw.u32(0);  // nodes
  gw.u32(0);  // inputs
  gw.u32(0);  // outputs
  auto sections = split(sample_bytes());
  find(sections, kSectionGraph)->bytes = gw.take();
  find(sections, kSectionWeights)->bytes.assign(64, 0);
  find(sections, kSectionBindings)->bytes.assign(8, 0);  // no bindings
  expect_invalid(parse(assemble(sections)), "not a multiple of 64", "misaligned constant");
}

}  // namespace
}  // namespace kiln::format
