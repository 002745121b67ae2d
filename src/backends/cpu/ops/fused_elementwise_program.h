// The program of a fused elementwise node (op `kiln.FusedElementwise`, made by the compiler's
// fuse_elementwise pass): a straight-line list of elementwise steps over the node's inputs,
// numpy-broadcast. Shared by the compiler (encode), the CPU backend (the reference semantics: it
// runs each step with the ordinary CPU kernel) and the CUDA backend (one generated kernel).
//
// Encoding in the node's attributes (docs/architecture.md, "Fusion"):
//   input_dtypes  ints     dtype of each node input (DType values), 1..kFusedMaxInputs of them
//   ops           strings  per step, its op: a name from fused_ops() ("Add", "Gelu:tanh", "Literal")
//   dtypes        ints     per step, the dtype of its result
//   num_args      ints     per step, how many operands it takes
//   args          ints     all steps' operands in order; operand r < I (I = number of inputs) is
//                          node input r, operand I + j is the result of step j (j < this step)
//   params        floats   all steps' parameters in order; each op takes a fixed number
//   dtype         int      the output's dtype (= the last step's), for shape inference
// The node's single output is the result of the last step. Every input and every step but the
// last is used by a later step, so the output shape is the broadcast of all inputs and of the
// literals' all-ones shapes (the pass only makes literals no longer than some input, so that is the
// inputs' broadcast). Engine files are untrusted: decode() checks all of this.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ir/graph.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::cpu {

inline constexpr std::string_view kFusedElementwiseOp = "kiln.FusedElementwise";
inline constexpr int kFusedMaxInputs = 6;   // node inputs (the CUDA kernels take up to 6 operands)
inline constexpr int kFusedMaxSteps = 256;
inline constexpr int kFusedMaxArgs = 6;     // operands of one step (variadic ops)
inline constexpr int kFusedMaxRank = 8;     // rank of a literal's all-ones shape

// Operand dtype classes an op takes.
enum FusedTypes : unsigned {
  kFuseFloat = 1u << 0,  // f16, bf16, f32, f64
  kFuseInt = 1u << 1,    // i8..i64
  kFuseUint = 1u << 2,   // u8..u64
  kFuseBool = 1u << 3,
  kFuseAny = 15u,
};

// One program op. Special rules (checked by decode) for:
//   Literal  0 operands; params {value, rank}: a constant of the step's dtype and shape [1]*rank
//   Cast     1 operand of any type; the result has the step's dtype
//   Where    (bool, X, Y), X and Y of one dtype; result X's dtype
//   Pow      (base, exponent), neither bool; result the base's dtype
//   Clip     params {min, max}; an omitted bound is -inf / +inf (also for integer operands)
// Every other op takes operands of one dtype in `types`, and gives that dtype (or bool).
struct FusedOpInfo {
  std::string_view name;
  int arity;         // -1: variadic, 1..kFusedMaxArgs operands
  int params;
  bool bool_result;
  unsigned types;    // FusedTypes
};

std::span<const FusedOpInfo> fused_ops();
const FusedOpInfo* fused_op(std::string_view name);
// FusedTypes class of a dtype; 0 for dtypes a program cannot hold (strings, undefined).
unsigned fused_type_class(DType d);

struct FusedStep {
  std::string op;
  std::vector<int> args;
  DType dtype = DType::kUndefined;
  std::vector<double> params;
};

struct FusedProgram {
  std::vector<DType> inputs;
  std::vector<FusedStep> steps;
  DType output() const { return steps.empty() ? DType::kUndefined : steps.back().dtype; }
  // Rank of the largest literal (the output has at least this rank).
  int min_rank() const;
};

// Checks every rule above. Errors: kInvalidArgument naming the step and what is wrong.
Status fused_program_validate(const FusedProgram& p);
// Writes the attributes listed above (replacing any of the same names).
void fused_program_encode(const FusedProgram& p, ir::Attributes* attrs);
// Reads and validates the program of `node` (which must have as many inputs as the program and one
// output). Errors: kInvalidArgument naming the node.
Result<FusedProgram> fused_program_decode(const ir::Node& node);
// Canonical one-line text, e.g. "t0=Div(x0,t1):f32;t1=Literal[1.4142135,0]:f32;...". Equal
// programs give equal text (kernel keys use it), and it is readable in `kiln inspect`.
std::string fused_program_text(const FusedProgram& p);

// A value exactly representable in `d` (integral and in range for integers, 0/1 for bool, equal
// after rounding for float types; NaN and infinities pass for floats).
bool fused_exact_in(DType d, double v);
// Reads a one-element tensor of any numeric dtype or bool as a double.
Result<double> fused_scalar_value(const Tensor& t);
// A host tensor of `d` and shape [1]*rank holding `v` (rounded to `d`).
Result<Tensor> fused_scalar_tensor(DType d, double v, int rank);

}  // namespace kiln::cpu
