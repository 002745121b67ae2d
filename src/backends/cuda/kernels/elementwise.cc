#include "backends/cuda/kernels/elementwise.h"

#include <cmath>
#include <cstdio>

#include "backends/cuda/kernels/common.h"

namespace kiln::cuda::kernels {
namespace {

// Statement templates assigning `r`. Operands a, b, c hold values in their compute types; CT is
// operand a's compute type; p0, p1 are attributes as CT literals; "$f" becomes "f" for float
// math and "" for double. nullptr: the op does not take that dtype class.
struct OpDef {
  const char* name;
  int arity;
  int attrs;
  bool bool_result;
  const char* f;  // floats
  const char* i;  // signed ints
  const char* u;  // unsigned ints
  const char* b;  // bool
};

#define SIGMOID_OF(x) "(" x " >= (CT)0 ? (CT)1 / ((CT)1 + exp$f(-" x ")) : exp$f(" x ") / ((CT)1 + exp$f(" x ")))"
#define SOFTPLUS_OF(x) "(" x " > (CT)0 ? " x " + log1p$f(exp$f(-" x ")) : log1p$f(exp$f(" x ")))"

const OpDef kOps[] = {
    {"Identity", 1, 0, false, "r = a;", "r = a;", "r = a;", "r = a;"},
    {"Abs", 1, 0, false, "r = fabs$f(a);", "r = a < 0 ? (CT)(0 - a) : a;", "r = a;", nullptr},
    {"Neg", 1, 0, false, "r = -a;", "r = (CT)(0 - a);", nullptr, nullptr},
    {"Reciprocal", 1, 0, false, "r = (CT)1 / a;", nullptr, nullptr, nullptr},
    {"Sqrt", 1, 0, false, "r = sqrt$f(a);", nullptr, nullptr, nullptr},
    {"Exp", 1, 0, false, "r = exp$f(a);", nullptr, nullptr, nullptr},
    {"Log", 1, 0, false, "r = log$f(a);", nullptr, nullptr, nullptr},
    {"Sin", 1, 0, false, "r = sin$f(a);", nullptr, nullptr, nullptr},
    {"Cos", 1, 0, false, "r = cos$f(a);", nullptr, nullptr, nullptr},
    {"Tan", 1, 0, false, "r = tan$f(a);", nullptr, nullptr, nullptr},
    {"Asin", 1, 0, false, "r = asin$f(a);", nullptr, nullptr, nullptr},
    {"Acos", 1, 0, false, "r = acos$f(a);", nullptr, nullptr, nullptr},
    {"Atan", 1, 0, false, "r = atan$f(a);", nullptr, nullptr, nullptr},
    {"Sinh", 1, 0, false, "r = sinh$f(a);", nullptr, nullptr, nullptr},
    {"Cosh", 1, 0, false, "r = cosh$f(a);", nullptr, nullptr, nullptr},
    {"Asinh", 1, 0, false, "r = asinh$f(a);", nullptr, nullptr, nullptr},
    {"Acosh", 1, 0, false, "r = acosh$f(a);", nullptr, nullptr, nullptr},
    {"Atanh", 1, 0, false, "r = atanh$f(a);", nullptr, nullptr, nullptr},
    {"Tanh", 1, 0, false, "r = tanh$f(a);", nullptr, nullptr, nullptr},
    {"Erf", 1, 0, false, "r = erf$f(a);", nullptr, nullptr, nullptr},
    {"Ceil", 1, 0, false, "r = ceil$f(a);", nullptr, nullptr, nullptr},
    {"Floor", 1, 0, false, "r = floor$f(a);", nullptr, nullptr, nullptr},
    {"Round", 1, 0, false, "r = rint$f(a);", nullptr, nullptr, nullptr},
    {"Sign", 1, 0, false, "r = a != a ? a : (CT)((a > (CT)0) - (a < (CT)0));",
     "r = (CT)((a > 0) - (a < 0));", "r = (CT)(a > 0);", nullptr},
    {"IsNaN", 1, 0, true, "r = a != a;", nullptr, nullptr, nullptr},
    {"IsInf", 1, 2, true, "r = isinf(a) && (a > (CT)0 ? p0 != (CT)0 : p1 != (CT)0);", nullptr, nullptr,
     nullptr},
    {"Not", 1, 0, false, nullptr, nullptr, nullptr, "r = !a;"},
    {"BitwiseNot", 1, 0, false, nullptr, "r = (CT)(~a);", "r = (CT)(~a);", nullptr},
    {"Relu", 1, 0, false, "r = a < (CT)0 ? (CT)0 : a;", "r = a < 0 ? (CT)0 : a;", nullptr, nullptr},
    {"Sigmoid", 1, 0, false, "r = " SIGMOID_OF("a") ";", nullptr, nullptr, nullptr},
    {"Softplus", 1, 0, false, "r = " SOFTPLUS_OF("a") ";", nullptr, nullptr, nullptr},
    {"Softsign", 1, 0, false, "r = a / ((CT)1 + fabs$f(a));", nullptr, nullptr, nullptr},
    {"Mish", 1, 0, false, "r = a * tanh$f(" SOFTPLUS_OF("a") ");", nullptr, nullptr, nullptr},
    {"Silu", 1, 0, false, "r = a * " SIGMOID_OF("a") ";", nullptr, nullptr, nullptr},
    {"HardSwish", 1, 0, false,
     "CT h = a / (CT)6 + (CT)0.5; r = a * (h < (CT)0 ? (CT)0 : h > (CT)1 ? (CT)1 : h);", nullptr,
     nullptr, nullptr},
    {"HardSigmoid", 1, 2, false, "CT v = p0 * a + p1; r = v < (CT)0 ? (CT)0 : v > (CT)1 ? (CT)1 : v;",
     nullptr, nullptr, nullptr},
    {"LeakyRelu", 1, 1, false, "r = a < (CT)0 ? p0 * a : a;", nullptr, nullptr, nullptr},
    {"Elu", 1, 1, false, "r = a < (CT)0 ? p0 * expm1$f(a) : a;", nullptr, nullptr, nullptr},
    {"Selu", 1, 2, false, "r = a > (CT)0 ? p1 * a : p1 * (p0 * exp$f(a) - p0);", nullptr, nullptr,
     nullptr},
    {"ThresholdedRelu", 1, 1, false, "r = a > p0 ? a : (CT)0;", nullptr, nullptr, nullptr},
    {"Gelu", 1, 0, false, "r = (CT)0.5 * a * ((CT)1 + erf$f(a * (CT)0.7071067811865476));", nullptr,
     nullptr, nullptr},
    {"Gelu:tanh", 1, 0, false,
     "r = (CT)0.5 * a * ((CT)1 + tanh$f((CT)0.7978845608028654 * (a + (CT)0.044715 * a * a * a)));",
     nullptr, nullptr, nullptr},
    // Clip: p0 = min, p1 = max (the caller passes -inf/+inf or the type's limits when omitted).
    {"Clip", 1, 2, false, "r = a < p0 ? p0 : a; r = p1 < r ? p1 : r;", "r = a < p0 ? p0 : a; r = p1 < r ? p1 : r;",
     "r = a < p0 ? p0 : a; r = p1 < r ? p1 : r;", nullptr},
    // BatchNormalization (inference): a = X, b = scale, c = B, d = mean, e = var; p0 = epsilon.
    {"BatchNormalization", 5, 1, false, "r = (a - d) / sqrt$f(e + p0) * b + c;", nullptr, nullptr, nullptr},
    {"Add", 2, 0, false, "r = a + b;", "r = (CT)(a + b);", "r = (CT)(a + b);", nullptr},
    {"Sub", 2, 0, false, "r = a - b;", "r = (CT)(a - b);", "r = (CT)(a - b);", nullptr},
    {"Mul", 2, 0, false, "r = a * b;", "r = (CT)(a * b);", "r = (CT)(a * b);", nullptr},
    {"Div", 2, 0, false, "r = a / b;", "r = (b == (CT)-1) ? (CT)(0 - a) : kiln_idiv(a, b);",
     "r = kiln_idiv(a, b);", nullptr},
    {"Mod", 2, 0, false,
     "CT m = fmod$f(a, b); if (m != (CT)0) { if ((m < (CT)0) != (b < (CT)0)) m += b; } "
     "else { m = copysign$f((CT)0, b); } r = m;",
     "r = (b == (CT)-1) ? (CT)0 : kiln_pymod(a, b);", "r = kiln_cmod(a, b);", nullptr},
    {"Mod:fmod", 2, 0, false, "r = fmod$f(a, b);", "r = (b == (CT)-1) ? (CT)0 : kiln_cmod(a, b);",
     "r = kiln_cmod(a, b);", nullptr},
    {"PRelu", 2, 0, false, "r = a < (CT)0 ? b * a : a;", "r = a < 0 ? (CT)(b * a) : a;", nullptr, nullptr},
    {"Equal", 2, 0, true, "r = a == b;", "r = a == b;", "r = a == b;", "r = a == b;"},
    {"Less", 2, 0, true, "r = a < b;", "r = a < b;", "r = a < b;", nullptr},
    {"LessOrEqual", 2, 0, true, "r = a <= b;", "r = a <= b;", "r = a <= b;", nullptr},
    {"Greater", 2, 0, true, "r = a > b;", "r = a > b;", "r = a > b;", nullptr},
    {"GreaterOrEqual", 2, 0, true, "r = a >= b;", "r = a >= b;", "r = a >= b;", nullptr},
    {"And", 2, 0, false, nullptr, nullptr, nullptr, "r = a && b;"},
    {"Or", 2, 0, false, nullptr, nullptr, nullptr, "r = a || b;"},
    {"Xor", 2, 0, false, nullptr, nullptr, nullptr, "r = a != b;"},
    {"BitwiseAnd", 2, 0, false, nullptr, "r = (CT)(a & b);", "r = (CT)(a & b);", nullptr},
    {"BitwiseOr", 2, 0, false, nullptr, "r = (CT)(a | b);", "r = (CT)(a | b);", nullptr},
    {"BitwiseXor", 2, 0, false, nullptr, "r = (CT)(a ^ b);", "r = (CT)(a ^ b);", nullptr},
};
#undef SIGMOID_OF
#undef SOFTPLUS_OF

const char* kNames = "abcdefg";

bool is_int(DType d) {
  return d == DType::kI8 || d == DType::kI16 || d == DType::kI32 || d == DType::kI64;
}
bool is_uint(DType d) {
  return d == DType::kU8 || d == DType::kU16 || d == DType::kU32 || d == DType::kU64;
}

const OpDef* find_def(const std::string& name) {
  for (const OpDef& d : kOps)
    if (name == d.name) return &d;
  return nullptr;
}

bool variadic(const std::string& op) { return op == "Sum" || op == "Mean" || op == "Max" || op == "Min"; }

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t pos = 0; (pos = s.find(from, pos)) != std::string::npos; pos += to.size())
    s.replace(pos, from.size(), to);
  return s;
}

