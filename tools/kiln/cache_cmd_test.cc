// `kiln cache info|verify|clear`: output and exit codes on intact, damaged and foreign files.
#include "cache_cmd.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "cli_common.h"
#include "kiln/runtime_cache.h"
#include "platform/file.h"

namespace kiln::cli {
namespace {

class CacheCmdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = std::filesystem::temp_directory_path().string() + "/kiln_cache_cmd_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // A cache file with `n` cubins for sm_90 and one tuning entry for sm_100.
  std::string make_cache(const std::string& name, int n) {
    std::string path = dir_ + "/" + name;
    auto cache = RuntimeCache::open(path);
    EXPECT_TRUE(cache.ok());
    for (int i = 0; i < n; ++i) {
      CacheKey k = make_cache_key("src" + std::to_string(i), "", 12080, "sm_90");
      EXPECT_TRUE((*cache)
                      ->insert(k, std::string(100, 'x'),
                               {CacheEntryKind::kCubin, "k" + std::to_string(i), "sm_90"})
                      .ok());
      EXPECT_TRUE((*cache)->lookup(k).has_value());
    }
    EXPECT_TRUE((*cache)
                    ->insert(make_tuning_key("gemm", 1, "sm_100"), "algo=3",
                             {CacheEntryKind::kTuning, "gemm", "sm_100"})
                    .ok());
    EXPECT_TRUE((*cache)->save().ok());
    return path;
  }

  int run(const std::string& action, const std::string& path, bool json, std::string* out) {
    CacheArgs args{action, path, json};
    ::testing::internal::CaptureStdout();
    ::testing::internal::CaptureStderr();
    int code = run_cache(args);
    *out = ::testing::internal::GetCapturedStdout();
    err_ = ::testing::internal::GetCapturedStderr();
    return code;
  }

  std::string dir_;
  std::string err_;
};

TEST_F(CacheCmdTest, InfoReportsEntriesArchsAndHits) {
  std::string path = make_cache("a.kcache", 3);
  std::string out;
  ASSERT_EQ(run("info", path, true, &out), kExitOk) << err_;
  nlohmann::json j = nlohmann::json::parse(out);
  EXPECT_EQ(j["entries"], 4);
  EXPECT_EQ(j["archs"]["sm_90"], 3);
  EXPECT_EQ(j["archs"]["sm_100"], 1);
  EXPECT_EQ(j["kinds"]["tuning"], 1);
  EXPECT_EQ(j["recorded_hits"], 3);
  EXPECT_EQ(j["entry_list"].size(), 4u);
  ASSERT_EQ(run("info", path, false, &out), kExitOk);
  EXPECT_NE(out.find("sm_100 1, sm_90 3"), std::string::npos) << out;
}

TEST_F(CacheCmdTest, VerifyExitsOneListingDamagedRecords) {
  std::string path = make_cache("v.kcache", 3);
  std::string out;
  EXPECT_EQ(run("verify", path, false, &out), kExitOk) << out;
  Result<std::vector<uint8_t>> bytes = platform::read_file(path);
  ASSERT_TRUE(bytes.ok());
  (*bytes)[bytes->size() - 5] ^= 0xff;  // inside the last record
  ASSERT_TRUE(platform::write_file_atomic(path, *bytes).ok());
  EXPECT_EQ(run("verify", path, false, &out), kExitMismatch);
  EXPECT_NE(out.find("checksum mismatch"), std::string::npos) << out;
  EXPECT_EQ(run("verify", path, true, &out), kExitMismatch);
  EXPECT_EQ(nlohmann::json::parse(out)["problem_count"], 1);
  EXPECT_EQ(run("verify", dir_ + "/missing.kcache", false, &out), kExitBadInput);
}

TEST_F(CacheCmdTest, ClearEmptiesACacheButRefusesAForeignFile) {
  std::string path = make_cache("c.kcache", 2);
  std::string out;
  ASSERT_EQ(run("clear", path, false, &out), kExitOk) << err_;
  EXPECT_NE(out.find("cleared 3 entries"), std::string::npos) << out;
  ASSERT_EQ(run("info", path, true, &out), kExitOk);
  EXPECT_EQ(nlohmann::json::parse(out)["entries"], 0);

  std::string foreign = dir_ + "/notes.txt";
  std::ofstream(foreign) << "my precious notes";
  EXPECT_EQ(run("clear", foreign, false, &out), kExitBadInput);
  EXPECT_NE(err_.find("not touching it"), std::string::npos) << err_;
  std::ifstream in(foreign);
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(content, "my precious notes");
}

}  // namespace
}  // namespace kiln::cli
