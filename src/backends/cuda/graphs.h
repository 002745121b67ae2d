// CUDA graphs for one CUDA program (one execution context): cuda_graph_strategy
// whole_graph_capture, enqueueing into a caller's stream capture, and capturability.
//
// whole_graph_capture. Calls are keyed by shape signature (input dtypes and dims). The first
// calls of a signature run plainly (that also compiles its kernels and finds out whether the
// program can be captured for it: no device value read on the host). Once the signature's
// kernels are final (specializer.h) the next call captures the program's whole execution on a
// non-blocking kiln stream (cudaStreamCaptureModeThreadLocal), instantiates it and replays it
// with cudaGraphLaunch; later calls only replay. Each graph owns its scratch memory (an arena,
// stable across replays), its cuBLASLt workspace and its error flag.
//
// I/O buffers. The graph reads the caller's input buffers and writes the outputs straight into
// the output buffers (the caller's, or new ones kiln allocates per call). When buffers move
// between calls:
//   - a kiln kernel that touches one is rebound: its node gets the new pointer through
//     cudaGraphExecKernelNodeSetParams (counted: graph_rebinds, one per node);
//   - a buffer that a library call (cuBLASLt GEMM) or a memset touches cannot be patched, so
//     graphs are kept per set of such buffers (up to 4 per signature: double-buffered callers
//     never recapture); past that, the least recently used graph of the signature is re-captured
//     and updated in place with cudaGraphExecUpdate (graph_updates);
//   - an output that no node writes in place (a view of an input, a constant) is copied into
//     its buffer by a kernel inside the graph (graph_copies, per replay).
// At most `max_graphs` graphs live per program (LRU; graph_evictions). A capture that fails
// falls back to a plain run, counted (graph_fallbacks) and logged once per engine; the
// signature then always runs plainly.
//
// Caller-side capture. When the caller's stream is capturing, kiln never starts an inner capture
// on it: it captures the call into a graph of its own, then adds that graph to the caller's
// capture as one child-graph node, so a failure leaves nothing half-captured. Its memory stays
// alive as long as the caller's graph (a CUDA user object) or the returned outputs, whichever is
// longer; the outputs are *static*: every replay of the caller's graph rewrites them (pass
// output buffers to choose where). A program that is not capturable for the call's shapes fails
// with kInvalidArgument naming the engine, the reason and the setting to change.
//
// Thread-safety: all public methods are thread-safe. Replays of one graph are serialised (CUDA
// orders launches of one executable graph anyway); different graphs replay concurrently.
#pragma once

#include <cuda_runtime_api.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "backends/cuda/allocator.h"
#include "backends/cuda/capture_hooks.h"
#include "backends/cuda/gemm.h"
#include "ir/graph.h"
#include "kiln/runtime.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::cuda {

// One walk of the program's graph (program.cc): everything is enqueued on env.stream and
// nothing waits at the end; the caller reads the error flag and synchronises.
struct WalkEnv {
  std::shared_ptr<Stream> stream;
  GemmRunner* gemm = nullptr;
  int* error_flag = nullptr;
  CaptureHooks* hooks = nullptr;           // non-null while capturing
  std::span<const Tensor> output_buffers;  // empty: outputs are new tensors
  bool device_outputs = false;             // outputs stay on the device even for host inputs
};

// What a walk found out.
struct WalkFacts {
  uint64_t host_reads = 0;     // device values read on the host (each one waits for the stream)
  uint64_t output_copies = 0;  // outputs copied into their buffers instead of written in place
  std::string not_capturable;  // why the walk cannot be captured ("" when it can)
  std::vector<std::pair<DType, Dims>> outputs;
};

// What the graph executor needs from its program.
class GraphTarget {
 public:
  virtual ~GraphTarget() = default;
  virtual Status walk(const WalkEnv& env, std::span<const Tensor> inputs, std::vector<Tensor>* outputs,
                      WalkFacts* facts) const = 0;
  // A whole plain run on the program's own stream with device `inputs`, waited for.
  virtual Status probe(std::span<const Tensor> inputs, WalkFacts* facts) const = 0;
  // A GEMM runner configured like the program's run slots, on `stream`.
  virtual std::unique_ptr<GemmRunner> make_gemm(std::shared_ptr<Stream> stream) const = 0;
  // Whether the kernels for these inputs are final (no specialised kernel will be swapped in).
  virtual bool kernels_final(std::span<const Tensor> inputs) const = 0;
  // Whether a run may write the error flag (else it is neither reset nor read).
  virtual bool uses_error_flag() const = 0;
};

struct GraphOptions {
  int device = 0;
  std::string engine_name;
  bool static_shapes = false;
  ResolvedSettings settings;
  size_t max_graphs = 16;         // live graphs per program (LRU)
  size_t sets_per_signature = 4;  // graphs per signature for differing library-touched buffers
};

