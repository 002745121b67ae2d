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
// Shape and Size count as constant where their input's shape is fully known (Value::shape, as
// shape inference left it): a static profile makes a dynamic model's shape arithmetic constant.
Status fold_constants(ir::Graph& graph, size_t max_bytes, FoldStats* stats);

// Gives every Reshape whose target is computed at run time (an exporter's Shape -> Gather ->
// Unsqueeze -> Concat chain) a constant target instead, where shape inference knows every
// output dim but at most one, and none of the known ones is 0: the known dims as they are and
// -1 for the other, which Reshape then infers from the element count, as the computed target
// would have given (a Reshape keeps the element count). The chains that fed only such targets
// are pruned, so a dynamic-shape engine runs no shape arithmetic per call. Trusts inferred
// shapes as fold_constants does. `reshapes` (may be null) counts the targets replaced.
Status fold_reshape_targets(ir::Graph& graph, size_t* reshapes);

struct EpilogueStats {
  size_t matmul_bias = 0;       // MatMul -> Add(constant bias) became MatMul(x, W, bias)
  size_t matmul_scale = 0;      // MatMul -> Mul(constant scalar) became kiln_alpha
  size_t matmul_residual = 0;   // MatMul -> Add(same-shape value) became MatMul's 4th input
  size_t transposes_folded = 0; // Transpose(last two axes) -> MatMul became kiln_trans_a/b
  size_t activations = 0;       // Relu / Gelu(tanh) became kiln_activation on Gemm/MatMul/Conv
  size_t batchnorm_folded = 0;  // BatchNormalization folded into the preceding Conv's W and B
  size_t nodes_removed = 0;
};

// Folds what follows a GEMM-like node into it, so backends run it in the GEMM's epilogue:
//  - Conv (constant f32/f64 W, optional constant B) -> BatchNormalization (inference, constant
//    statistics): W and B are rescaled (in f64) and the BatchNormalization is removed;
//  - MatMul(x, W) -> Add with a constant of shape [N] or [1, .., 1, N] (N = W's last dim; a single
//    value is expanded to [N]) -> MatMul(x, W, bias), bias a 1-D [N] constant;
//  - Transpose swapping only the last two axes -> MatMul (as A or B): MatMul reads the
//    untransposed value, attribute kiln_trans_a / kiln_trans_b = 1;
//  - MatMul(A, B) -> Mul by a constant single value s: attribute kiln_alpha = s (the product is
//    scaled before any bias);
//  - MatMul(A, B[, bias]) -> Add(., R), R a value of the product's exact dims and dtype:
//    MatMul(A, B, bias or empty, R), R added after the bias, before the activation;
//  - Gemm / MatMul / Conv -> Relu: attribute kiln_activation = "Relu";
//  - Gemm / MatMul -> Gelu(approximate="tanh"): kiln_activation = "Gelu:tanh" (an exact, erf
//    Gelu is never mapped to it).
// A pattern applies only where the first node's output is read by the second node alone and is
// not a graph output, and the node computes in a float type. Patterns chain
// (MatMul -> Add -> Relu becomes one MatMul). Returns graph.validate()'s error if the graph was
// invalid to begin with.
Status fuse_epilogues(ir::Graph& graph, EpilogueStats* stats);

struct AttentionStats {
  size_t fused = 0;              // kiln.Attention nodes made
  size_t transposes_folded = 0;  // Transposes of the result written by the node instead
  size_t nodes_removed = 0;      // head-split nodes left unread and pruned
};

// Replaces MatMul(Q, K or K^T [kiln_trans_b], kiln_alpha = scale) -> Softmax(last axis) ->
// MatMul(., V) by one kiln.Attention node (ir/attention.h), where Q, K and V have rank 3 or 4,
// equal batch dims (no broadcasting), one float dtype, and static head dims of at most
// ir::kMaxAttentionHeadDim, and the scores and probabilities are read by the pattern alone.
// Each operand is followed back through Squeeze, Split (one-wide parts along a squeezed axis)
// and Transpose nodes to the tensor they view (an exporter's packed QKV projection), and a
// Transpose reading the result alone becomes the node's output layout. Runs after
// fuse_epilogues (which makes kiln_alpha and kiln_trans_b). Deterministic.
Status fuse_attention(ir::Graph& graph, AttentionStats* stats);

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

struct FuseStats {
  size_t groups = 0;       // kiln.FusedElementwise nodes made
  size_t nodes_fused = 0;  // elementwise nodes they replace
};

// Replaces each group of two or more connected elementwise nodes by one kiln.FusedElementwise
// node (program: src/backends/cpu/ops/fused_elementwise_program.h). A group has one output;
// every other value it computes is read only inside it and is no graph output; it has 1 to 6
// external inputs (one-element constants become literals of the program instead). Keeps the
// node order topological; fused nodes take the name of the group's last node. Deterministic.
// Runs ir::infer_shapes first (steps need every value's dtype); a fused node's output keeps the
// dtype and shape inferred for the group's last node.
// Errors: kInvalidData for an invalid input graph (from validation or shape inference).
Status fuse_elementwise(ir::Graph& graph, FuseStats* stats);

}  // namespace kiln::compiler
