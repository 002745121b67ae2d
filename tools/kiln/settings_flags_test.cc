#include "settings_flags.h"

#include <gtest/gtest.h>

#include <vector>

namespace kiln::cli {
namespace {

// Parses `argv` (after the program name) into `flags` through a CLI11 app.
void parse(SettingsFlags& flags, std::vector<std::string> argv) {
  CLI::App app("test");
  std::string engine;
  app.add_option("engine", engine);
  add_settings_flags(&app, flags);
  std::vector<const char*> args{"kiln"};
  for (const std::string& a : argv) args.push_back(a.c_str());
  app.parse(static_cast<int>(args.size()), args.data());
}

TEST(SettingsFlagsTest, AbsentFlagsLeaveEveryFieldUnset) {
  SettingsFlags flags;
  parse(flags, {"model.kiln"});
  Result<RuntimeSettings> s = settings_from_flags(flags);
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->empty());
}

TEST(SettingsFlagsTest, EachFlagSetsItsField) {
  SettingsFlags flags;
  parse(flags,
        {"model.kiln", "--cuda-graph-strategy", "whole_graph_capture", "--kernel-specialization",
         "eager", "--runtime-cache", "none", "--multi-device-safe-mode", "false"});
  Result<RuntimeSettings> s = settings_from_flags(flags);
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  EXPECT_EQ(s->cuda_graph_strategy, CudaGraphStrategy::kWholeGraphCapture);
  EXPECT_EQ(s->kernel_specialization, KernelSpecializationStrategy::kEager);
  EXPECT_EQ(s->runtime_cache, RuntimeCacheSetting::none());
  EXPECT_EQ(s->multi_device_safe_mode, false);
}

TEST(SettingsFlagsTest, MultiDeviceSafeModeAloneMeansTrue) {
  SettingsFlags flags;
  parse(flags, {"model.kiln", "--multi-device-safe-mode"});
  Result<RuntimeSettings> s = settings_from_flags(flags);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->multi_device_safe_mode, true);
}

TEST(SettingsFlagsTest, RuntimeCachePathIsKept) {
  SettingsFlags flags;
  parse(flags, {"model.kiln", "--runtime-cache", "/tmp/x.kcache"});
  Result<RuntimeSettings> s = settings_from_flags(flags);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->runtime_cache.kind(), RuntimeCacheSetting::Kind::kPath);
  EXPECT_EQ(s->runtime_cache.path(), "/tmp/x.kcache");
}

TEST(SettingsFlagsTest, InvalidNamesGiveTheParsersMessage) {
  struct Case {
    std::vector<std::string> argv;
    std::string message;
  };
  std::vector<Case> cases = {
      {{"--cuda-graph-strategy", "whole"},
       "invalid cuda_graph_strategy 'whole'; expected disabled|whole_graph_capture"},
      {{"--kernel-specialization", "sometimes"},
       "invalid dynamic_shapes_kernel_specialization_strategy 'sometimes'; expected "
       "lazy|eager|none"},
      {{"--runtime-cache", ""}, "invalid runtime_cache ''; expected a file path or none"},
      {{"--multi-device-safe-mode", "yes"},
       "invalid multi_device_safe_mode 'yes'; expected 1|0|true|false"},
  };
  for (const Case& c : cases) {
    SettingsFlags flags;
    std::vector<std::string> argv = {"model.kiln"};
    argv.insert(argv.end(), c.argv.begin(), c.argv.end());
    parse(flags, argv);
    Result<RuntimeSettings> s = settings_from_flags(flags);
    ASSERT_FALSE(s.ok()) << c.argv[0];
    EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(s.status().message(), c.message);
  }
}

TEST(SettingsFlagsTest, SwallowedEngineFileGetsAHint) {
  SettingsFlags flags;
  flags.multi_device_safe_mode = KILN_SOURCE_DIR "/README.md";  // an existing file
  Result<RuntimeSettings> s = settings_from_flags(flags);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("expected 1|0|true|false"), std::string::npos);
  EXPECT_NE(s.status().message().find("--multi-device-safe-mode=true"), std::string::npos);
}

TEST(SettingsFlagsTest, CallSourceIsShownAsFlag) {
  EXPECT_EQ(cli_source_name(SettingSource::kCall), "flag");
  EXPECT_EQ(cli_source_name(SettingSource::kEnvironment), "environment");
  EXPECT_EQ(cli_source_name(SettingSource::kProcessDefault), "default");
  EXPECT_EQ(cli_source_name(SettingSource::kBuiltin), "builtin");
}

TEST(SettingsFlagsTest, JsonAndTextShowValuesAndSources) {
  ResolvedSettings r;
  r.cuda_graph_strategy = CudaGraphStrategy::kWholeGraphCapture;
  r.sources.cuda_graph_strategy = SettingSource::kCall;
  r.kernel_specialization = KernelSpecializationStrategy::kNone;
  r.sources.kernel_specialization = SettingSource::kEnvironment;
  r.runtime_cache = RuntimeCacheSetting::none();
  r.sources.runtime_cache = SettingSource::kBuiltin;
  r.multi_device_safe_mode = true;
  r.sources.multi_device_safe_mode = SettingSource::kProcessDefault;
  nlohmann::json j = settings_json(r);
  EXPECT_EQ(j["cuda_graph_strategy"]["value"], "whole_graph_capture");
  EXPECT_EQ(j["cuda_graph_strategy"]["source"], "flag");
  EXPECT_EQ(j["dynamic_shapes_kernel_specialization_strategy"]["value"], "none");
  EXPECT_EQ(j["dynamic_shapes_kernel_specialization_strategy"]["source"], "environment");
  EXPECT_EQ(j["runtime_cache"]["value"], "none");
  EXPECT_EQ(j["runtime_cache"]["source"], "builtin");
  EXPECT_EQ(j["multi_device_safe_mode"]["value"], "true");
  EXPECT_EQ(j["multi_device_safe_mode"]["source"], "default");
  std::string text = settings_text(r);
  EXPECT_EQ(text.rfind("runtime settings:\n", 0), 0u);
  EXPECT_NE(text.find("whole_graph_capture  (flag)\n"), std::string::npos);
  EXPECT_NE(text.find("none  (environment)\n"), std::string::npos);
  EXPECT_NE(text.find("true  (default)\n"), std::string::npos);
}

}  // namespace
}  // namespace kiln::cli
