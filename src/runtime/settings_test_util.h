// Test helpers for runtime settings: a fixture that isolates each test from the process
// environment and from process defaults left by other tests.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "core/logging.h"
#include "kiln/runtime.h"
#include "runtime/settings_internal.h"

namespace kiln::testing_util {

// Every variable the settings layer reads.
inline const char* const kSettingsEnvVars[] = {
    kCudaGraphStrategyEnv,   kKernelSpecializationEnv, kRuntimeCacheEnv,
    kMultiDeviceSafeModeEnv, "XDG_CACHE_HOME",         "HOME",
};

// Clears the KILN_* variables, pins $XDG_CACHE_HOME, re-reads the environment and clears the
// process defaults; restores all of it afterwards. Tests change variables with set_env() and
// then call reload().
class RuntimeSettingsTest : public ::testing::Test {
 protected:
  static constexpr const char* kXdg = "/xdg-test";
  static constexpr const char* kBuiltinCache = "/xdg-test/kiln/runtime.kcache";

  void SetUp() override {
    for (const char* name : kSettingsEnvVars) {
      const char* v = std::getenv(name);
      saved_[name] = v ? std::optional<std::string>(v) : std::nullopt;
    }
    for (const char* name : {kCudaGraphStrategyEnv, kKernelSpecializationEnv, kRuntimeCacheEnv,
                             kMultiDeviceSafeModeEnv}) {
      unsetenv(name);
    }
    setenv("XDG_CACHE_HOME", kXdg, 1);
    saved_level_ = log_level();
    set_log_level(LogLevel::kWarning);
    reload();
    set_default_runtime_settings(RuntimeSettings{});
  }

  void TearDown() override {
    for (const auto& [name, value] : saved_) {
      if (value) {
        setenv(name.c_str(), value->c_str(), 1);
      } else {
        unsetenv(name.c_str());
      }
    }
    reload();
    set_default_runtime_settings(RuntimeSettings{});
    set_log_level(saved_level_);
  }

  static void set_env(const char* name, const char* value) { setenv(name, value, 1); }
  static void reload() { internal::reload_runtime_environment_for_testing(); }

 private:
  std::map<std::string, std::optional<std::string>> saved_;
  LogLevel saved_level_ = LogLevel::kWarning;
};

}  // namespace kiln::testing_util
