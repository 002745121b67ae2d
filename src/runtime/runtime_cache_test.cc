// RuntimeCache in one process: keys, lookups and inserts, save and reload, merge, LRU, threads.
#include "kiln/runtime_cache.h"

#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <thread>

#include "core/logging.h"
#include "runtime/runtime_cache_file.h"
#include "runtime/runtime_cache_test_util.h"

namespace kiln {
namespace {

using testing_cache::read_cache_file;
using testing_cache::TempDir;
using testing_cache::test_blob;
using testing_cache::test_key;
using testing_cache::test_meta;

std::shared_ptr<RuntimeCache> open_ok(const std::string& path, CacheOptions options = {}) {
  Result<std::shared_ptr<RuntimeCache>> c = RuntimeCache::open(path, options);
  EXPECT_TRUE(c.ok()) << c.status().to_string();
  return c.ok() ? *c : nullptr;
}

TEST(CacheKeyTest, DeterministicAndSensitiveToEveryField) {
  CacheKey k = make_cache_key("src", "opts", 12080, "sm_90");
  EXPECT_EQ(k, make_cache_key("src", "opts", 12080, "sm_90"));
  EXPECT_NE(k, make_cache_key("src2", "opts", 12080, "sm_90"));
  EXPECT_NE(k, make_cache_key("src", "opts2", 12080, "sm_90"));
  EXPECT_NE(k, make_cache_key("src", "opts", 12090, "sm_90"));
  EXPECT_NE(k, make_cache_key("src", "opts", 12080, "sm_100"));
  // Fields are length-prefixed: moving bytes between fields changes the key.
  EXPECT_NE(make_cache_key("ab", "c", 1, "x"), make_cache_key("a", "bc", 1, "x"));
  EXPECT_NE(k, make_tuning_key("src", 12080, "sm_90"));
  // SHA-256 of a known message is stable across runs and machines.
  EXPECT_EQ(make_cache_key("", "", 0, "").to_hex().size(), 64u);
}

TEST(CacheKeyTest, HexRoundTripsAndRejectsBadText) {
  CacheKey k = make_tuning_key("gemm m=1 n=2 k=3", 120000, "sm_90");
  Result<CacheKey> back = CacheKey::from_hex(k.to_hex());
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, k);
  EXPECT_EQ(CacheKey::from_hex("abc").status().code(), StatusCode::kInvalidArgument);
  std::string bad = k.to_hex();
  bad[10] = 'g';
  EXPECT_EQ(CacheKey::from_hex(bad).status().code(), StatusCode::kInvalidArgument);
}

TEST(RuntimeCacheTest, MissingFileIsAnEmptyCacheAndOpenCreatesNothing) {
  TempDir dir;
  std::string path = dir.file("sub/cache.kcache");
  auto cache = open_ok(path);
  ASSERT_NE(cache, nullptr);
  EXPECT_EQ(cache->stats().entries, 0u);
  EXPECT_FALSE(cache->lookup(test_key("a", 0)).has_value());
  EXPECT_EQ(cache->stats().misses, 1u);
  cache.reset();  // nothing changed: nothing written
  EXPECT_FALSE(std::filesystem::exists(dir.file("sub")));
}

TEST(RuntimeCacheTest, RejectsBadPathAndOptions) {
  EXPECT_EQ(RuntimeCache::open("").status().code(), StatusCode::kInvalidArgument);
  TempDir dir;
  EXPECT_EQ(RuntimeCache::open(dir.file("c"), {.max_bytes = 0}).status().code(),
            StatusCode::kInvalidArgument);
  // A folder where the file should be cannot be read.
  EXPECT_EQ(RuntimeCache::open(dir.path()).status().code(), StatusCode::kIoError);
}

TEST(RuntimeCacheTest, OneHandlePerCanonicalPath) {
  TempDir dir;
  std::filesystem::create_directories(dir.file("sub"));
  auto a = open_ok(dir.file("c.kcache"));
  auto b = open_ok(dir.file("sub/../c.kcache"));
  auto c = open_ok(dir.path() + "/./c.kcache");
  EXPECT_EQ(a.get(), b.get());
  EXPECT_EQ(a.get(), c.get());
  EXPECT_EQ(a->path(), std::filesystem::weakly_canonical(dir.file("c.kcache")).string());
  auto other = open_ok(dir.file("d.kcache"));
  EXPECT_NE(a.get(), other.get());
}

TEST(RuntimeCacheTest, InsertThenSaveThenFreshHandleHitsEverything) {
  TempDir dir;
  std::string path = dir.file("c.kcache");
  {
    auto cache = open_ok(path);
    for (int i = 0; i < 20; ++i) {
      ASSERT_TRUE(
          cache->insert(test_key("a", i), test_blob("a", i, 100 + i), test_meta("a", i)).ok());
    }
    ASSERT_TRUE(cache
                    ->insert(make_tuning_key("gemm 64x64x64", 1, "sm_90"), "algo=7 tile=128x64",
                             {CacheEntryKind::kTuning, "gemm", "sm_90"})
                    .ok());
    ASSERT_TRUE(cache->save().ok());
    EXPECT_EQ(cache->stats().saves, 1u);
  }
  auto fresh = open_ok(path);
  CacheStats s = fresh->stats();
  EXPECT_EQ(s.entries, 21u);
  EXPECT_EQ(s.inserts, 0u);
  EXPECT_EQ(s.kinds["cubin"], 20u);
  EXPECT_EQ(s.kinds["tuning"], 1u);
  EXPECT_EQ(s.archs["sm_90"], 21u);
  for (int i = 0; i < 20; ++i) {
    std::optional<CacheValue> v = fresh->lookup(test_key("a", i));
    ASSERT_TRUE(v.has_value()) << i;
    EXPECT_EQ(*v->bytes, test_blob("a", i, 100 + i));
    EXPECT_EQ(v->meta.name, test_meta("a", i).name);
  }
  std::optional<CacheValue> t = fresh->lookup(make_tuning_key("gemm 64x64x64", 1, "sm_90"));
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->text(), "algo=7 tile=128x64");
  EXPECT_EQ(t->meta.kind, CacheEntryKind::kTuning);
  EXPECT_EQ(fresh->stats().hits, 21u);
  EXPECT_EQ(fresh->stats().misses, 0u);
  Result<CacheVerifyReport> report = fresh->verify();
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->ok());
  EXPECT_EQ(report->valid_records, 21u);
}

