// kiln cache warm without a GPU (NVRTC runs on the CPU): label nogpu.
#include "runtime/cache_warm.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "kiln/builder.h"
#include "kiln/runtime_cache.h"
#include "tests/util/testdata.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

fs::path models_dir() { return test::testdata_dir() / "models"; }

class CacheWarmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("kiln_warm_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // The encoder with a dynamic [batch, seq] profile.
  std::string build_encoder() {
    fs::path onnx = models_dir() / "encoder_L4_d256" / "model.onnx";
    if (!fs::exists(onnx)) return {};
    BuildOptions opts;
    opts.shapes = {{"ids", {1, 1}, {2, 77}, {4, 256}}};
    Result<std::vector<uint8_t>> bytes = build_engine(onnx.string(), opts);
    EXPECT_TRUE(bytes.ok()) << bytes.status().to_string();
    if (!bytes.ok()) return {};
    std::string path = (dir_ / "encoder.kiln").string();
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes->data()),
                                                static_cast<std::streamsize>(bytes->size()));
    return path;
  }

  fs::path dir_;
};

TEST(CacheWarmParseTest, ArchSpellings) {
  EXPECT_EQ(*parse_sm("sm_90"), 90);
  EXPECT_EQ(*parse_sm("100"), 100);
  EXPECT_EQ(*parse_sm("9.0"), 90);
  EXPECT_EQ(parse_sm("hopper").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(parse_sm("sm_").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(parse_sm("sm_9").status().code(), StatusCode::kInvalidArgument);
}

#ifdef KILN_HAVE_CUDA

TEST_F(CacheWarmTest, SecondWarmIsAllHitsAndCompilesNothing) {
  const std::string engine = build_encoder();
  if (engine.empty()) GTEST_SKIP() << "encoder test model not found under " << models_dir();
  const std::string cache_path = (dir_ / "warm.kcache").string();
  CacheWarmOptions options;
  options.sms = {90};
  uint64_t kernels = 0;
  {
    std::shared_ptr<RuntimeCache> cache = *RuntimeCache::open(cache_path);
    uint64_t last_done = 0, calls = 0;
    options.progress = [&](uint64_t done, uint64_t total) {
      EXPECT_LE(done, total);
      EXPECT_GE(done, last_done);
      last_done = done;
      ++calls;
    };
    Result<CacheWarmReport> r = cache_warm({engine}, *cache, options);
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_EQ(r->failed, 0u) << (r->errors.empty() ? "" : r->errors[0]);
    EXPECT_GT(r->kernels, 5u);
    EXPECT_GT(r->specializable, 0u);
    EXPECT_LT(r->specializable, r->kernels);
    EXPECT_EQ(r->compiled, r->kernels);
    EXPECT_EQ(r->hits, 0u);
    EXPECT_GE(calls, 1u);
    EXPECT_EQ(last_done, r->kernels);
    kernels = r->kernels;
    ASSERT_TRUE(cache->save().ok());
    EXPECT_EQ(cache->stats().entries, kernels);
  }  // the handle goes: the next open reads the file, as another process would
  std::shared_ptr<RuntimeCache> cache = *RuntimeCache::open(cache_path);
  EXPECT_EQ(cache->stats().entries, kernels);
  options.progress = nullptr;
  Result<CacheWarmReport> again = cache_warm({engine}, *cache, options);
  ASSERT_TRUE(again.ok()) << again.status().to_string();
  EXPECT_EQ(again->kernels, kernels);
  EXPECT_EQ(again->compiled, 0u);
  EXPECT_EQ(again->hits, kernels);
  Result<CacheVerifyReport> verify = RuntimeCache::verify_file(cache_path);
  ASSERT_TRUE(verify.ok());
  EXPECT_TRUE(verify->ok());
  EXPECT_EQ(verify->valid_records, kernels);
}

TEST_F(CacheWarmTest, TwoArchsAndGenericOnly) {
  const std::string engine = build_encoder();
  if (engine.empty()) GTEST_SKIP() << "encoder test model not found";
  std::shared_ptr<RuntimeCache> cache = *RuntimeCache::open((dir_ / "two.kcache").string());
  CacheWarmOptions generic;
  generic.sms = {90};
  generic.specialized = false;
  Result<CacheWarmReport> g = cache_warm({engine}, *cache, generic);
  ASSERT_TRUE(g.ok()) << g.status().to_string();
  EXPECT_EQ(g->specializable, 0u);
  CacheWarmOptions both;
  both.sms = {80, 90};
  Result<CacheWarmReport> b = cache_warm({engine}, *cache, both);
  ASSERT_TRUE(b.ok()) << b.status().to_string();
  EXPECT_EQ(b->per_arch["sm_80"], b->per_arch["sm_90"]);
  EXPECT_EQ(b->hits, g->kernels);  // the generic sm_90 kernels were warm already
  EXPECT_EQ(b->failed, 0u);
  EXPECT_EQ(cache->stats().archs["sm_80"], b->per_arch["sm_80"]);
}

TEST_F(CacheWarmTest, InventoryCountsSpecializableKernels) {
  const std::string engine = build_encoder();
  if (engine.empty()) GTEST_SKIP() << "encoder test model not found";
  Result<KernelInventory> inv = engine_kernel_inventory(engine);
  ASSERT_TRUE(inv.ok()) << inv.status().to_string();
  EXPECT_GT(inv->kernels, 0u);
  EXPECT_GT(inv->specializable, 0u);
  EXPECT_GE(inv->launches, inv->kernels);
  EXPECT_GT(inv->gpu_nodes, 0u);
  EXPECT_EQ(inv->fallback_nodes, 0u);
}

TEST_F(CacheWarmTest, BadEngineAndNoArchAreErrors) {
  std::shared_ptr<RuntimeCache> cache = *RuntimeCache::open((dir_ / "bad.kcache").string());
  CacheWarmOptions none;
  EXPECT_EQ(cache_warm({"x.kiln"}, *cache, none).status().code(), StatusCode::kInvalidArgument);
  std::ofstream((dir_ / "junk.kiln").string()) << "not an engine";
  CacheWarmOptions options;
  options.sms = {90};
  Result<CacheWarmReport> r = cache_warm({(dir_ / "junk.kiln").string()}, *cache, options);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("junk.kiln"), std::string::npos) << r.status().to_string();
}

#endif

}  // namespace
}  // namespace kiln
