// Helpers that turn tensors into elementwise / strided-copy kernel launches. Used by every op
// family: a transpose, slice, expand or concat is the elementwise "Identity" over a strided view.
#pragma once

#include <string>
#include <vector>

#include "backends/cuda/kernels/bake.h"
#include "backends/cuda/kernels/elementwise.h"
#include "backends/cuda/ops/handler.h"

namespace kiln::cuda {

// A kernel that gains from specialisation: generic `key`/`build`, and the specialised variant
// that bakes `bake` into it (kernels/bake.h).
KernelVariant specialisable(std::string key, KernelTable::Builder build, kernels::Bake bake);

struct EwOperand {
  const void* data = nullptr;
  DType dtype = DType::kUndefined;
  std::vector<int64_t> strides;  // per dim of the iteration space, in elements (0: broadcast)
};

// out[i] = op(inputs[i]...) over the iteration space `dims`: element i of operand k is at
// data + sum_d idx_d * strides_d. Picks the flat kernel when every operand is contiguous or a
// single broadcast element, else merges dims and uses the strided kernel (rank <= 8 after merging,
// else kUnsupported). 32-bit indexing when every offset fits.
Status launch_elementwise(RunContext& ctx, const std::string& op, const std::vector<double>& attrs, void* out,
                          DType out_dtype, const Dims& dims, std::vector<int64_t> out_strides,
                          std::vector<EwOperand> inputs);

// The same for a fused program (kernels::ElementwiseSpec::program): one kernel computes every
// step per element. `out_dtype` is the last step's dtype.
Status launch_fused_elementwise(RunContext& ctx, std::vector<kernels::FusedKernelStep> program, void* out,
                                DType out_dtype, const Dims& dims, std::vector<int64_t> out_strides,
                                std::vector<EwOperand> inputs);

// Numpy-broadcasting elementwise op over `inputs` into a new contiguous tensor of `out_dtype`.
// Errors name the node and the shapes when they do not broadcast.
Result<Tensor> elementwise(RunContext& ctx, const std::string& op, std::span<const Tensor> inputs, DType out_dtype,
                           const std::vector<double>& attrs = {});

// Copies elements of `dtype` (moved as raw bits) from `src` laid out by `src_strides` into `dst`
// laid out by `dst_strides`, over `dims`.
Status strided_copy(RunContext& ctx, void* dst, std::vector<int64_t> dst_strides, const void* src,
                    std::vector<int64_t> src_strides, const Dims& dims, DType dtype);

// The unsigned integer dtype with dtype's size (u8 for bool); kUndefined for other sizes.
DType bits_dtype(DType dtype);
std::vector<int64_t> contiguous_strides(const Dims& dims);
// Strides of a tensor of `dims` broadcast to `out` (right-aligned numpy rules; 0 along broadcast dims).
std::vector<int64_t> broadcast_strides(const Dims& dims, const Dims& out);
// Numpy broadcast of several shapes; kInvalidArgument names the node.
Result<Dims> broadcast_dims(const RunContext& ctx, std::span<const Tensor> inputs);

}  // namespace kiln::cuda