// A warm-up run against the cache: each kernel is compiled (counted) only on a miss.
int warm(const std::string& path, int kernels, int* compiles) {
  auto cache = open_ok(path);
  int done = 0;
  for (int i = 0; i < kernels; ++i) {
    Result<CacheValue> v = cache->get_or_produce(test_key("w", i), test_meta("w", i),
                                                 [&]() -> Result<std::vector<uint8_t>> {
                                                   ++*compiles;
                                                   return test_blob("w", i, 256);
                                                 });
    if (v.ok() && *v->bytes == test_blob("w", i, 256)) ++done;
  }
  return done;  // the handle saves when it goes out of scope
}

TEST(RuntimeCacheTest, SecondWarmCompilesNothing) {
  TempDir dir;
  std::string path = dir.file("c.kcache");
  int compiles = 0;
  EXPECT_EQ(warm(path, 12, &compiles), 12);
  EXPECT_EQ(compiles, 12);
  EXPECT_EQ(warm(path, 12, &compiles), 12);
  EXPECT_EQ(compiles, 12);
  // The second warm's hits were recorded by the destructor's save.
  testing_cache::FileContent f = read_cache_file(path);
  ASSERT_EQ(f.hits.size(), 12u);
  for (const auto& [key, hits] : f.hits) EXPECT_EQ(hits, 1u);
}

TEST(RuntimeCacheTest, ProduceErrorsPropagateAndInsertNothing) {
  TempDir dir;
  auto cache = open_ok(dir.file("c.kcache"));
  Result<CacheValue> v = cache->get_or_produce(test_key("e", 0), test_meta("e", 0), [] {
    return Result<std::vector<uint8_t>>(device_error("NVRTC failed"));
  });
  EXPECT_EQ(v.status().code(), StatusCode::kDeviceError);
  EXPECT_EQ(cache->stats().entries, 0u);
}

