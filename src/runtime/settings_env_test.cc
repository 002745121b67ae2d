// The environment layer: KILN_* variables, the built-in cache path, and reading once.
#include <gtest/gtest.h>

#include <string>

#include "kiln/runtime.h"
#include "runtime/settings_internal.h"
#include "runtime/settings_test_util.h"

namespace kiln {
namespace {

using RuntimeEnvTest = testing_util::RuntimeSettingsTest;

int count(const std::string& haystack, const std::string& needle) {
  int n = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos;
       at = haystack.find(needle, at + 1)) {
    ++n;
  }
  return n;
}

TEST_F(RuntimeEnvTest, EveryVariableSetsItsField) {
  set_env(kCudaGraphStrategyEnv, "whole_graph_capture");
  set_env(kKernelSpecializationEnv, "eager");
  set_env(kRuntimeCacheEnv, "/env/cache.kcache");
  set_env(kMultiDeviceSafeModeEnv, "1");
  reload();
  ResolvedSettings r = current_runtime_settings();
  EXPECT_EQ(r.cuda_graph_strategy, CudaGraphStrategy::kWholeGraphCapture);
  EXPECT_EQ(r.kernel_specialization, KernelSpecializationStrategy::kEager);
  EXPECT_EQ(r.runtime_cache.path(), "/env/cache.kcache");
  EXPECT_TRUE(r.multi_device_safe_mode);
  ResolvedSettings::Sources env_sources{SettingSource::kEnvironment, SettingSource::kEnvironment,
                                        SettingSource::kEnvironment, SettingSource::kEnvironment};
  EXPECT_EQ(r.sources, env_sources);
  // The process defaults stay empty: the environment is a layer of its own.
  EXPECT_TRUE(default_runtime_settings().empty());
}

TEST_F(RuntimeEnvTest, RuntimeCacheNoneAndBooleanSpellings) {
  set_env(kRuntimeCacheEnv, "none");
  set_env(kMultiDeviceSafeModeEnv, "false");
  reload();
  ResolvedSettings r = current_runtime_settings();
  EXPECT_EQ(r.runtime_cache, RuntimeCacheSetting::none());
  EXPECT_EQ(r.sources.runtime_cache, SettingSource::kEnvironment);
  EXPECT_FALSE(r.multi_device_safe_mode);
  EXPECT_EQ(r.sources.multi_device_safe_mode, SettingSource::kEnvironment);
  set_env(kMultiDeviceSafeModeEnv, "true");
  reload();
  EXPECT_TRUE(current_runtime_settings().multi_device_safe_mode);
}

TEST_F(RuntimeEnvTest, AnEmptyVariableCountsAsUnset) {
  set_env(kCudaGraphStrategyEnv, "");
  set_env(kRuntimeCacheEnv, "");
  ::testing::internal::CaptureStderr();
  reload();
  std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(log, "");
  ResolvedSettings r = current_runtime_settings();
  EXPECT_EQ(r.sources.cuda_graph_strategy, SettingSource::kBuiltin);
  EXPECT_EQ(r.runtime_cache.path(), kBuiltinCache);
}

TEST_F(RuntimeEnvTest, InvalidValuesAreReportedOnceAndTheBuiltinIsUsed) {
  set_env(kCudaGraphStrategyEnv, "whole");
  set_env(kKernelSpecializationEnv, "x");
  set_env(kMultiDeviceSafeModeEnv, "yes");
  ::testing::internal::CaptureStderr();
  reload();
  for (int i = 0; i < 100; ++i) (void)current_runtime_settings();
  std::string log = ::testing::internal::GetCapturedStderr();

  EXPECT_EQ(
      count(log, "invalid cuda_graph_strategy 'whole'; expected disabled|whole_graph_capture"), 1)
      << log;
  EXPECT_EQ(count(log,
                  "invalid dynamic_shapes_kernel_specialization_strategy 'x'; expected "
                  "lazy|eager|none"),
            1)
      << log;
  EXPECT_EQ(count(log, "invalid multi_device_safe_mode 'yes'; expected 1|0|true|false"), 1) << log;
  EXPECT_EQ(count(log, "kiln warning: ignoring KILN_CUDA_GRAPH_STRATEGY: "), 1) << log;
  EXPECT_EQ(count(log, "kiln warning: ignoring KILN_KERNEL_SPECIALIZATION: "), 1) << log;
  EXPECT_EQ(count(log, "kiln warning: ignoring KILN_MULTI_DEVICE_SAFE_MODE: "), 1) << log;
  EXPECT_EQ(count(log, "using the built-in default 'disabled'"), 1) << log;

  ResolvedSettings r = current_runtime_settings();
  EXPECT_EQ(r.cuda_graph_strategy, CudaGraphStrategy::kDisabled);
  EXPECT_EQ(r.kernel_specialization, KernelSpecializationStrategy::kLazy);
  EXPECT_FALSE(r.multi_device_safe_mode);
  EXPECT_EQ(r.sources, ResolvedSettings::Sources{});
}

TEST_F(RuntimeEnvTest, TheEnvironmentIsReadOnce) {
  int reads = internal::runtime_environment_read_count();
  EXPECT_GE(reads, 1);
  set_env(kCudaGraphStrategyEnv, "whole_graph_capture");
  set_env(kRuntimeCacheEnv, "/late");
  for (int i = 0; i < 1000; ++i) {
    ResolvedSettings r = current_runtime_settings();
    ASSERT_EQ(r.cuda_graph_strategy, CudaGraphStrategy::kDisabled);
    ASSERT_EQ(r.runtime_cache.path(), kBuiltinCache);
  }
  set_default_runtime_settings(RuntimeSettings{});  // publishing defaults does not re-read
  (void)current_runtime_settings();
  EXPECT_EQ(internal::runtime_environment_read_count(), reads);
  reload();
  EXPECT_EQ(internal::runtime_environment_read_count(), reads + 1);
  EXPECT_EQ(current_runtime_settings().cuda_graph_strategy, CudaGraphStrategy::kWholeGraphCapture);
  EXPECT_EQ(current_runtime_settings().runtime_cache.path(), "/late");
}

TEST_F(RuntimeEnvTest, BuiltinCacheFollowsXdgThenHome) {
  reload();
  EXPECT_EQ(current_runtime_settings().runtime_cache.path(), "/xdg-test/kiln/runtime.kcache");
  // A relative $XDG_CACHE_HOME is invalid under the XDG spec and ignored.
  set_env("XDG_CACHE_HOME", "relative/cache");
  set_env("HOME", "/home/someone");
  reload();
  EXPECT_EQ(current_runtime_settings().runtime_cache.path(),
            "/home/someone/.cache/kiln/runtime.kcache");
  unsetenv("XDG_CACHE_HOME");
  reload();
  EXPECT_EQ(current_runtime_settings().runtime_cache.path(),
            "/home/someone/.cache/kiln/runtime.kcache");
  EXPECT_EQ(current_runtime_settings().sources.runtime_cache, SettingSource::kBuiltin);
}

TEST_F(RuntimeEnvTest, ReadRuntimeEnvironmentParsesWithoutPublishing) {
  set_env(kKernelSpecializationEnv, "none");
  internal::EnvironmentSnapshot env = internal::read_runtime_environment();
  EXPECT_EQ(env.settings.kernel_specialization, KernelSpecializationStrategy::kNone);
  EXPECT_FALSE(env.settings.cuda_graph_strategy.has_value());
  EXPECT_EQ(env.builtin_runtime_cache.path(), kBuiltinCache);
  EXPECT_EQ(current_runtime_settings().kernel_specialization, KernelSpecializationStrategy::kLazy);
}

}  // namespace
}  // namespace kiln
