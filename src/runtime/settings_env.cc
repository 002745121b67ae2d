// The environment layer: the only code in kiln that reads the KILN_* runtime variables (and the
// $XDG_CACHE_HOME / $HOME that place the built-in runtime cache). Called once per process.
#include <pwd.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "core/logging.h"
#include "runtime/settings_internal.h"

namespace kiln::internal {
namespace {

// An unset or empty variable is absent.
std::optional<std::string_view> env_value(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return std::nullopt;
  return std::string_view(v);
}

// Reads one variable with `parse`; a bad value is reported and leaves the field unset.
template <typename T, typename Parse>
std::optional<T> read_env(const char* name, Parse parse, std::string_view builtin_default) {
  std::optional<std::string_view> text = env_value(name);
  if (!text) return std::nullopt;
  Result<T> parsed = parse(*text);
  if (!parsed.ok()) {
    std::string m = "ignoring ";
    m.append(name).append(": ").append(parsed.status().message());
    m.append(" (using the built-in default '").append(builtin_default).append("')");
    log(LogLevel::kWarning, m);
    return std::nullopt;
  }
  return std::move(parsed).value();
}

std::string home_folder() {
  if (std::optional<std::string_view> home = env_value("HOME")) return std::string(*home);
  // No $HOME (daemons, some containers): ask the password database.
  long size = sysconf(_SC_GETPW_R_SIZE_MAX);
  std::vector<char> buf(size > 0 ? static_cast<size_t>(size) : 16384);
  passwd pw{};
  passwd* result = nullptr;
  if (getpwuid_r(getuid(), &pw, buf.data(), buf.size(), &result) == 0 && result != nullptr &&
      result->pw_dir != nullptr && result->pw_dir[0] != '\0') {
    return result->pw_dir;
  }
  return "";
}

RuntimeCacheSetting builtin_runtime_cache() {
  // The XDG base-directory spec says a relative $XDG_CACHE_HOME is invalid and to be ignored.
  std::optional<std::string_view> xdg = env_value("XDG_CACHE_HOME");
  if (xdg && xdg->front() == '/') {
    return RuntimeCacheSetting::path(std::string(*xdg) + "/kiln/runtime.kcache");
  }
  std::string home = home_folder();
  if (!home.empty()) return RuntimeCacheSetting::path(home + "/.cache/kiln/runtime.kcache");
  log(LogLevel::kWarning,
      "no per-user cache folder ($XDG_CACHE_HOME and $HOME are unset and the user has no home "
      "folder): the built-in runtime_cache is none; set KILN_RUNTIME_CACHE to a file path to "
      "keep compiled kernels between runs");
  return RuntimeCacheSetting::none();
}

}  // namespace

EnvironmentSnapshot read_runtime_environment() {
  EnvironmentSnapshot env;
  env.builtin_runtime_cache = builtin_runtime_cache();
  RuntimeSettings& s = env.settings;
  s.cuda_graph_strategy = read_env<CudaGraphStrategy>(
      kCudaGraphStrategyEnv, parse_cuda_graph_strategy, to_string(CudaGraphStrategy::kDisabled));
  s.kernel_specialization = read_env<KernelSpecializationStrategy>(
      kKernelSpecializationEnv, parse_kernel_specialization_strategy,
      to_string(KernelSpecializationStrategy::kLazy));
  if (auto cache = read_env<RuntimeCacheSetting>(kRuntimeCacheEnv, parse_runtime_cache,
                                                 env.builtin_runtime_cache.to_string())) {
    s.runtime_cache = *cache;
  }
  s.multi_device_safe_mode =
      read_env<bool>(kMultiDeviceSafeModeEnv, parse_multi_device_safe_mode, "false");
  return env;
}

ResolvedSettings resolve_base_settings(const RuntimeSettings& defaults,
                                       const EnvironmentSnapshot& env) {
  ResolvedSettings r;  // built-in values, source kBuiltin
  r.runtime_cache = env.builtin_runtime_cache;
  auto apply = [&r](const RuntimeSettings& layer, SettingSource source) {
    if (layer.cuda_graph_strategy) {
      r.cuda_graph_strategy = *layer.cuda_graph_strategy;
      r.sources.cuda_graph_strategy = source;
    }
    if (layer.kernel_specialization) {
      r.kernel_specialization = *layer.kernel_specialization;
      r.sources.kernel_specialization = source;
    }
    if (layer.runtime_cache.is_set()) {
      r.runtime_cache = layer.runtime_cache;
      r.sources.runtime_cache = source;
    }
    if (layer.multi_device_safe_mode) {
      r.multi_device_safe_mode = *layer.multi_device_safe_mode;
      r.sources.multi_device_safe_mode = source;
    }
  };
  apply(env.settings, SettingSource::kEnvironment);
  apply(defaults, SettingSource::kProcessDefault);
  return r;
}

}  // namespace kiln::internal
