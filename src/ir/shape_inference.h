// Shape inference: fills Value::dtype and Value::shape of every node output from the graph's
// inputs and constants, through the rules of the op registry (ir/op_registry.h).
//
// One forward pass in node order (the graph must pass Graph::validate(), which is checked).
// Symbolic dims of the inputs ("batch", "seq") flow through: broadcasting, MatMul, Conv/pools
// (batch), Reshape/Expand/Tile/ConstantOfShape targets computed from Shape ops, Concat, Slice and
// the rest keep them where the op cannot change the size; a product of symbols is written
// "batch*seq" (Flatten, Reshape with -1). What a value's producer declared (ONNX value_info, or an
// earlier pass) is merged in: a known size beats a symbol, a symbol beats an unknown dim, and the
// declared name wins between two symbols. Inference never guesses: an op without a rule, or a
// rule that cannot tell, leaves the declared facts (or unknown) in place.
//
// Errors (kInvalidData, naming the node and op): an arity the op does not accept, a definite
// contradiction inside a node (shapes that cannot broadcast, a Reshape to another element count,
// out-of-range axes), or a declared dtype, rank or known size that differs from the inferred one
// (both shapes are named). Deterministic: the same graph always gets the same shapes.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "kiln/status.h"

namespace kiln::ir {

struct InferStats {
  size_t nodes = 0;
  size_t values = 0;       // node outputs (present ones)
  size_t rank_known = 0;   // ... whose rank is known afterwards
  size_t fully_known = 0;  // ... every dim a number
  size_t symbolic = 0;     // ... every dim a number or a symbol, at least one symbol
  size_t dtype_known = 0;  // ... with a defined dtype
  std::vector<std::string> unknown_ops;  // ops without a registry entry, sorted, unique
};

// `stats` may be null.
Status infer_shapes(Graph& g, InferStats* stats);

}  // namespace kiln::ir
