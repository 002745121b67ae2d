// The backend interface: a backend turns an immutable graph into a runnable program.
//
// Public non-virtual methods check and count, then call the protected hooks (tinygrad's
// alloc/_alloc shape). Optional abilities are asked for with supports(), never assumed.
// A Backend and the programs it prepares are thread-safe: run() may be called concurrently,
// each call using its own scratch memory.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "kiln/builder.h"
#include "kiln/runtime.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln {

enum class Feature : uint8_t {
  kGraphCapture,   // CUDA graphs
  kDeviceMemory,   // inputs/outputs may live in device memory
  kHalfCompute,    // computes in f16/bf16 natively
};

struct PrepareOptions {
  Precision precision = Precision::kFp32;
  bool allow_tf32 = false;
  ResolvedSettings settings;  // the execution-relevant runtime settings of the context
  std::string engine_name;    // for messages
  bool static_shapes = false; // every input binding has one shape (min == max)
  // Per graph input: the shape profile's opt shape (empty when unknown). Backends that JIT
  // kernels prepare them for it at creation.
  std::vector<Dims> opt_shapes;
  std::vector<Dims> min_shapes;  // the profile's min shape, likewise
};

// Per-call execution options beyond the inputs (kiln::RunOptions' stream and output buffers).
struct RunRequest {
  // A cudaStream_t of the program's device; null: the backend's own per-call stream. With a
  // stream, work is enqueued in its order and run() does not wait for it.
  void* stream = nullptr;
  // Empty, or one device tensor per graph output with the output's dtype and dims: the outputs
  // are written there and returned as these tensors.
  std::span<const Tensor> output_buffers;
  bool empty() const { return stream == nullptr && output_buffers.empty(); }
};

struct ProgramStats {
  uint64_t runs = 0;
};

class BackendProgram {
 public:
  virtual ~BackendProgram() = default;
  // Runs the graph on `inputs` (graph input order). `outputs` receives the graph outputs in order.
  Status run(std::span<const Tensor> inputs, std::vector<Tensor>* outputs) const {
    runs_.fetch_add(1, std::memory_order_relaxed);
    return do_run(inputs, outputs);
  }
  // The same with a stream and/or output buffers. Backends without device memory reject a
  // non-empty request with kInvalidArgument.
  Status run(std::span<const Tensor> inputs, std::vector<Tensor>* outputs, const RunRequest& request) const {
    if (request.empty()) return run(inputs, outputs);
    runs_.fetch_add(1, std::memory_order_relaxed);
    return do_run_request(inputs, outputs, request);
  }
  uint64_t runs() const { return runs_.load(std::memory_order_relaxed); }

  // Backend-specific counters (CUDA graphs captured, replays, ...), by name. Thread-safe.
  virtual std::map<std::string, uint64_t> counters() const { return {}; }

  // Whether a call with inputs of these shapes can be enqueued into a caller's CUDA stream
  // capture under the program's settings; when not, `reason` says why and which setting to
  // change. May run the program once on zero-filled inputs to find out (cached per shapes).
  virtual bool is_stream_capturable(std::span<const Dims> shapes, std::string* reason) const {
    if (reason) *reason = "this backend does not run on CUDA streams";
    return false;
  }

 protected:
  virtual Status do_run(std::span<const Tensor> inputs, std::vector<Tensor>* outputs) const = 0;
  virtual Status do_run_request(std::span<const Tensor> inputs, std::vector<Tensor>* outputs,
                                const RunRequest& request) const {
    return invalid_argument("this backend takes no stream and no output buffers (RunOptions::stream and "
                            "RunOptions::output_buffers are for the cuda backend)");
  }

 private:
  mutable std::atomic<uint64_t> runs_{0};
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual Device device() const = 0;
  bool supports(Feature f) const { return do_supports(f); }

  // Prepares `graph` (kept alive by the program). Fails with kUnsupported naming the first node
  // whose op this backend cannot run.
  Result<std::unique_ptr<BackendProgram>> prepare(std::shared_ptr<const ir::Graph> graph,
                                                  const PrepareOptions& options) const {
    if (!graph) return invalid_argument("prepare: null graph");
    return do_prepare(std::move(graph), options);
  }

 protected:
  virtual bool do_supports(Feature f) const = 0;
  virtual Result<std::unique_ptr<BackendProgram>> do_prepare(std::shared_ptr<const ir::Graph> graph,
                                                             const PrepareOptions& options) const = 0;
};

}  // namespace kiln
