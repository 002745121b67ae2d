// Engine: a loaded engine file, validated and immutable, shareable across threads.
//
// An Engine holds the program (graph, weights, bindings) and nothing about how it runs. Each call
// resolves the runtime settings once at entry (kiln/runtime.h) and runs on an execution context
// for (backend, device, execution-relevant settings); contexts are created on first use and kept
// in a small LRU, so flipping a setting per call reuses what was built before.
// All methods are thread-safe; concurrent run() calls do not serialise on an engine-wide lock
// (a mutex guards only the context table lookup).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kiln/builder.h"
#include "kiln/runtime.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln {

struct BindingInfo {
  std::string name;
  DType dtype = DType::kUndefined;
  std::vector<std::string> dims;  // per dim: its size ("224"), its symbol ("batch") or "?"
  bool rank_known = true;
  Dims min, opt, max;             // inputs only: the accepted shape range
};

struct EngineInfo {
  std::string name;
  uint16_t format_major = 0, format_minor = 0;
  std::string kiln_version;
  std::string target_platform;
  int min_compute_capability = 0;
  HardwareCompatibility hardware_compatibility = HardwareCompatibility::kPortable;
  Precision precision = Precision::kFp32;
  bool allow_tf32 = false;
  std::map<std::string, int64_t> op_histogram;
  uint64_t weight_bytes = 0;
  uint64_t node_count = 0;
  std::map<std::string, std::string> metadata;
};

struct RunOptions {
  std::string backend = "cpu";                // "cpu" | "cuda"
  int device = 0;
  const RuntimeSettings* settings = nullptr;  // per-call settings: highest precedence
  // When set, used for this call instead of the engine's own overrides (layer 2). The Python
  // binding passes a module's settings here, so two modules over one engine stay independent.
  const RuntimeSettings* engine_settings = nullptr;
};

struct EngineStats {
  uint64_t calls = 0;
  uint64_t contexts_created = 0;
  uint64_t contexts_reused = 0;
  uint64_t contexts_evicted = 0;
  std::map<std::string, uint64_t> calls_per_context;  // key description -> calls
};

class Engine {
 public:
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Loads (mmap) and validates an engine file. Errors: kNotFound/kIoError, kInvalidData for a
  // corrupt, truncated or too-new file (message names what and where).
  static Result<std::shared_ptr<Engine>> load(const std::string& path);
  static Result<std::shared_ptr<Engine>> load_from_memory(std::vector<uint8_t> bytes);

  const EngineInfo& info() const;
  const std::vector<BindingInfo>& inputs() const;
  const std::vector<BindingInfo>& outputs() const;

  // Checks count, dtype, rank and shape-profile bounds of `inputs`; kInvalidArgument names the
  // binding, what was given and what is allowed.
  Status check_inputs(std::span<const Tensor> inputs) const;

  // Runs the engine. Thread-safe.
  Result<std::vector<Tensor>> run(std::span<const Tensor> inputs, const RunOptions& options = {}) const;

  // The settings a call with these options would run with on this thread now.
  ResolvedSettings resolve_settings(const RunOptions& options) const;

  // Per-engine runtime overrides (precedence below per-call, above scopes). Thread-safe; calls
  // already running keep the settings they resolved.
  void set_runtime_overrides(const RuntimeSettings& overrides);
  void clear_runtime_overrides();
  RuntimeSettings runtime_overrides() const;

  EngineStats stats() const;

  struct Impl;

 private:
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln
