// Host-only planning: which kernels a run of a graph at given input shapes launches, found
// without a GPU (NVRTC and this code run anywhere).
//
// plan_kernels() walks the graph as the CUDA program does (same placement: GPU handler, small
// all-host nodes on the host, CPU fallback), running every handler in a planning RunContext:
// handlers compute shapes and kernel variants exactly as on a GPU, but allocations are
// zero-filled host tensors and launches are only recorded. Host nodes (shape arithmetic) run on
// the CPU with real values, so shapes computed from shapes are exact. Values a GPU kernel would
// compute are zeros here: a shape that depends on such data (NonZero, TopK on activations) may
// plan other kernels than a real run needs; those compile on first use instead.
//
// What needs it: program creation (precompile the kernels for the profile's opt shape, or for
// the static shape), `kiln cache warm` (no GPU) and `kiln inspect` (counts).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "backends/cuda/ops/handler.h"
#include "ir/graph.h"
#include "kiln/status.h"

namespace kiln::cuda {

struct KernelPlan {
  // Distinct (generic, specialised) variant pairs, in first-launch order: a generic kernel that
  // runs at two shapes appears twice, with two specialised variants.
  std::vector<KernelVariant> kernels;
  uint64_t launches = 0;        // kernel launches one run makes (GEMMs, GEMV kernels too, not counted)
  uint64_t gemm_bridges = 0;    // entries of `kernels` that are GEMM bridge kernels (kernels/gemm.h)
  uint64_t gemv_kernels = 0;    // entries of `kernels` that are GEMV kernels (one-row GEMMs; kernels/gemm.h)
  uint64_t generic = 0;         // distinct generic kernels
  uint64_t specializable = 0;   // entries of `kernels` with a specialised variant
  uint64_t gpu_nodes = 0, host_nodes = 0, fallback_nodes = 0;
};

// Plans a run of `graph` with inputs of `input_shapes` (one per graph input, dtypes from the
// graph). `host_limit` is the program's host execution limit (cuda_backend.h). The inputs are
// planned as host arrays; where that puts a small node that reads a graph input on the host, the
// walk is repeated with the inputs on the device (where such a node runs on the GPU) and its
// kernels are added, so calls with either kind of input find them compiled. The counts
// (launches, nodes) are the host-input walk's.
// Errors: kInvalidArgument for a wrong input count; a handler's or CPU kernel's error, naming
// the node, when the shapes do not fit the graph.
// `sm` is the target's compute capability (major*10+minor): handlers that choose a kernel form
// by architecture (kiln.Attention's tensor-core form needs sm_80) choose as the device will.
Result<KernelPlan> plan_kernels(const ir::Graph& graph, std::span<const Dims> input_shapes,
                                int64_t host_limit = 4096, int sm = 90);

}  // namespace kiln::cuda
