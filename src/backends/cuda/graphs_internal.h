// Pieces of graphs.cc: the per-graph arena, the capture recorder and the graph entries.
#pragma once

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "backends/cuda/allocator.h"
#include "backends/cuda/capture_hooks.h"
#include "backends/cuda/gemm.h"
#include "backends/cuda/graphs.h"

namespace kiln::cuda {

// Device memory owned by one captured graph. Blocks come from the pool on a side stream that
// never captures, and are freed (in that stream's order) when the arena goes. While capturing,
// a tensor's block returns to the arena when the tensor dies and is reused by a later allocation
// of the same size: the capture is one stream, so reuse is ordered. freeze() ends that.
class Arena {
 public:
  Arena(std::shared_ptr<DevicePool> pool, std::shared_ptr<Stream> side, int device)
      : pool_(std::move(pool)), side_(std::move(side)), device_(device) {}
  // `persistent`: never reused (written outside the graph, read on every replay).
  Result<Tensor> alloc(DType dtype, const Dims& dims, bool persistent);
  void freeze();
  uint64_t bytes() const { return bytes_; }
  cudaStream_t side() const { return side_->get(); }

 private:
  struct State {
    std::mutex mu;
    std::multimap<size_t, void*> free;
    bool frozen = false;
  };
  std::shared_ptr<DevicePool> pool_;
  std::shared_ptr<Stream> side_;
  int device_;
  std::shared_ptr<State> state_ = std::make_shared<State>();
  std::vector<std::shared_ptr<void>> blocks_;
  uint64_t bytes_ = 0;
};

// What one captured graph owns besides the graph itself.
struct CaptureSlot {
  std::shared_ptr<Stream> stream;    // non-blocking; the capture runs here
  std::unique_ptr<GemmRunner> gemm;  // initialised before the capture (workspace outside it)
  std::unique_ptr<Arena> arena;
  int* flag = nullptr;               // the graph's error flag (arena, persistent)
};

struct Binding {
  uintptr_t base = 0;
  size_t bytes = 0;
  bool contains(uintptr_t p) const { return base != 0 && p >= base && p < base + std::max<size_t>(bytes, 1); }
  bool operator==(const Binding&) const = default;
};

// A kiln kernel launch that reads or writes a binding: enough to set its node's parameters.
struct LaunchRecord {
  size_t index = 0;              // among the capture's kiln launches
  cudaGraphNode_t node = nullptr;
  cudaKernelNodeParams base{};   // func, grid, block, shared memory, as launched
  std::vector<uint8_t> bytes;    // the arguments, in the device-side parameter layout
  std::vector<size_t> offsets;   // of each parameter in `bytes`
  struct Patch {
    size_t at;       // byte offset in `bytes` of a pointer
    size_t binding;  // which binding it points into
    uintptr_t delta; // how far past the binding's base
  };
  std::vector<Patch> patches;
};

// CaptureHooks for one capture: allocates from the slot's arena and records launches.
class Recorder final : public CaptureHooks {
 public:
  Recorder(CaptureSlot& slot, std::vector<Binding> bindings) : slot_(slot), bindings_(std::move(bindings)),
        pinned_(bindings_.size(), false) {}

  Result<Tensor> alloc(DType dtype, Dims dims) override;
  Result<Tensor> upload_constant(const Tensor& host) override;
  void on_kernel(cudaKernel_t kernel, dim3 grid, dim3 block, size_t shared_bytes, void** args) override;
  void on_library(const void* a, const void* b, const void* c, const void* d) override;

  // After the capture: fills the records' base parameters and pins bindings that memcpy or
  // memset nodes touch. When something could not be analysed, pins every binding.
  void finish(cudaGraph_t graph);

  std::vector<LaunchRecord> records;
  std::vector<cudaGraphNode_t> kernel_nodes;  // every kiln launch, in order
  const std::vector<bool>& pinned() const { return pinned_; }
  // True when a launch or node could not be analysed (every binding is then pinned).
  bool unanalysed() const { return !why_.empty(); }
  // Why the first thing that could not be analysed could not be (empty when analysed).
  const std::string& unanalysed_reason() const { return why_; }
  // Pins every binding: the graph is replayed only with the buffers it was captured with.
  void pin_all() { pinned_.assign(pinned_.size(), true); }

 private:
  void pin_pointer(const void* p);
  void give_up(std::string why) {  // `why` is never empty
    if (why_.empty()) why_ = std::move(why);
  }

  CaptureSlot& slot_;
  std::vector<Binding> bindings_;
  std::vector<bool> pinned_;
  std::string why_;
};

// One instantiated graph in a program's LRU.
struct GraphEntry {
  ~GraphEntry();
  std::vector<int64_t> sig;
  std::shared_ptr<CaptureSlot> slot;
  cudaGraph_t graph = nullptr;  // the graph `exec` was instantiated from: node handles
  cudaGraphExec_t exec = nullptr;
  cudaEvent_t done = nullptr;   // recorded after each launch
  std::vector<Binding> bindings;  // what `exec` uses now
  std::vector<bool> pinned;       // bindings a library call or memset touches
  std::vector<LaunchRecord> records;
  std::vector<cudaGraphNode_t> kernel_nodes;
  uint64_t copies = 0;  // copy kernels per replay
  std::mutex mu;        // rebind + launch
};

std::vector<Binding> bindings_of(std::span<const Tensor> inputs, std::span<const Tensor> outputs);

}  // namespace kiln::cuda
