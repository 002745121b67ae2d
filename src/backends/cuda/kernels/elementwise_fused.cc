// Fused elementwise kernels: the statements of a program, built from the single-op templates.
//
// The kernel skeleton (elementwise_source) loads input k into a variable named a, b, ... and
// stores `r`. The program copies the inputs into x0, x1, ... first (each step redeclares its
// own operands a, b, ...), then computes one scoped block per step into t0, t1, ...:
//
//   float t1; { typedef float CT; typedef float RT; const float a = x0; const float b = t0;
//               RT r; { r = a / b; } t1 = r; }
//
// so each step is exactly the single-op kernel's computation. A half-typed step is rounded to its
// type (t = f16(r) widened again), as the unfused kernel's store and the next kernel's load do.
#include <cstdio>

#include "backends/cuda/kernels/common.h"
#include "backends/cuda/kernels/elementwise.h"

namespace kiln::cuda::kernels {
namespace {

constexpr size_t kMaxSteps = 256;
constexpr size_t kMaxArgs = 6;
const char* const kOperandNames = "abcdef";

std::string fmt(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

// The dtype the single-op kernel gives for `op` over `in` (Cast: its target, `declared`).
DType natural_result(const std::string& op, const std::vector<DType>& in, DType declared) {
  if (op == "Cast") return declared;
  if (op == "Where") return in.size() == 3 ? in[1] : DType::kUndefined;
  const ElementwiseOpInfo* info = elementwise_op(op);
  if (!info) return DType::kUndefined;
  return info->bool_result ? DType::kBool : in[0];
}

}  // namespace

std::string fused_program_key(const std::vector<FusedKernelStep>& program) {
  std::string k;
  for (const FusedKernelStep& s : program) {
    k += s.op;
    if (!s.attrs.empty()) {
      k += "[";
      for (size_t j = 0; j < s.attrs.size(); ++j) k += (j ? "," : "") + fmt(s.attrs[j]);
      k += "]";
    }
    k += "(";
    for (size_t j = 0; j < s.args.size(); ++j) k += (j ? "," : "") + std::to_string(s.args[j]);
    k += ")" + tag(s.dtype) + ";";
  }
  return k;
}

Result<std::string> fused_statement(const std::vector<DType>& inputs, const std::vector<FusedKernelStep>& program) {
  auto bad = [](const std::string& why) { return invalid_argument("fused elementwise kernel: " + why); };
  if (inputs.empty() || inputs.size() > kMaxArgs) return bad("takes 1 to 6 inputs");
  if (program.empty() || program.size() > kMaxSteps) return bad("takes 1 to 256 steps");
  const size_t ni = inputs.size();
  std::string s;
  for (size_t k = 0; k < ni; ++k)
    s += "const " + std::string(compute_type(inputs[k])) + " x" + std::to_string(k) + " = " + kOperandNames[k] + ";\n";
  for (size_t k = 0; k < program.size(); ++k) {
    const FusedKernelStep& st = program[k];
    const std::string where = "step " + std::to_string(k) + " (" + st.op + ")";
    if (!dtype_supported(st.dtype)) return bad(where + ": dtype " + tag(st.dtype) + " is not supported");
    const std::string ct(compute_type(st.dtype)), t = "t" + std::to_string(k);
    if (st.op == "Literal") {
      if (!st.args.empty() || st.attrs.size() != 1) return bad(where + ": takes no operands and one value");
      s += "const " + ct + " " + t + " = " + literal(st.dtype, st.attrs[0]) + ";\n";
      continue;
    }
    if (st.args.empty() || st.args.size() > kMaxArgs) return bad(where + ": takes 1 to 6 operands");
    std::vector<DType> in;
    std::vector<std::string> refs;
    for (int a : st.args) {
      if (a < 0 || static_cast<size_t>(a) >= ni + k) return bad(where + ": operand " + std::to_string(a) + " is not defined yet");
      const size_t r = static_cast<size_t>(a);
      in.push_back(r < ni ? inputs[r] : program[r - ni].dtype);
      refs.push_back(r < ni ? "x" + std::to_string(r) : "t" + std::to_string(r - ni));
    }
    if (natural_result(st.op, in, st.dtype) != st.dtype)
      return bad(where + ": the result dtype " + tag(st.dtype) + " is not the op's");
    KILN_ASSIGN_OR_RETURN(std::string stmt, elementwise_statement(st.op, in, st.dtype, st.attrs));
    s += ct + " " + t + ";\n{\n  typedef " + std::string(compute_type(in[0])) + " CT;\n  typedef " + ct + " RT;\n";
    for (size_t j = 0; j < in.size(); ++j)
      s += "  const " + std::string(compute_type(in[j])) + " " + kOperandNames[j] + " = " + refs[j] + ";\n";
    s += "  RT r;\n  { " + stmt + " }\n";
    if (st.dtype == DType::kF16) {
      s += "  " + t + " = kiln_f16_to_f32(kiln_f32_to_f16(r));\n}\n";
    } else if (st.dtype == DType::kBF16) {
      s += "  " + t + " = kiln_bf16_to_f32(kiln_f32_to_bf16(r));\n}\n";
    } else {
      s += "  " + t + " = r;\n}\n";
    }
  }
  s += "r = t" + std::to_string(program.size() - 1) + ";";
  return s;
}

}  // namespace kiln::cuda::kernels
