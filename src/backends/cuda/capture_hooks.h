// What a RunContext calls while the program's work is being captured into a CUDA graph
// (graphs.h implements it). Without hooks a RunContext allocates from the pool and launches
// directly; with hooks, memory must stay valid for every replay of the graph and every launch
// and library call is reported, so that the graph's I/O pointers can be rebound later.
#pragma once

#include <cuda_runtime_api.h>

#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::cuda {

class CaptureHooks {
 public:
  virtual ~CaptureHooks() = default;
  // Scratch memory owned by the graph being captured (stable across its replays).
  virtual Result<Tensor> alloc(DType dtype, Dims dims) = 0;
  // A device copy of a host value that is the same on every replay (shape arithmetic, constants);
  // written once now, outside the graph.
  virtual Result<Tensor> upload_constant(const Tensor& host) = 0;
  // A kiln kernel was just enqueued on the capturing stream with this launch configuration and
  // these arguments.
  virtual void on_kernel(cudaKernel_t kernel, dim3 grid, dim3 block, size_t shared_bytes, void** args) = 0;
  // A library call (cuBLASLt) or memset reads or writes these device pointers (null: none).
  virtual void on_library(const void* a, const void* b, const void* c, const void* d) = 0;
};

// Lets this thread make calls that CUDA forbids while one of its streams is capturing in global
// or thread-local mode (allocation on other streams, module loads), for the guard's lifetime.
class RelaxedCaptureMode {
 public:
  RelaxedCaptureMode() { cudaThreadExchangeStreamCaptureMode(&mode_); }
  ~RelaxedCaptureMode() { cudaThreadExchangeStreamCaptureMode(&mode_); }
  RelaxedCaptureMode(const RelaxedCaptureMode&) = delete;
  RelaxedCaptureMode& operator=(const RelaxedCaptureMode&) = delete;

 private:
  cudaStreamCaptureMode mode_ = cudaStreamCaptureModeRelaxed;
};

}  // namespace kiln::cuda