// A literal of `a`'s compute type for attribute value v. Integer operands take -inf / +inf as
// their type's limits (an omitted Clip bound), spelled exactly.
std::string attr_literal(DType a, double v) {
  if (!std::isinf(v) || is_float_compute(a) || a == DType::kBool) return literal(a, v);
  const bool high = v > 0;
  switch (a) {
    case DType::kI8: return high ? "((signed char)127)" : "((signed char)-128)";
    case DType::kI16: return high ? "((short)32767)" : "((short)-32768)";
    case DType::kI32: return high ? "2147483647" : "(-2147483647 - 1)";
    case DType::kI64: return high ? "9223372036854775807LL" : "(-9223372036854775807LL - 1)";
    case DType::kU8: return high ? "((unsigned char)255)" : "((unsigned char)0)";
    case DType::kU16: return high ? "((unsigned short)65535)" : "((unsigned short)0)";
    case DType::kU32: return high ? "4294967295u" : "0u";
    case DType::kU64: return high ? "18446744073709551615ULL" : "0ULL";
    default: return literal(a, v);
  }
}

}  // namespace

Result<std::string> elementwise_statement(const std::string& op, const std::vector<DType>& inputs, DType output,
                                          const std::vector<double>& attrs) {
  auto refuse = [&](const std::string& why) {
    return unsupported("elementwise kernel " + op + ": " + why);
  };
  if (inputs.empty()) return refuse("takes at least one input");
  const DType a = inputs[0];
  const bool fl = is_float_compute(a);
  const std::string fsuffix = a == DType::kF64 ? "" : "f";
  if (op == "Cast") {
    if (inputs.size() != 1) return refuse("takes 1 input");
    if (output == DType::kBool) return std::string("r = a != 0;");
    return "r = (" + std::string(compute_type(output)) + ")(a);";
  }
  if (op == "Where") {
    if (inputs.size() != 3 || inputs[0] != DType::kBool || inputs[1] != inputs[2])
      return refuse("takes (bool condition, X, Y) with X and Y of one dtype");
    return std::string("r = a ? b : c;");
  }
  if (op == "Pow") {
    if (inputs.size() != 2) return refuse("takes 2 inputs");
    const DType e = inputs[1];
    if (a == DType::kBool || e == DType::kBool) return refuse("does not take bool");
    if (fl) return "r = (CT)pow" + fsuffix + "(a, (CT)b);";
    if (is_float_compute(e)) return std::string("r = (CT)pow((double)a, (double)b);");
    return std::string("r = (CT)kiln_ipow((long long)a, (long long)b);");
  }
  for (DType d : inputs)
    if (d != a && !(op == "PRelu")) return refuse("inputs must share one dtype");
  std::string stmt;
  if (variadic(op)) {
    if (a == DType::kBool) return refuse("does not take bool");
    if (op == "Mean" && !fl) return refuse("takes floats only");
    stmt = "r = a;";
    for (size_t k = 1; k < inputs.size(); ++k) {
      std::string x(1, kNames[k]);
      if (op == "Sum" || op == "Mean") stmt += " r = (CT)(r + " + x + ");";
      if (op == "Max") stmt += " r = (r > " + x + " || r != r) ? r : " + x + ";";
      if (op == "Min") stmt += " r = (r < " + x + " || r != r) ? r : " + x + ";";
    }
    if (op == "Mean") stmt += " r = r / (CT)" + std::to_string(inputs.size()) + ";";
    return stmt;
  }
  const OpDef* def = find_def(op);
  if (!def) return refuse("unknown op");
  if (static_cast<int>(inputs.size()) != def->arity)
    return refuse("takes " + std::to_string(def->arity) + " inputs, got " + std::to_string(inputs.size()));
  if (static_cast<int>(attrs.size()) != def->attrs)
    return refuse("takes " + std::to_string(def->attrs) + " attributes, got " + std::to_string(attrs.size()));
  const char* t = fl ? def->f : is_int(a) ? def->i : is_uint(a) ? def->u : a == DType::kBool ? def->b : nullptr;
  if (!t) return refuse("dtype " + tag(a) + " is not supported");
  stmt = replace_all(t, "$f", fl ? fsuffix : "");
  for (int k = 0; k < def->attrs; ++k) stmt = replace_all(stmt, "p" + std::to_string(k), attr_literal(a, attrs[k]));
  return stmt;
}


