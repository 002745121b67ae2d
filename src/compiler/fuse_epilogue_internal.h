// Shared pieces of the fuse_epilogues pass (fuse_epilogue.cc, fuse_epilogue_bn.cc).
#pragma once

#include <optional>
#include <vector>

#include "ir/graph.h"

namespace kiln::compiler::epilogue {

// Who reads each value: use counts (an input slot each; a node reading a value twice counts
// twice), the last reader, graph outputs, and the current producer of each value.
struct Uses {
  std::vector<int> count;
  std::vector<int> reader;     // a node reading the value (the only one when count == 1)
  std::vector<char> output;    // a graph output
  std::vector<int> producer;   // node index, -1 for none

  static Uses of(const ir::Graph& g);
  // The node that alone reads node `p`'s first output, where that output is not a graph output;
  // nullopt otherwise.
  std::optional<int> sole_reader(const ir::Graph& g, int p) const;
};

// The constant behind value `id`, or null.
const Tensor* constant_of(const ir::Graph& g, int id);

// f32, f64, f16 or bf16.
bool is_float(DType d);

// A float tensor's values as doubles (f32, f64, f16, bf16); nullopt for other dtypes.
std::optional<std::vector<double>> to_doubles(const Tensor& t);

// A tensor of `dtype` (f32 or f64) and `dims` holding `values`.
Tensor from_doubles(DType dtype, const Dims& dims, const std::vector<double>& values);

// Folds BatchNormalization (inference, constant statistics) into a preceding Conv with constant
// weights whose output it alone reads. `removed[i]` marks nodes absorbed. Returns the count.
size_t fold_conv_batchnorm(ir::Graph& g, Uses& uses, std::vector<char>& removed);

}  // namespace kiln::compiler::epilogue
