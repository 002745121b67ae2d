// CPU kernels for shape and data-movement ops, in their canonical form (newest ONNX semantics,
// every parameter newer opsets take as an input is an input). See backends/cpu/kernel.h for the
// kernel contract.
//
// All of them except Range only move bytes: they handle every dtype by element size and are
// registered with native_half=true. Reshape, Flatten, Squeeze, Unsqueeze, Identity and Dropout
// return outputs that share the input's storage when the input owns it (kernels never write into
// their inputs, so sharing is safe); they copy when the input borrows memory without an owner.
// Index inputs (Gather*, Slice, Pad, ...) may be i32 or i64; an index out of range is an
// invalid_argument naming the node, never an out-of-bounds read.
#pragma once

#include <span>

#include "backends/cpu/kernel.h"

namespace kiln::cpu {

// tensor_shape.cc
Status shape_kernel(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out);
Status size_kernel(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out);
Status reshape_kernel(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out);
Status flatten_kernel(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out);
Status squeeze_kernel(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out);
Status unsqueeze_kernel(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out);
Status identity_kernel(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out);
Status dropout_kernel(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out);

// tensor_transpose.cc
Status transpose_kernel(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out);

// tensor_concat.cc
Status concat_kernel(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out);
Status split_kernel(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out);

// tensor_slice.cc
Status slice_kernel(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out);

// tensor_pad.cc
Status pad_kernel(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out);

// tensor_gather.cc
Status gather_kernel(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out);
Status gather_elements_kernel(const ir::Node& node, std::span<const Tensor> in,
                              std::span<Tensor> out);
Status gather_nd_kernel(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out);

// tensor_expand.cc
Status expand_kernel(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out);
Status tile_kernel(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out);
Status trilu_kernel(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out);

// tensor_generate.cc
Status constant_of_shape_kernel(const ir::Node& node, std::span<const Tensor> in,
                                std::span<Tensor> out);
// Numeric (registered native_half=false): f32, f64 and the integer dtypes.
Status range_kernel(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out);

}  // namespace kiln::cpu