// multi_device_safe_mode: makes the program's device current for one call and restores the
// caller's on destruction. Without enter() it does nothing (no device query at all).
class DeviceGuard {
 public:
  DeviceGuard() = default;
  ~DeviceGuard() {
    if (previous_ >= 0) cudaSetDevice(previous_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;
  Status enter(int device, std::atomic<uint64_t>& checks, std::atomic<uint64_t>& switches) {
    checks.fetch_add(1, std::memory_order_relaxed);
    int current = -1;
    if (cudaGetDevice(&current) != cudaSuccess) cudaGetLastError();
    if (current == device) return Status();
    switches.fetch_add(1, std::memory_order_relaxed);
    cudaError_t err = cudaSetDevice(device);
    if (err != cudaSuccess) {
      cudaGetLastError();
      return device_error("multi_device_safe_mode: cudaSetDevice(" + std::to_string(device) + ") failed: " +
                          cudaGetErrorString(err));
    }
    previous_ = current;
    return Status();
  }

 private:
  int previous_ = -1;
};

struct CaptureSlot;
struct GraphEntry;

class GraphExecutor {
 public:
  // `target` must outlive the executor.
  static Result<std::unique_ptr<GraphExecutor>> create(GraphOptions options, std::shared_ptr<const ir::Graph> graph,
                                                       std::shared_ptr<DevicePool> pool, const GraphTarget* target);
  ~GraphExecutor();

  // whole_graph_capture: one call on `stream` (a run slot's; `gemm` and `flag` are that slot's,
  // used by plain walks). `sync`: wait for the results and check the error flag (false when the
  // caller gave a stream). Outputs are device tensors when an input is on the device or output
  // buffers are given, else host tensors.
  Status run(const std::shared_ptr<Stream>& stream, GemmRunner* gemm, int* flag, std::span<const Tensor> inputs,
             std::span<const Tensor> output_buffers, bool sync, std::vector<Tensor>* outputs);

  // Adds one call to the capture under way on `caller` (see the header comment).
  Status run_in_capture(cudaStream_t caller, std::span<const Tensor> inputs, std::span<const Tensor> output_buffers,
                        std::vector<Tensor>* outputs);

  // Engine::is_stream_capturable for the program's settings and these input shapes.
  bool capturable(std::span<const Dims> shapes, std::string* reason);

  // Records what a plain walk with all-device inputs found out about their signature.
  void learn(std::span<const Tensor> inputs, const WalkFacts& facts);

  // graphs_captured, graph_replays, graph_rebinds, graph_updates, graph_copies, graph_fallbacks,
  // graph_evictions, graphs_live, caller_captures; for diagnosis graph_pinned_buffers (summed over
  // captures: I/O buffers a library call or memset touches, which cannot be rebound) and
  // graph_unanalysed (captures where a launch could not be analysed, so every buffer was pinned).
  void add_counters(std::map<std::string, uint64_t>& out) const;

  // Frees the memory of captures whose caller graphs were destroyed (CUDA calls its user-object
  // destructor on an internal thread, where freeing is not allowed). Call where CUDA may be used.
  static void collect_garbage();

 private:
  struct Facts {
    bool capturable = false;
    std::string reason;
    std::vector<std::pair<DType, Dims>> outputs;
  };
  struct Captured;

  GraphExecutor() = default;
  std::vector<int64_t> signature(std::span<const Tensor> inputs) const;
  std::vector<int64_t> signature(std::span<const Dims> shapes) const;
  bool find_facts(const std::vector<int64_t>& sig, Facts* out) const;
  void store_facts(const std::vector<int64_t>& sig, const WalkFacts& facts);
  Status check_output_buffers(std::span<const Tensor> buffers, const Facts& facts) const;
  Result<Captured> capture(std::span<const Tensor> inputs, std::span<const Tensor> output_buffers);
  Result<std::shared_ptr<GraphEntry>> entry_for(const std::vector<int64_t>& sig, std::span<const Tensor> inputs,
                                                std::span<const Tensor> output_buffers);
  Status update(GraphEntry& entry, std::span<const Tensor> inputs, std::span<const Tensor> output_buffers);
  // `*rebind_refused`: CUDA refused to set a kernel node's parameters; nothing was launched and
  // the entry is half-rebound (the caller drops it and stops rebinding in this program).
  Status replay(GraphEntry& entry, std::span<const Tensor> inputs, std::span<const Tensor> output_buffers,
                cudaStream_t stream, bool sync, bool* rebind_refused);
  Status check_flag(int* flag, cudaStream_t stream) const;
  Status plain(const std::shared_ptr<Stream>& stream, GemmRunner* gemm, int* flag, std::span<const Tensor> inputs,
               std::span<const Tensor> output_buffers, bool sync, std::vector<Tensor>* outputs);

  GraphOptions options_;
  std::shared_ptr<const ir::Graph> graph_;
  std::shared_ptr<DevicePool> pool_;
  const GraphTarget* target_ = nullptr;
  std::shared_ptr<Stream> side_;  // arena allocations and constant uploads, outside any capture

  mutable std::mutex facts_mu_;
  std::map<std::vector<int64_t>, Facts> facts_;

  std::mutex capture_mu_;  // one capture at a time per program
  mutable std::mutex mu_;  // guards graphs_
  std::list<std::shared_ptr<GraphEntry>> graphs_;  // most recently used first

  mutable std::atomic<uint64_t> captured_{0}, replays_{0}, rebinds_{0}, updates_{0}, copies_{0}, fallbacks_{0},
      evictions_{0}, caller_captures_{0}, pinned_{0}, unanalysed_{0};
  std::atomic<bool> no_rebind_{false};  // CUDA refused a rebind once: later captures pin every buffer
};

}  // namespace kiln::cuda
