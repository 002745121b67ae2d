// The CUDA backend: runs a graph on one NVIDIA GPU.
//
// prepare() checks the device, uploads the graph's constants once and picks, per node, a CUDA
// handler (ops/handler.h) or the CPU kernel. Kernels are generated per (op, dtypes, layout) and
// compiled by NVRTC on first use, once per process (kernel_table.h).
//
// run() takes host tensors (copied to the device at the edge; outputs come back as host tensors)
// or device tensors of this backend's device (Tensor::device() == cuda:N; no copy; outputs stay
// on the device, owned by kiln's memory pool until the last copy of the Tensor is gone). Each
// run uses its own stream, cuBLASLt workspace and error flag from a small pool of run slots, so
// concurrent runs on one program proceed in parallel. run() returns once the results are ready.
//
// Where a node runs: on the GPU when its op has a handler; on the host when all its inputs are
// already on the host and small (shape arithmetic such as Shape -> Gather -> Concat -> Reshape's
// shape); on the CPU as a *fallback* when the op has no CUDA handler or the handler declines the
// case. Fallbacks copy the node's inputs to the host and are logged once per op and counted.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backends/backend.h"

namespace kiln {

// Errors: kUnavailable "no CUDA device available (...)" without a GPU or driver;
// kInvalidArgument for a device index that does not exist.
Result<std::unique_ptr<Backend>> create_cuda_backend(int device);

namespace cuda {

struct CudaProgramStats {
  uint64_t runs = 0;
  uint64_t gpu_nodes = 0;       // nodes run by a CUDA handler
  uint64_t host_nodes = 0;      // small all-host nodes run on the host by design
  uint64_t fallback_nodes = 0;  // nodes run on the CPU for lack of a CUDA kernel
  uint64_t uploads = 0, downloads = 0;  // host<->device copies of values
  uint64_t kernel_launches = 0;
  uint64_t cudnn_convs = 0, jit_convs = 0;  // Conv nodes run on cuDNN / on the JIT kernels
  std::map<std::string, uint64_t> fallbacks_by_op;
};

// Stats of a program prepared by the CUDA backend; kInvalidArgument for another backend's program.
Result<CudaProgramStats> program_stats(const BackendProgram& program);

// Ops with a CUDA handler, sorted. Every other op runs on the CPU.
std::vector<std::string> supported_ops();

// Nodes whose inputs are all on the host with at most `elements` elements each run on the host
// (default 4096). For tests and debugging: -1 sends every node with a CUDA handler to the GPU.
// Process-wide; runs read it once at entry.
void set_host_execution_limit(int64_t elements);

}  // namespace cuda
}  // namespace kiln
