// Generated elementwise kernels: one op, or a fused program of ops (kiln.FusedElementwise), over
// up to 6 broadcast inputs, in a generic layout (shapes and strides are kernel arguments, never
// baked in).
//
// Layouts:
//   kFlat     every input is either contiguous with the output's element count, or a single
//             element broadcast everywhere (`scalar_inputs`); the output is contiguous.
//             Kernel: (out, in0.., long long n).
//   kStrided  any broadcast or view: per merged dim, the size and per operand the stride.
//             Kernel: (out, in0.., KilnStrided s, long long n); s.strides[0] is the output's.
// `wide_index` picks 64-bit index arithmetic; without it every index and offset must fit in 31
// bits (the caller checks). Attribute values are baked into the source as exact literals.
#pragma once

#include <string>
#include <vector>

#include "backends/cuda/nvrtc.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::cuda::kernels {

enum class Layout : uint8_t { kFlat, kStrided };

// One step of a fused kernel. Each step computes like the single-op kernel of `op` (the same
// statement template), in its operands' compute types; a step whose dtype is f16 or bf16 is
// rounded to that type before later steps read it, as the unfused kernels store it.
struct FusedKernelStep {
  std::string op;            // a name from elementwise_ops(), or "Literal"
  std::vector<int> args;     // r < number of kernel inputs: input r; else step r - inputs
  DType dtype = DType::kUndefined;
  std::vector<double> attrs;  // the op's attributes; Literal: {value}
  bool operator==(const FusedKernelStep&) const = default;
};

struct ElementwiseSpec {
  std::string op;                 // a name from elementwise_ops(), e.g. "Add", "Gelu:tanh"
  std::vector<DType> inputs;      // 1..6
  DType output = DType::kUndefined;
  std::vector<double> attrs;      // op-specific, in the order elementwise_ops() documents
  Layout layout = Layout::kFlat;
  std::vector<bool> scalar_inputs;  // kFlat only: input i is one element (empty: none)
  bool wide_index = false;
  // Non-empty: a fused kernel computing this program (op and attrs are then ignored); `output`
  // must be the last step's dtype.
  std::vector<FusedKernelStep> program = {};
};

struct ElementwiseOpInfo {
  std::string name;
  int arity;          // -1: variadic (1..6 inputs)
  int attrs;          // number of baked attribute values
  bool bool_result;   // output is bool regardless of inputs
  bool floats, ints, uints, bools;  // operand dtype classes it supports
};

// Every op the generator knows.
const std::vector<ElementwiseOpInfo>& elementwise_ops();
const ElementwiseOpInfo* elementwise_op(const std::string& name);

// The variant key (kernel_table.h) and the source of the kernel for `spec`. A fused kernel's key
// holds its whole program.
std::string elementwise_key(const ElementwiseSpec& spec);
// Errors: kUnsupported for an unknown op, a dtype the op does not take, or bad arity;
// kInvalidArgument for a malformed program.
Result<KernelSource> elementwise_source(const ElementwiseSpec& spec);

// The statements assigning `r` from operands `a`, `b`, ... (of `inputs`' compute types; CT is a's
// compute type) for one op: the template both single-op and fused kernels use.
// Errors: kUnsupported as for elementwise_source.
Result<std::string> elementwise_statement(const std::string& op, const std::vector<DType>& inputs, DType output,
                                          const std::vector<double>& attrs);
// The statements of a fused kernel (elementwise_fused.cc): reads kernel inputs a, b, ... and
// assigns `r`. Errors: kInvalidArgument for a malformed program, kUnsupported from a step.
Result<std::string> fused_statement(const std::vector<DType>& inputs, const std::vector<FusedKernelStep>& program);
// Canonical text of a program (used in keys and kernel names).
std::string fused_program_key(const std::vector<FusedKernelStep>& program);

}  // namespace kiln::cuda::kernels
