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
  // cuda backend: a cudaStream_t of `device`; null (the default) means kiln's own per-call
  // stream, and run() returns once the results are ready. With a stream, kiln's work is ordered
  // after what the caller queued on it and before what the caller queues next; run() does not
  // wait, and device outputs are ready in the stream's order. If the stream is capturing a CUDA
  // graph, kiln adds its work to that capture (see Engine::is_stream_capturable) and never starts
  // a capture of its own. kiln never captures on the legacy default stream: graphs are captured
  // on kiln's own streams and ordered with the caller's stream by events.
  void* stream = nullptr;
  // cuda backend: empty, or one device tensor per output (dtype and dims of that output, on
  // `device`, not aliasing an input). Outputs are written there, and run() returns these tensors.
  // Buffers that change between calls are rebound in captured CUDA graphs, not copied.
  std::span<const Tensor> output_buffers;
};

struct EngineStats {
  uint64_t calls = 0;
  uint64_t contexts_created = 0;
  uint64_t contexts_reused = 0;
  uint64_t contexts_evicted = 0;
  std::map<std::string, uint64_t> calls_per_context;  // key description -> calls
  // Backend counters summed over the live contexts, by name: for the cuda backend the CUDA graph
  // counters (graphs_captured, graph_replays, graph_rebinds, graph_updates, graph_copies,
  // graph_fallbacks, graph_evictions, caller_captures, device_checks, device_switches) and
  // whatever else the backend reports.
  std::map<std::string, uint64_t> backend_counters;
};

// Opens kiln's backend `backend` on `device` now, as the first run there would: for "cuda" the
// device's context and properties and kiln's memory pool for it. A process that knows which GPU
// it will run on can call this while it does other work, so that its first inference does not
// wait for it; `kiln.load` in Python does when PyTorch has initialised CUDA already.
// Errors, as a run's would be: kUnavailable (no such backend or no GPU), kInvalidArgument.
Status prepare_backend(const std::string& backend, int device);

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

  // True when a call with `options` (their settings resolved on this thread now) and inputs of
  // `shapes` can be enqueued into a caller's CUDA stream capture: the cuda backend, no node that
  // runs on the host or reads a device value there for these shapes, and kernels that are final
  // (dynamic_shapes_kernel_specialization_strategy none or eager, or an engine whose inputs are
  // all static). May run the engine once on zero-filled inputs of those shapes to find out.
  // `reason`, when given, receives why not and what to change.
  bool is_stream_capturable(const RunOptions& options, std::span<const Dims> shapes,
                            std::string* reason = nullptr) const;

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
