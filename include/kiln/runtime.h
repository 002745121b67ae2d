// Runtime settings: how an engine runs, as opposed to what it computes.
//
// An engine file holds only the program. Everything here is runtime state chosen by whoever runs
// the engine; none of it is ever written into an engine file or into BuildOptions. This header is
// the one place that names the settings, their values, their defaults and their environment
// variables, and the only code that reads those variables is behind it.
//
// Resolution, highest wins (docs/runtime_modes.md has the user's guide):
//   1. per-call settings        (`call` argument of resolve_runtime_settings)
//   2. per-engine overrides     (`engine` argument; Engine::set_runtime_overrides)
//   3. scoped overrides         (ScopedRuntimeSettings: a stack private to each thread)
//   4. process defaults         (set_default_runtime_settings)
//   5. environment, read once   (KILN_CUDA_GRAPH_STRATEGY, KILN_KERNEL_SPECIALIZATION,
//                                KILN_RUNTIME_CACHE, KILN_MULTI_DEVICE_SAFE_MODE)
//   6. built-in defaults        (disabled, lazy, the per-user cache file, false)
// Each field resolves on its own, so a layer that sets one field leaves the others to the layers
// below it. A call resolves one ResolvedSettings at entry and keeps it: later changes on any
// thread never affect a call in flight.
//
// Cost: resolution allocates nothing, takes no lock and reads no environment on the common path
// (bench/settings_bench.cc measures it); a lock is taken once per thread after the process
// defaults change.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "kiln/status.h"

namespace kiln {

// The persistent kernel cache (include/kiln/runtime_cache.h, a later issue).
class RuntimeCache;

// ---- names: the user-facing strings, used by the C++ API, the CLI, Python and the environment.

inline constexpr std::string_view kCudaGraphStrategyName = "cuda_graph_strategy";
inline constexpr std::string_view kKernelSpecializationName =
    "dynamic_shapes_kernel_specialization_strategy";
inline constexpr std::string_view kRuntimeCacheName = "runtime_cache";
inline constexpr std::string_view kMultiDeviceSafeModeName = "multi_device_safe_mode";

inline constexpr const char* kCudaGraphStrategyEnv = "KILN_CUDA_GRAPH_STRATEGY";
inline constexpr const char* kKernelSpecializationEnv = "KILN_KERNEL_SPECIALIZATION";
inline constexpr const char* kRuntimeCacheEnv = "KILN_RUNTIME_CACHE";
inline constexpr const char* kMultiDeviceSafeModeEnv = "KILN_MULTI_DEVICE_SAFE_MODE";

// ---- values -------------------------------------------------------------------------------------

// Whether the CUDA backend captures whole executions as CUDA graphs and replays them.
enum class CudaGraphStrategy : uint8_t {
  kDisabled,           // "disabled" (built-in default)
  kWholeGraphCapture,  // "whole_graph_capture"
};

// What the CUDA backend does on a call with a shape signature it has not seen before.
enum class KernelSpecializationStrategy : uint8_t {
  kLazy,   // "lazy": run generic kernels now, specialise in the background (built-in default)
  kEager,  // "eager": compile the specialised kernels now, then run them
  kNone,   // "none": generic kernels only
};

std::string_view to_string(CudaGraphStrategy strategy);
std::string_view to_string(KernelSpecializationStrategy strategy);

// The only parsers of setting values. An unknown value gives kInvalidArgument with a message
// that lists the valid ones, e.g.
//   invalid cuda_graph_strategy 'whole'; expected disabled|whole_graph_capture
Result<CudaGraphStrategy> parse_cuda_graph_strategy(std::string_view name);
Result<KernelSpecializationStrategy> parse_kernel_specialization_strategy(std::string_view name);
// "1" | "true" -> true, "0" | "false" -> false.
Result<bool> parse_multi_device_safe_mode(std::string_view value);

// Which runtime cache a call uses: unset (let a lower layer decide), none (no persistent cache),
// a file path, or a shared in-process handle. Copying is cheap and never allocates: paths are
// interned for the life of the process (identical strings share one copy), and a handle is a
// std::shared_ptr copy.
class RuntimeCacheSetting {
 public:
  enum class Kind : uint8_t { kUnset, kNone, kPath, kHandle };

  RuntimeCacheSetting() = default;  // unset
  static RuntimeCacheSetting none() { return RuntimeCacheSetting(Kind::kNone); }
  // Any string is kept as given (the cache canonicalises it when it opens the file); use
  // parse_runtime_cache for text a user typed. Allocates on the first use of each distinct path.
  static RuntimeCacheSetting path(std::string_view path);
  // A null handle means none.
  static RuntimeCacheSetting handle(std::shared_ptr<RuntimeCache> cache);

  Kind kind() const { return kind_; }
  bool is_set() const { return kind_ != Kind::kUnset; }
  // The path; empty unless kind() == kPath. The string lives as long as the process.
  const std::string& path() const;
  // The handle; null unless kind() == kHandle.
  const std::shared_ptr<RuntimeCache>& handle() const { return handle_; }
  // Equal settings name the same cache: the same kind and the same path or the same handle.
  // Stable for the life of the process for paths; for a handle, while the handle is alive.
  const void* identity() const;
  // "unset", "none", the path, or "handle@0x...".
  std::string to_string() const;

  bool operator==(const RuntimeCacheSetting& other) const {
    return kind_ == other.kind_ && identity() == other.identity();
  }

 private:
  explicit RuntimeCacheSetting(Kind kind) : kind_(kind) {}

  Kind kind_ = Kind::kUnset;
  const std::string* path_ = nullptr;  // interned; never freed
  std::shared_ptr<RuntimeCache> handle_;
};

// "none" -> none, any other non-empty text -> that path; empty text is kInvalidArgument:
//   invalid runtime_cache ''; expected a file path or none
Result<RuntimeCacheSetting> parse_runtime_cache(std::string_view text);

// ---- settings -----------------------------------------------------------------------------------

// A partial set of runtime settings: an unset field defers to the layer below. A value type;
// copying never allocates.
struct RuntimeSettings {
  std::optional<CudaGraphStrategy> cuda_graph_strategy;
  std::optional<KernelSpecializationStrategy> kernel_specialization;
  RuntimeCacheSetting runtime_cache;
  std::optional<bool> multi_device_safe_mode;

  // Overwrites each field that `higher` sets; keeps the others. Returns *this.
  RuntimeSettings& merge(const RuntimeSettings& higher);
  // True when no field is set.
  bool empty() const;
  // Only the set fields, e.g. "cuda_graph_strategy=whole_graph_capture", or "{}" when empty.
  std::string to_string() const;

  bool operator==(const RuntimeSettings&) const = default;
};

// Where a resolved value came from.
enum class SettingSource : uint8_t {
  kCall,            // "call"
  kEngine,          // "engine"
  kScope,           // "scope"
  kProcessDefault,  // "default"
  kEnvironment,     // "environment"
  kBuiltin,         // "builtin"
};
std::string_view to_string(SettingSource source);

// The execution-relevant part of a ResolvedSettings: two calls whose keys are equal can share an
// execution context. Trivially copyable; compare with == and hash with std::hash. The cache
// identity is the interned path (stable for the process) or the handle's address, so whoever
// keeps a context under a key holding a handle must keep the handle alive with it.
struct RuntimeSettingsKey {
  CudaGraphStrategy cuda_graph_strategy = CudaGraphStrategy::kDisabled;
  KernelSpecializationStrategy kernel_specialization = KernelSpecializationStrategy::kLazy;
  bool multi_device_safe_mode = false;
  RuntimeCacheSetting::Kind runtime_cache_kind = RuntimeCacheSetting::Kind::kNone;
  const void* runtime_cache_identity = nullptr;

