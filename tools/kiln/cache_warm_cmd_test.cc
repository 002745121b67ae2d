// `kiln cache warm` then `kiln cache verify`, through the command's entry point (nogpu).
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "cache_cmd.h"
#include "cli_common.h"
#include "kiln/builder.h"
#include "kiln/runtime_cache.h"
#include "tests/util/testdata.h"

namespace kiln::cli {
namespace {

namespace fs = std::filesystem;

TEST(CacheWarmCommandTest, WarmThenVerifyThenWarmAgainCompilesNothing) {
#ifndef KILN_HAVE_CUDA
  GTEST_SKIP() << "built without the CUDA backend";
#endif
  fs::path onnx = test::model_dir("tiny_cnn") / "model.onnx";
  if (!fs::exists(onnx)) GTEST_SKIP() << "no " << onnx;
  fs::path dir = fs::temp_directory_path() / ("kiln_warm_cli_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  BuildOptions opts;
  opts.shapes = {{"x", {1, 3, 32, 32}, {4, 3, 32, 32}, {8, 3, 32, 32}}};
  Result<std::vector<uint8_t>> bytes = build_engine(onnx.string(), opts);
  ASSERT_TRUE(bytes.ok()) << bytes.status().to_string();
  const std::string engine = (dir / "cnn.kiln").string();
  std::ofstream(engine, std::ios::binary).write(reinterpret_cast<const char*>(bytes->data()),
                                                static_cast<std::streamsize>(bytes->size()));
  CacheArgs warm;
  warm.action = "warm";
  warm.engines = {engine};
  warm.archs = {"sm_90"};
  warm.path = (dir / "deploy.kcache").string();
  warm.progress = false;
  EXPECT_EQ(run_cache(warm), kExitOk);
  Result<CacheVerifyReport> report = RuntimeCache::verify_file(warm.path);
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->ok());
  const uint64_t records = report->valid_records;
  EXPECT_GT(records, 3u);
  CacheArgs verify;
  verify.action = "verify";
  verify.path = warm.path;
  EXPECT_EQ(run_cache(verify), kExitOk);
  EXPECT_EQ(run_cache(warm), kExitOk);  // all hits: nothing new
  EXPECT_EQ(RuntimeCache::verify_file(warm.path)->valid_records, records);
  CacheArgs bad = warm;
  bad.archs = {"hopper"};
  EXPECT_EQ(run_cache(bad), kExitBadInput);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace kiln::cli
