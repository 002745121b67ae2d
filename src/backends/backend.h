// The backend interface: a backend turns an immutable graph into a runnable program.
//
// Public non-virtual methods check and count, then call the protected hooks (tinygrad's
// alloc/_alloc shape). Optional abilities are asked for with supports(), never assumed.
// A Backend and the programs it prepares are thread-safe: run() may be called concurrently,
// each call using its own scratch memory.
#pragma once

#include <atomic>
#include <cstdint>
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
  // Per graph input: the shape profile's opt shape (empty when unknown). Backends that JIT
  // kernels prepare them for it at creation.
  std::vector<Dims> opt_shapes;
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
  uint64_t runs() const { return runs_.load(std::memory_order_relaxed); }

 protected:
  virtual Status do_run(std::span<const Tensor> inputs, std::vector<Tensor>* outputs) const = 0;

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