const std::vector<ElementwiseOpInfo>& elementwise_ops() {
  // Never destroyed: background compiles may still read it while statics are torn down at exit.
  static const std::vector<ElementwiseOpInfo>& ops = *new std::vector<ElementwiseOpInfo>([] {
    std::vector<ElementwiseOpInfo> v;
    for (const OpDef& d : kOps)
      v.push_back({d.name, d.arity, d.attrs, d.bool_result, d.f != nullptr, d.i != nullptr, d.u != nullptr,
                   d.b != nullptr});
    for (const char* n : {"Sum", "Max", "Min"}) v.push_back({n, -1, 0, false, true, true, true, false});
    v.push_back({"Mean", -1, 0, false, true, false, false, false});
    v.push_back({"Pow", 2, 0, false, true, true, true, false});
    v.push_back({"Where", 3, 0, false, true, true, true, true});
    v.push_back({"Cast", 1, 0, false, true, true, true, true});
    return v;
  }());
  return ops;
}

const ElementwiseOpInfo* elementwise_op(const std::string& name) {
  for (const auto& op : elementwise_ops())
    if (op.name == name) return &op;
  return nullptr;
}

std::string elementwise_key(const ElementwiseSpec& spec) {
  std::string k = spec.program.empty() ? "ew:" + spec.op + ":" : "ewf:" + fused_program_key(spec.program) + ":";
  for (DType d : spec.inputs) k += tag(d) + ",";
  k += "->" + tag(spec.output);
  k += spec.layout == Layout::kFlat ? ":flat" : ":strided";
  for (bool s : spec.scalar_inputs) k += s ? "s" : "v";
  k += spec.wide_index ? ":i64" : ":i32";
  for (double a : spec.program.empty() ? spec.attrs : std::vector<double>{}) {
    char buf[40];
    std::snprintf(buf, sizeof buf, ":%.17g", a);
    k += buf;
  }
  return k;
}

