#include "backends/cpu/ops/fused_elementwise_program.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "backends/cpu/kernel.h"
#include "core/half.h"

namespace kiln::cpu {
namespace {

constexpr unsigned kFIU = kFuseFloat | kFuseInt | kFuseUint;

// Ops both backends run elementwise (the CUDA table in kernels/elementwise.cc has a statement
// template for each listed dtype class; fused_nvrtc_test checks it).
constexpr FusedOpInfo kOps[] = {
    {"Literal", 0, 2, false, kFuseAny},
    {"Cast", 1, 0, false, kFuseAny},
    {"Where", 3, 0, false, kFuseAny},
    {"Pow", 2, 0, false, kFIU},
    {"Clip", 1, 2, false, kFIU},
    {"Abs", 1, 0, false, kFIU},
    {"Neg", 1, 0, false, kFuseFloat | kFuseInt},
    {"Sign", 1, 0, false, kFIU},
    {"Relu", 1, 0, false, kFuseFloat | kFuseInt},
    {"Not", 1, 0, false, kFuseBool},
    {"Reciprocal", 1, 0, false, kFuseFloat},
    {"Sqrt", 1, 0, false, kFuseFloat},
    {"Exp", 1, 0, false, kFuseFloat},
    {"Log", 1, 0, false, kFuseFloat},
    {"Sin", 1, 0, false, kFuseFloat},
    {"Cos", 1, 0, false, kFuseFloat},
    {"Tanh", 1, 0, false, kFuseFloat},
    {"Erf", 1, 0, false, kFuseFloat},
    {"Ceil", 1, 0, false, kFuseFloat},
    {"Floor", 1, 0, false, kFuseFloat},
    {"Round", 1, 0, false, kFuseFloat},
    {"Sigmoid", 1, 0, false, kFuseFloat},
    {"Softplus", 1, 0, false, kFuseFloat},
    {"Softsign", 1, 0, false, kFuseFloat},
    {"Mish", 1, 0, false, kFuseFloat},
    {"Silu", 1, 0, false, kFuseFloat},
    {"HardSwish", 1, 0, false, kFuseFloat},
    {"Gelu", 1, 0, false, kFuseFloat},
    {"Gelu:tanh", 1, 0, false, kFuseFloat},
    {"LeakyRelu", 1, 1, false, kFuseFloat},
    {"Elu", 1, 1, false, kFuseFloat},
    {"Selu", 1, 2, false, kFuseFloat},
    {"HardSigmoid", 1, 2, false, kFuseFloat},
    {"IsNaN", 1, 0, true, kFuseFloat},
    {"IsInf", 1, 2, true, kFuseFloat},
    {"Add", 2, 0, false, kFIU},
    {"Sub", 2, 0, false, kFIU},
    {"Mul", 2, 0, false, kFIU},
    {"Div", 2, 0, false, kFIU},
    {"Mod", 2, 0, false, kFIU},
    {"Mod:fmod", 2, 0, false, kFIU},
    {"PRelu", 2, 0, false, kFuseFloat | kFuseInt},
    {"Equal", 2, 0, true, kFuseAny},
    {"Less", 2, 0, true, kFIU},
    {"LessOrEqual", 2, 0, true, kFIU},
    {"Greater", 2, 0, true, kFIU},
    {"GreaterOrEqual", 2, 0, true, kFIU},
    {"And", 2, 0, false, kFuseBool},
    {"Or", 2, 0, false, kFuseBool},
    {"Xor", 2, 0, false, kFuseBool},
    {"Sum", -1, 0, false, kFIU},
    {"Max", -1, 0, false, kFIU},
    {"Min", -1, 0, false, kFIU},
    {"Mean", -1, 0, false, kFuseFloat},
};

const char* const kAttrNames[] = {"input_dtypes", "ops", "dtypes", "num_args", "args", "params"};

std::string fmt_double(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

Status step_error(size_t s, const FusedStep& st, const std::string& what) {
  return invalid_argument("fused elementwise program: step " + std::to_string(s) + " (" + st.op + "): " + what);
}

Status validate_step(size_t s, const FusedStep& st, const std::vector<DType>& operand_dtypes) {
  const FusedOpInfo* info = fused_op(st.op);
  if (!info) return step_error(s, st, "unknown op");
  const size_t n = st.args.size();
  if (info->arity >= 0 ? n != static_cast<size_t>(info->arity) : (n < 1 || n > kFusedMaxArgs))
    return step_error(s, st, "takes " + (info->arity >= 0 ? std::to_string(info->arity) : std::string("1 to 6")) +
                                 " operands, got " + std::to_string(n));
  if (st.params.size() != static_cast<size_t>(info->params))
    return step_error(s, st, "takes " + std::to_string(info->params) + " parameters, got " +
                                 std::to_string(st.params.size()));
  if (fused_type_class(st.dtype) == 0) return step_error(s, st, "result dtype is not elementwise-capable");
  const std::vector<DType>& in = operand_dtypes;
  auto name = [](DType d) { return std::string(dtype_name(d)); };
  if (st.op == "Literal") {
    const double rank = st.params[1];
    if (!(rank >= 0 && rank <= kFusedMaxRank && rank == std::floor(rank)))
      return step_error(s, st, "literal rank must be an integer in [0, 8]");
    if (!fused_exact_in(st.dtype, st.params[0]))
      return step_error(s, st, "value " + fmt_double(st.params[0]) + " is not exact in " + name(st.dtype));
    return Status();
  }
  if (st.op == "Cast") return Status();
  if (st.op == "Where") {
    if (in[0] != DType::kBool || in[1] != in[2] || st.dtype != in[1])
      return step_error(s, st, "takes (bool, X, Y) with X, Y and the result of one dtype");
    return Status();
  }
  if (st.op == "Pow") {
    if (!(fused_type_class(in[0]) & info->types) || !(fused_type_class(in[1]) & info->types) || st.dtype != in[0])
      return step_error(s, st, "takes numeric operands and gives the base's dtype");
    return Status();
  }
  for (DType d : in)
    if (d != in[0]) return step_error(s, st, "operands must share one dtype, got " + name(in[0]) + " and " + name(d));
  if (!(fused_type_class(in[0]) & info->types)) return step_error(s, st, "does not take " + name(in[0]));
  const DType want = info->bool_result ? DType::kBool : in[0];
  if (st.dtype != want) return step_error(s, st, "result must be " + name(want) + ", not " + name(st.dtype));
  if (st.op == "Clip" && fused_type_class(in[0]) != kFuseFloat)
    for (double b : st.params)
      if (!std::isinf(b) && !fused_exact_in(in[0], b))
        return step_error(s, st, "bound " + fmt_double(b) + " is not exact in " + name(in[0]));
  if (st.op == "IsInf")
    for (double b : st.params)
      if (b != 0 && b != 1) return step_error(s, st, "detect flags must be 0 or 1");
  return Status();
}

}  // namespace

std::span<const FusedOpInfo> fused_ops() { return kOps; }

const FusedOpInfo* fused_op(std::string_view name) {
  for (const FusedOpInfo& op : kOps)
    if (op.name == name) return &op;
  return nullptr;
}

unsigned fused_type_class(DType d) {
  switch (d) {
    case DType::kF16: case DType::kBF16: case DType::kF32: case DType::kF64: return kFuseFloat;
    case DType::kI8: case DType::kI16: case DType::kI32: case DType::kI64: return kFuseInt;
    case DType::kU8: case DType::kU16: case DType::kU32: case DType::kU64: return kFuseUint;
    case DType::kBool: return kFuseBool;
    default: return 0;
  }
}

int FusedProgram::min_rank() const {
  int r = 0;
  for (const FusedStep& s : steps)
    if (s.op == "Literal" && s.params.size() == 2) r = std::max(r, static_cast<int>(s.params[1]));
  return r;
}

Status fused_program_validate(const FusedProgram& p) {
  const std::string where = "fused elementwise program: ";
  if (p.inputs.empty() || p.inputs.size() > static_cast<size_t>(kFusedMaxInputs))
    return invalid_argument(where + "takes 1 to 6 inputs, got " + std::to_string(p.inputs.size()));
  if (p.steps.empty() || p.steps.size() > static_cast<size_t>(kFusedMaxSteps))
    return invalid_argument(where + "has " + std::to_string(p.steps.size()) + " steps (1 to 256 allowed)");
  for (size_t i = 0; i < p.inputs.size(); ++i)
    if (fused_type_class(p.inputs[i]) == 0)
      return invalid_argument(where + "input " + std::to_string(i) + " has dtype " +
                              std::string(dtype_name(p.inputs[i])) + ", which no elementwise op takes");
  const size_t ni = p.inputs.size();
  std::vector<bool> used(ni + p.steps.size(), false);
  std::vector<DType> operand;
  for (size_t s = 0; s < p.steps.size(); ++s) {
    const FusedStep& st = p.steps[s];
    operand.clear();
    for (int a : st.args) {
      if (a < 0 || static_cast<size_t>(a) >= ni + s)
        return step_error(s, st, "operand " + std::to_string(a) + " is not an input or an earlier step");
      used[static_cast<size_t>(a)] = true;
      operand.push_back(static_cast<size_t>(a) < ni ? p.inputs[static_cast<size_t>(a)] : p.steps[a - ni].dtype);
    }
    KILN_RETURN_IF_ERROR(validate_step(s, st, operand));
  }
  for (size_t k = 0; k + 1 < used.size(); ++k)
    if (!used[k])
      return invalid_argument(where + (k < ni ? "input " + std::to_string(k) : "step " + std::to_string(k - ni)) +
                              " is never used");
  return Status();
}

void fused_program_encode(const FusedProgram& p, ir::Attributes* attrs) {
  std::vector<int64_t> input_dtypes, dtypes, num_args, args;
  std::vector<double> params;
  ir::Attribute ops;
  ops.kind = ir::Attribute::Kind::kStrings;
  for (DType d : p.inputs) input_dtypes.push_back(static_cast<int64_t>(d));
  for (const FusedStep& s : p.steps) {
    ops.strings.push_back(s.op);
    dtypes.push_back(static_cast<int64_t>(s.dtype));
    num_args.push_back(static_cast<int64_t>(s.args.size()));
    for (int a : s.args) args.push_back(a);
    params.insert(params.end(), s.params.begin(), s.params.end());
  }
  attrs->set_ints("input_dtypes", std::move(input_dtypes));
  attrs->set("ops", std::move(ops));
  attrs->set_ints("dtypes", std::move(dtypes));
  attrs->set_ints("num_args", std::move(num_args));
  attrs->set_ints("args", std::move(args));
  attrs->set_floats("params", std::move(params));
  attrs->set_int("dtype", static_cast<int64_t>(p.output()));
}

Result<FusedProgram> fused_program_decode(const ir::Node& node) {
  auto fail = [&](const std::string& what) {
    return invalid_argument(node_context(node) + ": malformed fused program: " + what);
  };
  using K = ir::Attribute::Kind;
  const K kinds[] = {K::kInts, K::kStrings, K::kInts, K::kInts, K::kInts, K::kFloats};
  for (size_t i = 0; i < std::size(kAttrNames); ++i) {
    const ir::Attribute* a = node.attrs.find(kAttrNames[i]);
    if (!a || a->kind != kinds[i]) return fail(std::string("attribute '") + kAttrNames[i] + "' is missing or of the wrong kind");
  }
  const std::vector<int64_t>& in_dtypes = node.attrs.find("input_dtypes")->ints;
  const std::vector<std::string>& ops = node.attrs.find("ops")->strings;
  const std::vector<int64_t>& dtypes = node.attrs.find("dtypes")->ints;
  const std::vector<int64_t>& num_args = node.attrs.find("num_args")->ints;
  const std::vector<int64_t>& args = node.attrs.find("args")->ints;
  const std::vector<double>& params = node.attrs.find("params")->floats;
  if (ops.empty() || ops.size() > static_cast<size_t>(kFusedMaxSteps)) return fail("1 to 256 steps allowed");
  if (dtypes.size() != ops.size() || num_args.size() != ops.size())
    return fail("ops, dtypes and num_args differ in length");
  if (in_dtypes.size() != node.inputs.size())
    return fail(std::to_string(in_dtypes.size()) + " input dtypes for " + std::to_string(node.inputs.size()) + " inputs");
  if (node.outputs.size() != 1) return fail("must have exactly one output");
  for (int id : node.inputs)
    if (id < 0) return fail("an input is omitted");
  auto to_dtype = [](int64_t v) { return v >= 0 && v <= 255 && dtype_valid(static_cast<uint8_t>(v)) ? static_cast<DType>(v) : DType::kUndefined; };
  FusedProgram p;
  for (int64_t d : in_dtypes) p.inputs.push_back(to_dtype(d));
  size_t a = 0, q = 0;
  for (size_t s = 0; s < ops.size(); ++s) {
    FusedStep st;
    st.op = ops[s];
    st.dtype = to_dtype(dtypes[s]);
    const FusedOpInfo* info = fused_op(st.op);
    if (!info) return fail("step " + std::to_string(s) + " has unknown op '" + st.op.substr(0, 64) + "'");
    if (num_args[s] < 0 || num_args[s] > kFusedMaxArgs || static_cast<size_t>(num_args[s]) > args.size() - a)
      return fail("step " + std::to_string(s) + " has a bad operand count");
    for (int64_t k = 0; k < num_args[s]; ++k) {
      const int64_t v = args[a++];
      if (v < 0 || v > kFusedMaxInputs + kFusedMaxSteps) return fail("step " + std::to_string(s) + " has a bad operand");
      st.args.push_back(static_cast<int>(v));
    }
    if (static_cast<size_t>(info->params) > params.size() - q) return fail("too few parameters");
    st.params.assign(params.begin() + static_cast<std::ptrdiff_t>(q), params.begin() + static_cast<std::ptrdiff_t>(q + info->params));
    q += static_cast<size_t>(info->params);
    p.steps.push_back(std::move(st));
  }
  if (a != args.size() || q != params.size()) return fail("unused operands or parameters at the end");
  Status st = fused_program_validate(p);
  if (!st.ok()) return st.with_context(node_context(node));
  const ir::Attribute* out_dtype = node.attrs.find("dtype");
  if (!out_dtype || out_dtype->kind != ir::Attribute::Kind::kInt || out_dtype->i != static_cast<int64_t>(p.output()))
    return fail("attribute 'dtype' must be the last step's dtype (" + std::string(dtype_name(p.output())) + ")");
  return p;
}

std::string fused_program_text(const FusedProgram& p) {
  std::string s = "in(";
  for (size_t i = 0; i < p.inputs.size(); ++i) {
    if (i) s += ',';
    s += dtype_name(p.inputs[i]);
  }
  s += ")";
  const size_t ni = p.inputs.size();
  for (size_t k = 0; k < p.steps.size(); ++k) {
    const FusedStep& st = p.steps[k];
    s += ";t" + std::to_string(k) + "=" + st.op;
    if (!st.params.empty()) {
      s += "[";
      for (size_t j = 0; j < st.params.size(); ++j) {
        if (j) s += ',';
        s += fmt_double(st.params[j]);
      }
      s += "]";
    }
    s += "(";
    for (size_t j = 0; j < st.args.size(); ++j) {
      const size_t v = static_cast<size_t>(st.args[j]);
      if (j) s += ',';
      s += v < ni ? 'x' : 't';
      s += std::to_string(v < ni ? v : v - ni);
    }
    s += "):";
    s += dtype_name(st.dtype);
  }
  return s;
}

bool fused_exact_in(DType d, double v) {
  switch (fused_type_class(d)) {
    case kFuseBool: return v == 0 || v == 1;
    case kFuseFloat:
      if (std::isnan(v) || std::isinf(v) || d == DType::kF64) return true;
      if (d == DType::kF32) return static_cast<double>(static_cast<float>(v)) == v;
      if (d == DType::kF16) return static_cast<double>(f16_to_f32(f32_to_f16(static_cast<float>(v)))) == v;
      return static_cast<double>(bf16_to_f32(f32_to_bf16(static_cast<float>(v)))) == v;
    case kFuseInt: case kFuseUint: {
      if (!(v == std::floor(v)) || std::fabs(v) > 9007199254740992.0) return false;  // 2^53: beyond, doubles skip integers
      const int bits = static_cast<int>(dtype_size(d)) * 8;
      if (fused_type_class(d) == kFuseUint) return v >= 0 && (bits >= 53 || v <= std::ldexp(1.0, bits) - 1);
      return bits >= 54 || (v >= -std::ldexp(1.0, bits - 1) && v <= std::ldexp(1.0, bits - 1) - 1);
    }
    default: return false;
  }
}

Result<double> fused_scalar_value(const Tensor& t) {
  if (t.numel() != 1) return invalid_argument("not a one-element tensor");
  const void* p = t.data();
  switch (t.dtype()) {
    case DType::kF32: return static_cast<double>(*static_cast<const float*>(p));
    case DType::kF64: return *static_cast<const double*>(p);
    case DType::kF16: return static_cast<double>(f16_to_f32(*static_cast<const uint16_t*>(p)));
    case DType::kBF16: return static_cast<double>(bf16_to_f32(*static_cast<const uint16_t*>(p)));
    case DType::kI8: return static_cast<double>(*static_cast<const int8_t*>(p));
    case DType::kI16: return static_cast<double>(*static_cast<const int16_t*>(p));
    case DType::kI32: return static_cast<double>(*static_cast<const int32_t*>(p));
    case DType::kI64: return static_cast<double>(*static_cast<const int64_t*>(p));
    case DType::kU8: return static_cast<double>(*static_cast<const uint8_t*>(p));
    case DType::kU16: return static_cast<double>(*static_cast<const uint16_t*>(p));
    case DType::kU32: return static_cast<double>(*static_cast<const uint32_t*>(p));
    case DType::kU64: return static_cast<double>(*static_cast<const uint64_t*>(p));
    case DType::kBool: return *static_cast<const uint8_t*>(p) != 0 ? 1.0 : 0.0;
    default: return unsupported("dtype " + std::string(dtype_name(t.dtype())));
  }
}

Result<Tensor> fused_scalar_tensor(DType d, double v, int rank) {
  KILN_ASSIGN_OR_RETURN(Tensor t, Tensor::empty(d, Dims(static_cast<size_t>(std::clamp(rank, 0, kFusedMaxRank)), 1)));
  void* p = t.data();
  auto put = [&](auto x) { std::memcpy(p, &x, sizeof x); };
  if (!fused_exact_in(d, v) && fused_type_class(d) != kFuseFloat) return invalid_argument("value " + fmt_double(v) + " is not valid for " + std::string(dtype_name(d)));
  switch (d) {
    case DType::kF32: put(static_cast<float>(v)); break;
    case DType::kF64: put(v); break;
    case DType::kF16: put(f32_to_f16(static_cast<float>(v))); break;
    case DType::kBF16: put(f32_to_bf16(static_cast<float>(v))); break;
    case DType::kI8: put(static_cast<int8_t>(v)); break;
    case DType::kI16: put(static_cast<int16_t>(v)); break;
    case DType::kI32: put(static_cast<int32_t>(v)); break;
    case DType::kI64: put(static_cast<int64_t>(v)); break;
    case DType::kU8: put(static_cast<uint8_t>(v)); break;
    case DType::kU16: put(static_cast<uint16_t>(v)); break;
    case DType::kU32: put(static_cast<uint32_t>(v)); break;
    case DType::kU64: put(static_cast<uint64_t>(v)); break;
    case DType::kBool: put(static_cast<uint8_t>(v != 0)); break;
    default: return unsupported("dtype " + std::string(dtype_name(d)));
  }
  return t;
}

}  // namespace kiln::cpu
