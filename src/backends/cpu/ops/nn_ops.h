// The nn family of CPU kernels (canonical newest-ONNX semantics; see backends/cpu/kernel.h for the
// kernel contract). Registered by register_nn_ops (nn_register.cc).
#pragma once

#include <span>

#include "backends/cpu/kernel.h"

namespace kiln::cpu::nn {

#define KILN_NN_KERNEL(name) \
  Status name(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out)

KILN_NN_KERNEL(matmul);                // nn_matmul.cc: numpy matmul, floats and integers
KILN_NN_KERNEL(gemm_op);               // nn_matmul.cc: Gemm with unidirectionally broadcast C
KILN_NN_KERNEL(conv);                  // nn_conv.cc: N-D, groups, dilations, auto_pad, bias
KILN_NN_KERNEL(max_pool);              // nn_pool.cc: N-D, ceil_mode, dilations, Indices
KILN_NN_KERNEL(average_pool);          // nn_pool.cc: count_include_pad, ceil_mode, dilations
KILN_NN_KERNEL(global_average_pool);   // nn_pool.cc
KILN_NN_KERNEL(global_max_pool);       // nn_pool.cc
KILN_NN_KERNEL(batch_normalization);   // nn_norm.cc: inference and training_mode
KILN_NN_KERNEL(instance_normalization);  // nn_norm.cc
KILN_NN_KERNEL(layer_normalization);   // nn_norm.cc: Y, Mean, InvStdDev
KILN_NN_KERNEL(resize);                // nn_resize.cc: nearest|linear|cubic, antialias, axes
KILN_NN_KERNEL(einsum);                // nn_einsum.cc
KILN_NN_KERNEL(attention);             // nn_attention.cc: kiln.Attention (ir/attention.h)

#undef KILN_NN_KERNEL

}  // namespace kiln::cpu::nn