Result<KernelSource> elementwise_source(const ElementwiseSpec& spec) {
  if (spec.inputs.empty() || spec.inputs.size() > 6)
    return unsupported("elementwise kernel " + spec.op + ": takes 1 to 6 inputs, got " +
                       std::to_string(spec.inputs.size()));
  for (DType d : spec.inputs)
    if (!dtype_supported(d)) return unsupported("elementwise kernel " + spec.op + ": dtype " + tag(d) + " is not supported");
  if (!dtype_supported(spec.output))
    return unsupported("elementwise kernel " + spec.op + ": output dtype " + tag(spec.output) + " is not supported");
  if (spec.layout == Layout::kFlat && !spec.scalar_inputs.empty() && spec.scalar_inputs.size() != spec.inputs.size())
    return invalid_argument("elementwise kernel " + spec.op + ": scalar_inputs has the wrong length");
  KILN_ASSIGN_OR_RETURN(std::string stmt, spec.program.empty()
                                              ? elementwise_statement(spec.op, spec.inputs, spec.output, spec.attrs)
                                              : fused_statement(spec.inputs, spec.program));

  std::string name = "kiln_ew_";
  if (spec.program.empty()) {
    for (char ch : spec.op) name += (ch == ':' ? '_' : ch);
  } else {  // FNV-1a of the program: a readable, stable name (keys hold the whole program)
    uint64_t h = 1469598103934665603ull;
    for (char ch : fused_program_key(spec.program)) h = (h ^ static_cast<uint8_t>(ch)) * 1099511628211ull;
    char buf[24];
    std::snprintf(buf, sizeof buf, "fused%zu_%016llx", spec.program.size(), static_cast<unsigned long long>(h));
    name += buf;
  }
  name += "_" + tag(spec.inputs[0]) + (spec.layout == Layout::kFlat ? "_flat" : "_strided");
  const std::string idx = spec.wide_index ? "long long" : "int";
  std::string s(prelude());
  s += "extern \"C\" __global__ void " + name + "(" + std::string(storage_type(spec.output)) + "* __restrict__ out";
  for (size_t k = 0; k < spec.inputs.size(); ++k)
    s += ", const " + std::string(storage_type(spec.inputs[k])) + "* __restrict__ in" + std::to_string(k);
  if (spec.layout == Layout::kStrided) s += ", KilnStrided st";
  s += ", long long n) {\n";
  s += "  typedef " + std::string(compute_type(spec.inputs[0])) + " CT;\n";
  s += "  typedef " + std::string(compute_type(spec.output)) + " RT;\n";
  s += "  for (" + idx + " i = (" + idx + ")blockIdx.x * blockDim.x + threadIdx.x; i < (" + idx +
       ")n; i += (" + idx + ")gridDim.x * blockDim.x) {\n";
  std::string out_index = "i";
  std::vector<std::string> in_index(spec.inputs.size(), "i");
  if (spec.layout == Layout::kStrided) {
    s += "    " + idx + " rem = i, o0 = 0";
    for (size_t k = 0; k < spec.inputs.size(); ++k) s += ", o" + std::to_string(k + 1) + " = 0";
    s += ";\n    #pragma unroll\n    for (int d = 7; d >= 0; --d) {\n      if (d < st.rank) {\n";
    s += "        " + idx + " dim = (" + idx + ")st.dims[d];\n        " + idx + " q = rem / dim;\n        " + idx +
         " x = rem - q * dim;\n        rem = q;\n";
    for (size_t k = 0; k <= spec.inputs.size(); ++k)
      s += "        o" + std::to_string(k) + " += x * (" + idx + ")st.strides[" + std::to_string(k) + "][d];\n";
    s += "      }\n    }\n";
    out_index = "o0";
    for (size_t k = 0; k < spec.inputs.size(); ++k) in_index[k] = "o" + std::to_string(k + 1);
  } else {
    for (size_t k = 0; k < spec.scalar_inputs.size(); ++k)
      if (spec.scalar_inputs[k]) in_index[k] = "0";
  }
  for (size_t k = 0; k < spec.inputs.size(); ++k)
    s += "    const " + std::string(compute_type(spec.inputs[k])) + " " + kNames[k] + " = " +
         load_expr(spec.inputs[k], "in" + std::to_string(k) + "[" + in_index[k] + "]") + ";\n";
  s += "    RT r;\n    { " + stmt + " }\n";
  s += "    out[" + out_index + "] = " + store_expr(spec.output, "r") + ";\n  }\n}\n";
  return KernelSource{name, s};
}

}  // namespace kiln::cuda::kernels