  bool operator==(const RuntimeSettingsKey&) const = default;
  size_t hash() const;
};

// Every field set, each with its source. Owns everything it refers to (the path is interned, a
// handle is held), so it stays valid whatever happens to the layers it came from.
struct ResolvedSettings {
  struct Sources {
    SettingSource cuda_graph_strategy = SettingSource::kBuiltin;
    SettingSource kernel_specialization = SettingSource::kBuiltin;
    SettingSource runtime_cache = SettingSource::kBuiltin;
    SettingSource multi_device_safe_mode = SettingSource::kBuiltin;
    bool operator==(const Sources&) const = default;
  };

  CudaGraphStrategy cuda_graph_strategy = CudaGraphStrategy::kDisabled;
  KernelSpecializationStrategy kernel_specialization = KernelSpecializationStrategy::kLazy;
  RuntimeCacheSetting runtime_cache = RuntimeCacheSetting::none();  // never unset
  bool multi_device_safe_mode = false;
  Sources sources;

  RuntimeSettingsKey context_key() const;
  // One line for logs and the CLI, each value with its source:
  // "cuda_graph_strategy=disabled (builtin), dynamic_shapes_kernel_specialization_strategy=..."
  std::string to_string() const;

  bool operator==(const ResolvedSettings&) const = default;
};

// ---- resolution ---------------------------------------------------------------------------------

// Resolves the settings for one call on the calling thread: `call` > `engine` > this thread's
// innermost scope > process defaults > environment > built-in defaults. Either pointer may be
// null; neither is kept. Thread-safe; no allocation, no lock and no getenv on the common path.
ResolvedSettings resolve_runtime_settings(const RuntimeSettings* call,
                                          const RuntimeSettings* engine);
// resolve_runtime_settings(nullptr, nullptr).
ResolvedSettings current_runtime_settings();

// Replaces the process defaults (layer 4) for every thread; calls already resolved keep theirs.
// Thread-safe.
void set_default_runtime_settings(RuntimeSettings defaults);
// Merges `overrides` into the process defaults in one atomic step (what Python's
// set_runtime_cache_path and set_multi_device_safe_mode use). Thread-safe.
void update_default_runtime_settings(const RuntimeSettings& overrides);
// The process defaults as last set: a partial RuntimeSettings, empty until set. Thread-safe.
RuntimeSettings default_runtime_settings();

// Pushes `overrides` onto the calling thread's scope stack for this object's lifetime (layer 3);
// the destructor pops it, also when an exception unwinds. Scopes nest: an inner scope's set fields
// win over an outer one's, its unset fields fall through to the outer scope. The stack is private
// to each thread: a scope on one thread is invisible to every other thread, and a new thread
// starts with an empty stack (so it sees the process defaults).
//
// Create it as a local variable. It must be destroyed on the thread that created it, innermost
// first; anything else is a programming error and aborts with a message. Not copyable, not
// movable. The Python binding maps contextvars-backed scopes onto this per call.
class ScopedRuntimeSettings {
 public:
  explicit ScopedRuntimeSettings(const RuntimeSettings& overrides) noexcept;
  ~ScopedRuntimeSettings();

  ScopedRuntimeSettings(const ScopedRuntimeSettings&) = delete;
  ScopedRuntimeSettings& operator=(const ScopedRuntimeSettings&) = delete;
  ScopedRuntimeSettings(ScopedRuntimeSettings&&) = delete;
  ScopedRuntimeSettings& operator=(ScopedRuntimeSettings&&) = delete;

  // This scope's overrides merged over every enclosing scope's: what layer 3 contributes while
  // this is the innermost scope.
  const RuntimeSettings& effective() const { return effective_; }

 private:
  const ScopedRuntimeSettings* enclosing_;
  RuntimeSettings effective_;
};

}  // namespace kiln

template <>
struct std::hash<kiln::RuntimeSettingsKey> {
  size_t operator()(const kiln::RuntimeSettingsKey& key) const noexcept { return key.hash(); }
};