TEST(RuntimeCacheTest, RecordedHitsAddUpAcrossSavesWithoutDoubleCounting) {
  TempDir dir;
  std::string path = dir.file("c.kcache");
  CacheKey k = test_key("h", 0);
  {
    auto cache = open_ok(path);
    ASSERT_TRUE(cache->insert(k, test_blob("h", 0, 10), test_meta("h", 0)).ok());
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(cache->lookup(k));
    ASSERT_TRUE(cache->save().ok());
    ASSERT_TRUE(cache->save().ok());  // nothing new: still 3
    EXPECT_EQ(read_cache_file(path).hits[k], 3u);
  }
  auto cache = open_ok(path);
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(cache->lookup(k));
  ASSERT_TRUE(cache->save().ok());
  EXPECT_EQ(read_cache_file(path).hits[k], 5u);
  EXPECT_EQ(cache->stats().recorded_hits, 5u);
}

// Writes a cache file holding entries of family `tag` as another process would.
void write_foreign_save(const std::string& path, const std::string& tag, int n) {
  format::ByteWriter w;
  internal::cache_append_header(w);
  for (int i = 0; i < n; ++i) {
    CacheEntryMeta m = test_meta(tag, i);
    internal::cache_append_record(w, test_key(tag, i), m.kind, 1000 + i, 0, m.name, m.arch,
                                  test_blob(tag, i, 64));
  }
  ASSERT_TRUE(platform::write_file_atomic(path, w.buffer()).ok());
}

TEST(RuntimeCacheTest, SaveMergesWhatOthersSavedMeanwhile) {
  TempDir dir;
  std::string path = dir.file("c.kcache");
  auto cache = open_ok(path);
  ASSERT_TRUE(
      cache->insert(test_key("mine", 0), test_blob("mine", 0, 64), test_meta("mine", 0)).ok());
  write_foreign_save(path, "theirs", 5);  // another process saved after we opened
  ASSERT_TRUE(cache->save().ok());
  testing_cache::FileContent f = read_cache_file(path);
  EXPECT_EQ(f.blobs.size(), 6u);
  EXPECT_EQ(f.blobs[test_key("mine", 0)], test_blob("mine", 0, 64));
  for (int i = 0; i < 5; ++i) EXPECT_EQ(f.blobs[test_key("theirs", i)], test_blob("theirs", i, 64));
  // After the save the handle also serves their entries.
  std::optional<CacheValue> v = cache->lookup(test_key("theirs", 3));
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(*v->bytes, test_blob("theirs", 3, 64));
}

TEST(RuntimeCacheTest, LruEvictsLeastRecentlyUsedFirst) {
  TempDir dir;
  std::string path = dir.file("c.kcache");
  uint64_t one = internal::cache_record_size(test_meta("l", 0).name.size(), 5, 1000);
  auto cache = open_ok(path, {.max_bytes = 3 * one});
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(cache->insert(test_key("l", i), test_blob("l", i, 1000), test_meta("l", i)).ok());
  }
  ASSERT_TRUE(cache->lookup(test_key("l", 0)));  // 1 is now the least recently used
  ASSERT_TRUE(cache->insert(test_key("l", 3), test_blob("l", 3, 1000), test_meta("l", 3)).ok());
  EXPECT_EQ(cache->stats().evictions, 1u);
  EXPECT_TRUE(cache->lookup(test_key("l", 0)));
  EXPECT_FALSE(cache->lookup(test_key("l", 1)));
  EXPECT_TRUE(cache->lookup(test_key("l", 2)));
  EXPECT_TRUE(cache->lookup(test_key("l", 3)));
  EXPECT_LE(cache->stats().bytes, 3 * one);
  // Now 0 is the least recently used; 2, 3 were used after it.
  cache->set_max_bytes(2 * one);
  EXPECT_FALSE(cache->lookup(test_key("l", 0)));
  ASSERT_TRUE(cache->save().ok());
  testing_cache::FileContent f = read_cache_file(path);
  EXPECT_EQ(f.blobs.size(), 2u);
  EXPECT_TRUE(f.blobs.contains(test_key("l", 2)));
  EXPECT_TRUE(f.blobs.contains(test_key("l", 3)));
  // An entry larger than the whole bound is refused.
  EXPECT_EQ(cache->insert(test_key("l", 9), test_blob("l", 9, 5000), test_meta("l", 9)).code(),
            StatusCode::kResourceExhausted);
}

