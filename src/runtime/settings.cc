// Setting values: names, parsing, the cache setting, merging and printing. Resolution is in
// settings_resolve.cc, the environment in settings_env.cc.
#include <cstdio>
#include <mutex>
#include <string>
#include <unordered_set>

#include "kiln/runtime.h"

namespace kiln {
namespace {

std::string invalid_value_message(std::string_view setting, std::string_view value,
                                  std::string_view expected) {
  std::string m = "invalid ";
  m.append(setting).append(" '").append(value).append("'; expected ").append(expected);
  return m;
}

// Paths are interned so that copying a setting, resolving it and keying a context never
// allocate, and so that equal paths compare by address. Nodes of an unordered_set never move.
const std::string* intern_path(std::string_view path) {
  static std::mutex mu;
  static auto* table = new std::unordered_set<std::string>();  // lives as long as the process
  std::lock_guard<std::mutex> lock(mu);
  return &*table->emplace(path).first;
}

}  // namespace

std::string_view to_string(CudaGraphStrategy strategy) {
  switch (strategy) {
    case CudaGraphStrategy::kDisabled: return "disabled";
    case CudaGraphStrategy::kWholeGraphCapture: return "whole_graph_capture";
  }
  return "invalid";
}

std::string_view to_string(KernelSpecializationStrategy strategy) {
  switch (strategy) {
    case KernelSpecializationStrategy::kLazy: return "lazy";
    case KernelSpecializationStrategy::kEager: return "eager";
    case KernelSpecializationStrategy::kNone: return "none";
  }
  return "invalid";
}

std::string_view to_string(SettingSource source) {
  switch (source) {
    case SettingSource::kCall: return "call";
    case SettingSource::kEngine: return "engine";
    case SettingSource::kScope: return "scope";
    case SettingSource::kProcessDefault: return "default";
    case SettingSource::kEnvironment: return "environment";
    case SettingSource::kBuiltin: return "builtin";
  }
  return "invalid";
}

Result<CudaGraphStrategy> parse_cuda_graph_strategy(std::string_view name) {
  for (auto s : {CudaGraphStrategy::kDisabled, CudaGraphStrategy::kWholeGraphCapture}) {
    if (name == to_string(s)) return s;
  }
  return invalid_argument(
      invalid_value_message(kCudaGraphStrategyName, name, "disabled|whole_graph_capture"));
}

Result<KernelSpecializationStrategy> parse_kernel_specialization_strategy(std::string_view name) {
  for (auto s : {KernelSpecializationStrategy::kLazy, KernelSpecializationStrategy::kEager,
                 KernelSpecializationStrategy::kNone}) {
    if (name == to_string(s)) return s;
  }
  return invalid_argument(
      invalid_value_message(kKernelSpecializationName, name, "lazy|eager|none"));
}

Result<bool> parse_multi_device_safe_mode(std::string_view value) {
  if (value == "1" || value == "true") return true;
  if (value == "0" || value == "false") return false;
  return invalid_argument(invalid_value_message(kMultiDeviceSafeModeName, value, "1|0|true|false"));
}

Result<RuntimeCacheSetting> parse_runtime_cache(std::string_view text) {
  if (text.empty()) {
    return invalid_argument(invalid_value_message(kRuntimeCacheName, text, "a file path or none"));
  }
  if (text == "none") return RuntimeCacheSetting::none();
  return RuntimeCacheSetting::path(text);
}

// ---- RuntimeCacheSetting ------------------------------------------------------------------------

RuntimeCacheSetting RuntimeCacheSetting::path(std::string_view path) {
  RuntimeCacheSetting s(Kind::kPath);
  s.path_ = intern_path(path);
  return s;
}

RuntimeCacheSetting RuntimeCacheSetting::handle(std::shared_ptr<RuntimeCache> cache) {
  if (cache == nullptr) return none();
  RuntimeCacheSetting s(Kind::kHandle);
  s.handle_ = std::move(cache);
  return s;
}

const std::string& RuntimeCacheSetting::path() const {
  static const std::string kEmpty;
  return path_ != nullptr ? *path_ : kEmpty;
}

const void* RuntimeCacheSetting::identity() const {
  switch (kind_) {
    case Kind::kPath: return path_;
    case Kind::kHandle: return handle_.get();
    case Kind::kUnset:
    case Kind::kNone: return nullptr;
  }
  return nullptr;
}

std::string RuntimeCacheSetting::to_string() const {
  switch (kind_) {
    case Kind::kUnset: return "unset";
    case Kind::kNone: return "none";
    case Kind::kPath: return *path_;
    case Kind::kHandle: {
      char buf[48];
      std::snprintf(buf, sizeof(buf), "handle@%p", static_cast<const void*>(handle_.get()));
      return buf;
    }
  }
  return "invalid";
}

// ---- RuntimeSettings / ResolvedSettings ---------------------------------------------------------

RuntimeSettings& RuntimeSettings::merge(const RuntimeSettings& higher) {
  if (higher.cuda_graph_strategy) cuda_graph_strategy = higher.cuda_graph_strategy;
  if (higher.kernel_specialization) kernel_specialization = higher.kernel_specialization;
  if (higher.runtime_cache.is_set()) runtime_cache = higher.runtime_cache;
  if (higher.multi_device_safe_mode) multi_device_safe_mode = higher.multi_device_safe_mode;
  return *this;
}

bool RuntimeSettings::empty() const {
  return !cuda_graph_strategy && !kernel_specialization && !runtime_cache.is_set() &&
         !multi_device_safe_mode;
}

std::string RuntimeSettings::to_string() const {
  std::string out;
  auto add = [&out](std::string_view name, std::string_view value) {
    if (!out.empty()) out += ", ";
    out.append(name).append("=").append(value);
  };
  if (cuda_graph_strategy) add(kCudaGraphStrategyName, kiln::to_string(*cuda_graph_strategy));
  if (kernel_specialization)
    add(kKernelSpecializationName, kiln::to_string(*kernel_specialization));
  if (runtime_cache.is_set()) add(kRuntimeCacheName, runtime_cache.to_string());
  if (multi_device_safe_mode)
    add(kMultiDeviceSafeModeName, *multi_device_safe_mode ? "true" : "false");
  return out.empty() ? "{}" : out;
}

RuntimeSettingsKey ResolvedSettings::context_key() const {
  RuntimeSettingsKey key;
  key.cuda_graph_strategy = cuda_graph_strategy;
  key.kernel_specialization = kernel_specialization;
  key.multi_device_safe_mode = multi_device_safe_mode;
  key.runtime_cache_kind = runtime_cache.kind();
  key.runtime_cache_identity = runtime_cache.identity();
  return key;
}

size_t RuntimeSettingsKey::hash() const {
  // The small fields pack into one word; mix it with the identity pointer (boost's combine).
  size_t small = static_cast<size_t>(cuda_graph_strategy) |
                 static_cast<size_t>(kernel_specialization) << 8 |
                 static_cast<size_t>(multi_device_safe_mode) << 16 |
                 static_cast<size_t>(runtime_cache_kind) << 24;
  size_t h = std::hash<const void*>()(runtime_cache_identity);
  return h ^ (std::hash<size_t>()(small) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2));
}

std::string ResolvedSettings::to_string() const {
  std::string out;
  auto add = [&out](std::string_view name, std::string_view value, SettingSource source) {
    if (!out.empty()) out += ", ";
    out.append(name).append("=").append(value).append(" (").append(kiln::to_string(source));
    out += ')';
  };
  add(kCudaGraphStrategyName, kiln::to_string(cuda_graph_strategy), sources.cuda_graph_strategy);
  add(kKernelSpecializationName, kiln::to_string(kernel_specialization),
      sources.kernel_specialization);
  add(kRuntimeCacheName, runtime_cache.to_string(), sources.runtime_cache);
  add(kMultiDeviceSafeModeName, multi_device_safe_mode ? "true" : "false",
      sources.multi_device_safe_mode);
  return out;
}

}  // namespace kiln
