// Graph-to-graph compiler passes. Each keeps the graph valid (ir::Graph::validate) and
// deterministic: the same input graph always gives the same output graph.
#pragma once

#include "ir/graph.h"
#include "kiln/status.h"

namespace kiln::compiler {

struct FoldStats {
  size_t folded_nodes = 0;
};

// Evaluates on the CPU every node whose inputs are all constants and replaces its outputs with
// constants, as long as each result stays under `max_bytes`. No tensor over `max_bytes` is
// allocated while evaluating (ScopedAllocationLimit): such a node is kept. Other kernel errors
// are returned (a constant subgraph that cannot be evaluated would fail at every run as well).
Status fold_constants(ir::Graph& graph, size_t max_bytes, FoldStats* stats);

struct PrecisionStats {
  size_t constants_converted = 0;   // f32 constants stored in the low type
  size_t values_retyped = 0;        // f32 node outputs now computed in the low type
  size_t casts_inserted = 0;        // at the f32 engine inputs/outputs and f32-only op inputs
};

// Lowers an f32 graph to `low` (DType::kF16 or DType::kBF16). The engine's interface stays f32:
// each f32 graph input is cast to `low` right after it, each f32 graph output is computed in
// `low` and cast back to f32 right before it (the output keeps its name). Every other f32
// value becomes `low`: constants are converted (finite values beyond the type's range saturate
// to its largest finite value rather than becoming infinities), node outputs are retyped, and
// attributes naming f32 as a result type (Cast `to`, `dtype`, ConstantOfShape `value`) are
// retargeted. Inputs that ONNX fixes at float (Resize roi and scales) stay f32, with a Cast
// inserted where a computed value feeds them. Kernels keep accumulating in f32 (reductions,
// Softmax, normalisations, GEMM); the CPU backend widens half inputs of kernels that are not
// native half. Values of other dtypes (integers, f64, existing f16) are left alone.
// Errors: kInvalidArgument for a `low` that is not a half type.
Status lower_precision(ir::Graph& graph, DType low, PrecisionStats* stats);

}  // namespace kiln::compiler