TEST(RuntimeCacheTest, SaveBoundsTheMergedFileByLastUse) {
  TempDir dir;
  std::string path = dir.file("c.kcache");
  write_foreign_save(path, "old", 10);  // last uses 1000..1009 us after the epoch: very old
  uint64_t one = internal::cache_record_size(test_meta("new", 0).name.size(), 5, 64);
  auto cache = open_ok(path, {.max_bytes = 6 * one});
  EXPECT_EQ(cache->stats().entries, 6u);  // the 6 most recent of the file
  EXPECT_EQ(cache->stats().evictions, 4u);
  EXPECT_TRUE(cache->lookup(test_key("old", 9)));
  EXPECT_FALSE(cache->lookup(test_key("old", 3)));
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(
        cache->insert(test_key("new", i), test_blob("new", i, 64), test_meta("new", i)).ok());
  }
  ASSERT_TRUE(cache->save().ok());
  testing_cache::FileContent f = read_cache_file(path);
  EXPECT_EQ(f.blobs.size(), 6u);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(f.blobs.contains(test_key("new", i)));
  EXPECT_TRUE(f.blobs.contains(test_key("old", 9)));  // just used
}

TEST(RuntimeCacheTest, ClearEmptiesHandleAndFile) {
  TempDir dir;
  std::string path = dir.file("c.kcache");
  auto cache = open_ok(path);
  ASSERT_TRUE(cache->insert(test_key("c", 0), test_blob("c", 0, 10), test_meta("c", 0)).ok());
  ASSERT_TRUE(cache->save().ok());
  ASSERT_EQ(read_cache_file(path).blobs.size(), 1u);
  ASSERT_TRUE(cache->clear().ok());
  EXPECT_EQ(cache->stats().entries, 0u);
  testing_cache::FileContent f = read_cache_file(path);
  EXPECT_EQ(f.blobs.size(), 0u);
  EXPECT_EQ(f.scan.state, internal::CacheFileState::kOk);
}

TEST(RuntimeCacheTest, SaveCreatesFolderAndRemovesStaleTempFiles) {
  TempDir dir;
  std::string path = dir.file("a/b/c.kcache");
  auto cache = open_ok(path);
  ASSERT_TRUE(cache->insert(test_key("t", 0), test_blob("t", 0, 10), test_meta("t", 0)).ok());
  ASSERT_TRUE(cache->save().ok());
  std::string stale = path + ".tmp.99999.0";  // left by a save that was killed
  std::ofstream(stale) << "torn";
  ASSERT_TRUE(std::filesystem::exists(stale));
  ASSERT_TRUE(cache->save().ok());
  EXPECT_FALSE(std::filesystem::exists(stale));
  EXPECT_TRUE(std::filesystem::exists(path + ".lock"));
}

TEST(RuntimeCacheTest, FailedSaveKeepsChangesForTheNextOne) {
  TempDir dir;
  std::string blocker = dir.file("blocker");
  auto cache = open_ok(blocker + "/c.kcache");
  std::ofstream(blocker) << "a file where the cache folder should be";
  ASSERT_TRUE(cache->insert(test_key("f", 0), test_blob("f", 0, 10), test_meta("f", 0)).ok());
  Status s = cache->save();
  EXPECT_EQ(s.code(), StatusCode::kIoError) << s.to_string();
  EXPECT_NE(s.message().find("blocker"), std::string::npos) << s.message();
  EXPECT_EQ(cache->stats().entries, 1u);
  std::filesystem::remove(blocker);
  EXPECT_TRUE(cache->save().ok());
  EXPECT_EQ(read_cache_file(blocker + "/c.kcache").blobs.size(), 1u);
}

TEST(RuntimeCacheTest, InsertChecksLimits) {
  TempDir dir;
  auto cache = open_ok(dir.file("c.kcache"));
  CacheEntryMeta long_name{CacheEntryKind::kCubin, std::string(5000, 'n'), "sm_90"};
  EXPECT_EQ(cache->insert(test_key("x", 0), "b", long_name).code(), StatusCode::kInvalidArgument);
  CacheEntryMeta long_arch{CacheEntryKind::kCubin, "k", std::string(65, 'a')};
  EXPECT_EQ(cache->insert(test_key("x", 0), "b", long_arch).code(), StatusCode::kInvalidArgument);
  CacheEntryMeta bad_kind{static_cast<CacheEntryKind>(9), "k", "sm_90"};
  EXPECT_EQ(cache->insert(test_key("x", 0), "b", bad_kind).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(cache->stats().entries, 0u);
}

TEST(RuntimeCacheTest, ReadOnlyHandleNeverWrites) {
  TempDir dir;
  std::string path = dir.file("c.kcache");
  {
    auto cache = open_ok(path, {.read_only = true});
    ASSERT_TRUE(cache->insert(test_key("r", 0), test_blob("r", 0, 10), test_meta("r", 0)).ok());
    EXPECT_EQ(cache->save().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(cache->clear().code(), StatusCode::kInvalidArgument);
  }  // no automatic save either
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(RuntimeCacheTest, ForSettingFollowsTheResolvedSetting) {
  TempDir dir;
  ResolvedSettings r;
  r.runtime_cache = RuntimeCacheSetting::none();
  Result<std::shared_ptr<RuntimeCache>> none = RuntimeCache::for_setting(r);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, nullptr);

  r.runtime_cache = RuntimeCacheSetting::path(dir.file("p.kcache"));
  Result<std::shared_ptr<RuntimeCache>> by_path = RuntimeCache::for_setting(r);
  ASSERT_TRUE(by_path.ok());
  EXPECT_EQ(by_path->get(), open_ok(dir.file("p.kcache")).get());

  auto handle = open_ok(dir.file("h.kcache"));
  r.runtime_cache = RuntimeCacheSetting::handle(handle);
  Result<std::shared_ptr<RuntimeCache>> by_handle = RuntimeCache::for_setting(r);
  ASSERT_TRUE(by_handle.ok());
  EXPECT_EQ(by_handle->get(), handle.get());
}

TEST(RuntimeCacheTest, ConcurrentLookupsInsertsAndSavesLoseNothing) {
  TempDir dir;
  std::string path = dir.file("c.kcache");
  auto cache = open_ok(path);
  constexpr int kThreads = 4, kPerThread = 60;
  std::atomic<bool> stop{false};
  std::thread saver([&] {
    while (!stop.load()) EXPECT_TRUE(cache->save().ok());
  });
  std::vector<std::thread> workers;
  for (int t = 0; t < kThreads; ++t) {
    workers.emplace_back([&, t] {
      std::string tag = "t" + std::to_string(t);
      for (int i = 0; i < kPerThread; ++i) {
        EXPECT_TRUE(
            cache->insert(test_key(tag, i), test_blob(tag, i, 128), test_meta(tag, i)).ok());
        std::optional<CacheValue> v = cache->lookup(test_key(tag, i / 2));
        ASSERT_TRUE(v.has_value());
        EXPECT_EQ(*v->bytes, test_blob(tag, i / 2, 128));
        (void)cache->stats();
      }
    });
  }
  for (auto& w : workers) w.join();
  stop.store(true);
  saver.join();
  ASSERT_TRUE(cache->save().ok());
  EXPECT_EQ(cache->stats().entries, static_cast<uint64_t>(kThreads * kPerThread));
  testing_cache::FileContent f = read_cache_file(path);
  EXPECT_EQ(f.blobs.size(), static_cast<size_t>(kThreads * kPerThread));
  uint64_t hits = 0;
  for (const auto& [k, h] : f.hits) hits += h;
  EXPECT_EQ(hits, static_cast<uint64_t>(kThreads * kPerThread));  // every lookup, exactly once
}

}  // namespace
}  // namespace kiln
